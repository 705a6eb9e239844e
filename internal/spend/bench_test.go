package spend

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// discard is a store that takes every batch at once: the benchmarks
// measure Record and the writer, not a database.
type discard struct{}

func (discard) Insert(_ context.Context, rows []Row) (int, error) { return len(rows), nil }

// stuck is a store that never answers: every Record past the buffer is a
// drop.
type stuck struct{ c chan struct{} }

func (s stuck) Insert(ctx context.Context, _ []Row) (int, error) {
	<-s.c
	return 0, ctx.Err()
}

var benchRow = Row{DecisionID: "01JZ8V6Q1M6Y3K2T9W8X7R5N4P", KeyID: "key-3fa94c0b12de", User: "ana@example.com", Team: "contracts",
	Workspace: "legal", Model: "gpt-4o-mini", Provider: "openai", TokensIn: 1200, TokensOut: 350, Cost: 389, Status: Served}

// BenchmarkRecord is what the request path pays per request: one row into
// the writer's buffer (internal/handoff). "buffered": the buffer has room
// (the timer stops while the writer catches up after each buffer-full, so
// nothing is dropped); "drop": the store is stuck and the buffer full.
func BenchmarkRecord(b *testing.B) {
	b.Run("buffered", func(b *testing.B) {
		w := NewWriter(discard{}, WriterOptions{})
		defer w.Close(context.Background())
		r := benchRow
		r.Time = time.Now()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			// Every half buffer, wait until the writer has taken its full
			// batches (the rest waits for its interval), so nothing drops.
			if i%(w.o.Buffer/2) == 0 {
				b.StopTimer()
				for w.in.Len() >= w.o.BatchRows {
					time.Sleep(100 * time.Microsecond)
				}
				b.StartTimer()
			}
			w.Record(r)
		}
		b.StopTimer()
		if d := w.Stats().Dropped; d > 0 {
			b.Fatalf("%d rows dropped", d)
		}
	})
	b.Run("drop", func(b *testing.B) {
		s := stuck{c: make(chan struct{})}
		w := NewWriter(s, WriterOptions{Buffer: 1, BatchRows: 1, FlushEvery: time.Hour})
		defer func() {
			close(s.c)
			w.Close(context.Background())
		}()
		r := benchRow
		r.Time = time.Now()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w.Record(r)
		}
		b.StopTimer()
		b.ReportMetric(float64(w.Stats().Dropped)/float64(b.N), "drops/op")
	})
}

// BenchmarkRecordParallel: every core recording at once, the row stamped
// with time.Now as the edge does; drops/op says whether the writer kept up.
func BenchmarkRecordParallel(b *testing.B) {
	w := NewWriter(discard{}, WriterOptions{})
	defer w.Close(context.Background())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRow
		for pb.Next() {
			r.Time = time.Now()
			w.Record(r)
		}
	})
	b.ReportMetric(float64(w.Stats().Dropped)/float64(b.N), "drops/op")
}

// BenchmarkInsertBatch is what the writer's goroutine pays per row to
// write a full batch (500 rows, one transaction): the rate one writer can
// sustain. Reported per row.
func BenchmarkInsertBatch(b *testing.B) {
	ctx := context.Background()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			var db *store.DB
			var err error
			if d == store.SQLite {
				db, err = store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "state"))
			} else {
				db, err = store.OpenPostgres(ctx, testsrv.PostgresDSN(b))
			}
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s, err := Open(ctx, db)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]Row, 500)
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += len(batch) {
				for i := range batch {
					batch[i] = benchRow
					batch[i].Time = time.Now()
					batch[i].DecisionID = fmt.Sprint(n + i)
				}
				if _, err := s.Insert(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
