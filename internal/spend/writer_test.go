package spend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/store"
)

// fakeInserter records batches; fail, when set, answers an attempt with an
// error; gate, when set, holds each insert until it is closed.
type fakeInserter struct {
	mu      sync.Mutex
	batches [][]Row
	fail    func(attempt int) error
	tries   int
	gate    chan struct{}
	entered chan struct{} // gets a value when an insert starts, if set
}

func (f *fakeInserter) Insert(ctx context.Context, rows []Row) (int, error) {
	if f.entered != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.fail != nil {
		if err := f.fail(f.tries); err != nil {
			return 0, err
		}
	}
	f.batches = append(f.batches, slices.Clone(rows))
	return len(rows), nil
}

func (f *fakeInserter) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		out = append(out, len(b))
	}
	return out
}

func (f *fakeInserter) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, b := range f.batches {
		for _, r := range b {
			out = append(out, r.DecisionID)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("r", i)
	}
	return out
}

func recordN(w *Writer, n int) {
	for i := 0; i < n; i++ {
		w.Record(Row{DecisionID: fmt.Sprint("r", i), Status: Served})
	}
}

// TestWriterBatches: a full batch is written at once, the rest when the
// writer closes; nothing waits for the flush interval in between.
func TestWriterBatches(t *testing.T) {
	f := &fakeInserter{}
	w := NewWriter(f, WriterOptions{BatchRows: 10, FlushEvery: time.Hour})
	recordN(w, 25)
	waitFor(t, "two full batches", func() bool { return len(f.sizes()) == 2 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.sizes(); !slices.Equal(got, []int{10, 10, 5}) {
		t.Errorf("batches %v, want [10 10 5]", got)
	}
	if got := f.ids(); !slices.Equal(got, ids(25)) {
		t.Errorf("rows %v", got)
	}
	if s := w.Stats(); s.Written != 25 || s.Dropped != 0 || s.Lost != 0 || s.Queued != 0 {
		t.Errorf("stats %+v", s)
	}
	for _, r := range f.batches[0] {
		if r.Time.IsZero() {
			t.Fatal("a row without a time was not stamped")
		}
	}
	// After Close: dropped, counted, no panic.
	w.Record(Row{DecisionID: "late"})
	if s := w.Stats(); s.Dropped != 1 {
		t.Errorf("a row after Close: %+v", s)
	}
}

// TestWriterFlushesWithinInterval: a lone row is written after the flush
// interval, without a full batch or Close.
func TestWriterFlushesWithinInterval(t *testing.T) {
	f := &fakeInserter{}
	w := NewWriter(f, WriterOptions{BatchRows: 1000, FlushEvery: 20 * time.Millisecond})
	defer w.Close(context.Background())
	recordN(w, 3)
	waitFor(t, "the rows written by the timer", func() bool { return slices.Equal(f.sizes(), []int{3}) })
	w.Record(Row{DecisionID: "again"})
	waitFor(t, "a second timed batch", func() bool { return slices.Equal(f.sizes(), []int{3, 1}) })
}

// TestWriterNeverBlocks: with the store stuck, Record returns at once;
// what the buffer cannot take is dropped, counted and logged, and the rest
// is written once the store answers.
func TestWriterNeverBlocks(t *testing.T) {
	f := &fakeInserter{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	core, logs := observer.New(zapcore.DebugLevel)
	w := NewWriter(f, WriterOptions{Buffer: 10, BatchRows: 5, FlushEvery: time.Hour, Logger: zap.New(core)})
	recordN(w, 5)
	<-f.entered // the writer holds a batch of 5 and is stuck in the store
	done := make(chan struct{})
	go func() {
		for i := 5; i < 100; i++ {
			w.Record(Row{DecisionID: fmt.Sprint("r", i)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked while the store was stuck")
	}
	if s := w.Stats(); s.Dropped != 85 || s.Queued != 10 {
		t.Errorf("stats %+v, want 85 dropped, 10 queued", s)
	}
	close(f.gate)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Written != 15 || s.Dropped != 85 {
		t.Errorf("stats %+v, want 15 written", s)
	}
	if got := f.ids(); !slices.Equal(got, ids(15)) {
		t.Errorf("written %v, want the first 15 rows in order", got)
	}
	if n := logs.FilterMessageSnippet("rows dropped").Len(); n == 0 {
		t.Errorf("drops not logged: %v", logs.All())
	}
}

// TestWriterRetriesWhileStoreDown: batches that fail because the store is
// unreachable are kept and retried; nothing is lost once it is back.
func TestWriterRetriesWhileStoreDown(t *testing.T) {
	down := errors.New("connection refused")
	f := &fakeInserter{fail: func(n int) error {
		if n <= 3 {
			return fmt.Errorf("%w: %v", store.ErrUnavailable, down)
		}
		return nil
	}}
	core, logs := observer.New(zapcore.DebugLevel)
	w := NewWriter(f, WriterOptions{BatchRows: 4, FlushEvery: 10 * time.Millisecond, Logger: zap.New(core)})
	recordN(w, 10)
	waitFor(t, "all rows written after the store came back", func() bool { return len(f.ids()) == 10 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.ids(); !slices.Equal(got, ids(10)) {
		t.Errorf("written %v", got)
	}
	s := w.Stats()
	if s.Written != 10 || s.Lost != 0 || s.Failures != 3 || s.LastErr == "" {
		t.Errorf("stats %+v", s)
	}
	if logs.FilterMessageSnippet("unreachable").Len() != 1 || logs.FilterMessageSnippet("reachable again").Len() != 1 {
		t.Errorf("want one line when the store went away and one when it came back: %v", logs.All())
	}
}

// TestWriterDropsRefusedBatch: a batch the store refuses for good (not an
// outage) is counted as lost, not retried forever.
func TestWriterDropsRefusedBatch(t *testing.T) {
	f := &fakeInserter{fail: func(n int) error {
		if n == 1 {
			return errors.New("value too long")
		}
		return nil
	}}
	w := NewWriter(f, WriterOptions{BatchRows: 2, FlushEvery: time.Hour})
	recordN(w, 4)
	waitFor(t, "both batches tried", func() bool { s := w.Stats(); return s.Lost+s.Written == 4 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Lost != 2 || s.Written != 2 {
		t.Errorf("stats %+v, want 2 lost, 2 written", s)
	}
}

// TestWriterCloseWithStoreDown: rows that cannot be written at shutdown
// are counted, logged and reported.
func TestWriterCloseWithStoreDown(t *testing.T) {
	f := &fakeInserter{fail: func(int) error { return store.ErrUnavailable }}
	core, logs := observer.New(zapcore.DebugLevel)
	w := NewWriter(f, WriterOptions{BatchRows: 100, FlushEvery: time.Hour, Logger: zap.New(core)})
	recordN(w, 7)
	err := w.Close(context.Background())
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Close: %v", err)
	}
	if s := w.Stats(); s.Lost != 7 || s.Written != 0 {
		t.Errorf("stats %+v", s)
	}
	if logs.FilterMessageSnippet("could not be written on shutdown").Len() != 1 {
		t.Errorf("logs %v", logs.All())
	}
}

// TestWriterIntoStore: rows through the writer land in both backends.
func TestWriterIntoStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		w := NewWriter(s, WriterOptions{BatchRows: 64, FlushEvery: 10 * time.Millisecond})
		for i := 0; i < 300; i++ {
			w.Record(row(fmt.Sprint("w", i), day0.Add(time.Duration(i)*time.Second), "k", "m", 1, 2, 3))
		}
		w.Record(row("w0", day0, "k", "m", 100, 100, 100)) // a duplicate id: ignored
		if err := w.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		r, err := s.Query(context.Background(), Query{Since: day0, Until: day0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if want := (Sums{Requests: 300, TokensIn: 300, TokensOut: 600, Cost: 900, CostEUR: 0.0009}); r.Total != want {
			t.Errorf("total %+v, want %+v", r.Total, want)
		}
	})
}

// TestWriterQueuedCountsHeldBatch: while the store is down, the rows the
// writer holds for its retry are queued too (the fleet probe's /status
// said 0–11 while half a minute of rows waited).
func TestWriterQueuedCountsHeldBatch(t *testing.T) {
	var up atomic.Bool
	f := &fakeInserter{fail: func(int) error {
		if !up.Load() {
			return store.ErrUnavailable
		}
		return nil
	}}
	w := NewWriter(f, WriterOptions{BatchRows: 8, FlushEvery: 5 * time.Millisecond})
	recordN(w, 6)
	waitFor(t, "the held batch counted", func() bool { return w.Stats().Queued == 6 && w.Stats().Failures > 0 })
	up.Store(true)
	waitFor(t, "written", func() bool { return w.Stats().Written == 6 && w.Stats().Queued == 0 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
