package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
)

// BenchmarkStoreAppendExport appends real decision records — the ones in
// the `stellwerk audit export` file named by STELLWERK_AUDIT_EXPORT — to
// new SQLite stores of 4, 8 and 16 KB pages, in the writer's batches of 25
// (500 requests/s), and reports the store's time per record and the file's
// size per record after a checkpoint. The synthetic records of
// BenchmarkStoreAppend compress to a fifth of what real ones do, so page
// fill is only seen with real ones (docs/audit.md#figures). Skipped without
// the variable:
//
//	bin/stellwerk audit export --from … --to … --out /tmp/export.jsonl   # e.g. of make profile's state
//	STELLWERK_AUDIT_EXPORT=/tmp/export.jsonl go test -run '^$' -bench StoreAppendExport -benchtime 1x ./internal/audit/
func BenchmarkStoreAppendExport(b *testing.B) {
	path := os.Getenv("STELLWERK_AUDIT_EXPORT")
	if path == "" {
		b.Skip("STELLWERK_AUDIT_EXPORT names no export file")
	}
	records := readExport(b, path)
	for _, pageSize := range []int{4096, 8192, 16384} {
		b.Run(fmt.Sprintf("page=%d", pageSize), func(b *testing.B) {
			var perRecord, fileBytes float64
			for b.Loop() {
				perRecord, fileBytes = appendExport(b, records, pageSize)
			}
			b.ReportMetric(perRecord, "µs/record")
			b.ReportMetric(fileBytes, "file-B/record")
		})
	}
}

// readExport reads the decision records of an export file.
func readExport(b *testing.B, path string) []Entry {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var es []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), maxBody)
	for sc.Scan() {
		var l struct{ Type, Kind, Workspace, ID, Body string }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			b.Fatal(err)
		}
		if l.Type == "record" && l.Kind == KindDecision {
			es = append(es, Entry{Kind: l.Kind, Workspace: l.Workspace, ID: l.ID, Body: []byte(l.Body)})
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	if len(es) < 25 {
		b.Fatalf("%s: %d decision records, want at least a batch of 25", path, len(es))
	}
	return es
}

// appendExport appends records to a new store whose file has pageSize
// pages, and returns µs per record spent in Append and file bytes per record.
func appendExport(b *testing.B, records []Entry, pageSize int) (float64, float64) {
	b.StopTimer()
	defer b.StartTimer() // b.Loop wants it running; deferred first, it runs last
	dir := b.TempDir()
	file := filepath.Join(dir, store.SQLiteFile)
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := store.CreateSQLite(context.Background(), file, pageSize); err != nil {
		b.Fatal(err)
	}
	db, err := store.OpenSQLite(context.Background(), dir) // a non-empty file keeps its pages
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := openStore(b, db)
	prev, seq := "", uint64(0)
	var in time.Duration
	batch := make([]Entry, 25)
	for i := 0; i+len(batch) <= len(records); i += len(batch) {
		for j := range batch {
			seq++
			batch[j] = records[i+j]
			batch[j].Writer, batch[j].Seq, batch[j].Time = "bench/1", seq, time.Now().UTC().Truncate(time.Microsecond)
			batch[j].seal(prev)
			prev = batch[j].Hash
		}
		b.StartTimer()
		start := time.Now()
		if err := st.Append(context.Background(), batch, nil); err != nil {
			b.Fatal(err)
		}
		in += time.Since(start)
		b.StopTimer()
	}
	if _, err := db.SQL.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	return float64(in.Microseconds()) / float64(seq), float64(fi.Size()) / float64(seq)
}
