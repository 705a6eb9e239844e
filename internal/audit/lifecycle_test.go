package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/audit/audittest"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestExportVerifiesOffline: an export of one workspace and a time range,
// in both formats, verifies with the public key alone; an edit to the file
// is found.
func TestExportVerifiesOffline(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o := testOptions(t)
		o.CheckpointInterval = 10 * time.Millisecond
		l := openLog(t, st, s, o)
		recordN(t, l, 0, 30)
		flush(t, l)
		time.Sleep(30 * time.Millisecond)
		from := time.Now()
		recordN(t, l, 30, 30)
		flush(t, l)
		to := time.Now()
		time.Sleep(30 * time.Millisecond)
		recordN(t, l, 60, 30)
		closeLog(t, l)
		keys := []PublicKey{s.Public()}
		for _, format := range []string{"jsonl", "csv"} {
			var buf bytes.Buffer
			n, err := st.Export(context.Background(), ExportFilter{From: from, To: to, Workspace: "legal"}, format, &buf)
			if err != nil || n != 15 {
				t.Fatalf("%s export: %d records, %v", format, n, err)
			}
			rep, err := VerifyExport(bytes.NewReader(buf.Bytes()), keys, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantOK(t, rep)
			if rep.Records != 15 || rep.Writers[0].Links == 0 || rep.Writers[0].AnchoredAt == 0 {
				t.Errorf("%s: %d records, writer %+v", format, rep.Records, rep.Writers[0])
			}
			if strings.Contains(buf.String(), `\"workspace\":\"support\"`) || strings.Contains(buf.String(), `"workspace":"support"`) {
				t.Errorf("%s: another workspace's record is in the export", format)
			}
			tampered := strings.Replace(buf.String(), `eu residency`, `us residency`, 1)
			rep, err = VerifyExport(strings.NewReader(tampered), keys, nil)
			if err != nil || rep.OK() || rep.Problems[0].Kind != ProblemModified {
				t.Errorf("%s: tampered export: %v %+v", format, err, rep)
			}
			// Export's order is read line by line, and reports what the
			// whole file read at once does.
			for _, b := range []string{buf.String(), tampered} {
				line := verifyExportStream(strings.NewReader(b), keys, nil)
				whole, err := verifyExportWhole(strings.NewReader(b), keys, nil)
				if line == nil || err != nil || !reflect.DeepEqual(line, whole) {
					t.Errorf("%s: line by line %+v, whole %v %+v", format, line, err, whole)
				}
			}
		}
		// A whole export verifies too, and the store's own range check agrees.
		var all bytes.Buffer
		if _, err := st.Export(context.Background(), ExportFilter{}, "jsonl", &all); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyExport(&all, keys, nil)
		if err != nil || !rep.OK() || rep.Records != 90 || !rep.Writers[0].Closed {
			t.Errorf("whole export: %v %+v", err, rep)
		}
		wantOK(t, mustVerify(t, st, keys, VerifyOptions{From: from, To: to}))
	})
}

// TestExportOfOneKey: an export of one key's records (a leaked key's,
// across workspaces, or in one) holds them all and no other, shows every
// other entry as a link, and verifies with the public key alone; one byte
// changed in a record or a link is found.
func TestExportOfOneKey(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		l := openLog(t, st, s, testOptions(t))
		for i := range 60 {
			r := decision(i, []string{"support", "legal"}[i%2])
			if i%3 == 0 {
				r.Principal.KeyID = "key-leaked"
			}
			if !l.Record(r) {
				t.Fatalf("record %d dropped", i)
			}
		}
		closeLog(t, l)
		keys := []PublicKey{s.Public()}
		for name, c := range map[string]struct {
			f    ExportFilter
			want int
		}{
			"key":              {ExportFilter{Key: "key-leaked"}, 20},
			"key in workspace": {ExportFilter{Key: "key-leaked", Workspace: "legal"}, 10},
			"no such key":      {ExportFilter{Key: "nobody"}, 0},
		} {
			for _, format := range []string{"jsonl", "csv"} {
				t.Run(name+"/"+format, func(t *testing.T) {
					var buf bytes.Buffer
					n, err := st.Export(context.Background(), c.f, format, &buf)
					if err != nil || n != c.want {
						t.Fatalf("%d records, %v; want %d", n, err, c.want)
					}
					rep, err := VerifyExport(bytes.NewReader(buf.Bytes()), keys, nil)
					if err != nil {
						t.Fatal(err)
					}
					wantOK(t, rep)
					if rep.Records != c.want || rep.Writers[0].Links != 60-c.want {
						t.Errorf("%d records, %d links; want %d and %d", rep.Records, rep.Writers[0].Links, c.want, 60-c.want)
					}
					lines, err := ReadLines(bytes.NewReader(buf.Bytes()))
					if err != nil {
						t.Fatal(err)
					}
					for _, ln := range lines {
						if ln.Type == LineRecord && (RecordKey([]byte(ln.Body)) != c.f.Key || c.f.Workspace != "" && ln.Workspace != c.f.Workspace) {
							t.Errorf("seq %d of key %q, workspace %s is in the export", ln.Seq, RecordKey([]byte(ln.Body)), ln.Workspace)
						}
					}
					if strings.Contains(buf.String(), "support-bot") {
						t.Error("another key's record is in the export")
					}
					if c.want == 0 {
						return
					}
					for what, changed := range map[string]string{
						"record": strings.Replace(buf.String(), "mistral-small", "mistral-smalL", 1),
						"link":   changeLeaf(t, buf.String(), format),
					} {
						if changed == buf.String() {
							t.Fatalf("%s: nothing changed", what)
						}
						rep, err := VerifyExport(strings.NewReader(changed), keys, nil)
						if err != nil || rep.OK() {
							t.Errorf("a changed %s verifies: %v %+v", what, err, rep)
						}
					}
				})
			}
		}
	})
}

// changeLeaf changes one hex digit of the first link line's leaf.
func changeLeaf(t *testing.T, export, format string) string {
	t.Helper()
	lines := strings.Split(export, "\n")
	for i, ln := range lines {
		if !strings.HasPrefix(ln, `{"type":"link"`) && !strings.HasPrefix(ln, "link,") {
			continue
		}
		var leaf string
		if format == "jsonl" {
			leaf = gjson.Get(ln, "leaf").String()
		} else {
			leaf = strings.Split(ln, ",")[9]
		}
		d := "0"
		if leaf[0] == '0' {
			d = "1"
		}
		lines[i] = strings.Replace(ln, leaf, d+leaf[1:], 1)
		return strings.Join(lines, "\n")
	}
	t.Fatal("no link line")
	return ""
}

// TestRetention: expired records of one workspace lose their content, the
// fully expired prefix of a chain goes (anchored by a checkpoint), and the
// rest still verifies.
func TestRetention(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o := testOptions(t)
		o.CheckpointInterval = 10 * time.Millisecond
		l := openLog(t, st, s, o)
		old := time.Now().Add(-40 * 24 * time.Hour)
		for i := range 20 { // old support records, then a checkpoint
			r := decision(i, "support")
			r.Time = old.Add(time.Duration(i) * time.Second)
			l.Record(r)
		}
		flush(t, l)
		time.Sleep(30 * time.Millisecond)
		for i := 20; i < 40; i++ { // old, mixed
			r := decision(i, []string{"support", "legal"}[i%2])
			r.Time = old.Add(time.Duration(i) * time.Second)
			l.Record(r)
		}
		recordN(t, l, 40, 20) // new
		closeLog(t, l)
		res, err := st.Prune(context.Background(), Retention{Workspaces: map[string]time.Duration{"support": 30 * 24 * time.Hour}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// The expired prefix ends at the last checkpoint before the first
		// record that must stay (seq 22, legal): after record 20 for sure,
		// and after 21 too when a 10 ms tick fell between 21 and 22.
		c := res.Compacted
		if res.Pruned != 30 || (c != 20 && c != 21) {
			t.Errorf("prune %+v, want 30 pruned, 20 or 21 compacted", res)
		}
		// The key id goes with the principal: a pruned record is found by
		// no key.
		var keyed int
		if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE NOT ` + hasBody + ` AND key_id <> ''`).Scan(&keyed); err != nil || keyed != 0 {
			t.Errorf("%d pruned rows keep their key id (%v)", keyed, err)
		}
		keys := []PublicKey{s.Public()}
		kept := &Retention{Workspaces: map[string]time.Duration{"support": 30 * 24 * time.Hour}}
		rep := mustVerify(t, st, keys, VerifyOptions{Retention: kept, Now: time.Now()})
		wantOK(t, rep)
		w := rep.Writers[0]
		// Against a retention that keeps them longer (or forever), the
		// same removals are deletions: a body blanked by hand and a chain
		// cut at a checkpoint look like retention's work only to a
		// verifier that does not know the retention (the compliance probe).
		longer := &Retention{Workspaces: map[string]time.Duration{"support": 60 * 24 * time.Hour}}
		if rep := mustVerify(t, st, keys, VerifyOptions{Retention: longer, Now: time.Now()}); !strings.Contains(problems(rep), "its body was removed, and retention (1440h0m0s for workspace \"support\")") {
			t.Errorf("pruned before a 60-day retention: %s", problems(rep))
		}
		if rep := mustVerify(t, st, keys, VerifyOptions{Retention: &Retention{}, Now: time.Now()}); !strings.Contains(problems(rep), "retention keeps every record forever") {
			t.Errorf("a chain's start removed under keep-forever: %s", problems(rep))
		}
		if uc := uint64(c); w.FirstSeq != uc+1 || w.AnchoredAt != uc || int64(w.Pruned) != 30-c || int64(w.Records) != 60-c {
			t.Errorf("after retention: %+v", w)
		}
		// The legal records kept their content.
		page, _, err := st.Query(context.Background(), Filter{Workspace: "legal"}, nil, 100)
		if err != nil || len(page) != 20 || page[0].Pruned {
			t.Errorf("legal records: %d %v", len(page), err)
		}
		// A second run changes nothing; tampering is still found after it.
		if res, _ := st.Prune(context.Background(), Retention{Workspaces: map[string]time.Duration{"support": 30 * 24 * time.Hour}}, time.Now()); res.Pruned+res.Compacted != 0 {
			t.Errorf("second prune %+v", res)
		}
		if audittest.EditBody(t, db, "legal", "LEGAL", `writer = $1 AND seq = 22`, w.Writer) != 1 {
			t.Fatal("record 22 not edited")
		}
		if rep := mustVerify(t, st, keys, VerifyOptions{}); rep.OK() || rep.Problems[0].Seq != 22 {
			t.Errorf("tamper after retention: %s", problems(rep))
		}
		// Removing a pruned row is still a deletion.
		sqlExec(t, db, `DELETE FROM audit_entries WHERE writer = $1 AND seq = 23`, w.Writer)
		if rep := mustVerify(t, st, keys, VerifyOptions{}); !strings.Contains(problems(rep), "seq 23: deleted") {
			t.Errorf("deleted tombstone: %s", problems(rep))
		}
	})
}

// TestStoreDown stops PostgreSQL under a running log: refuse mode holds
// the records and reports unhealthy; spool mode stays healthy and writes
// to the spool; both catch up when the server is back, and the chain
// verifies with nothing lost.
func TestStoreDown(t *testing.T) {
	for _, spool := range []bool{false, true} {
		name := map[bool]string{false: "refuse", true: "spool"}[spool]
		t.Run(name, func(t *testing.T) {
			pg, st := stoppableStore(t)
			s := testSigner("a")
			o := testOptions(t)
			o.Spool, o.StoreTimeout = spool, 500*time.Millisecond
			l := openLog(t, st, s, o)
			recordN(t, l, 0, 50)
			flush(t, l)
			pg.Stop()
			recordN(t, l, 50, 50)
			waitFor(t, 10*time.Second, "the log to notice", func() bool { return l.Stats().StoreDown })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := l.Flush(ctx)
			cancel()
			st1 := l.Stats()
			if spool {
				if err != nil || !l.Healthy() || st1.Spooled != 50 || st1.Pending != 0 {
					t.Errorf("spooling: %v %+v", err, st1)
				}
				files, _ := filepath.Glob(filepath.Join(o.SpoolDir, "*.spool"))
				if len(files) != 1 {
					t.Errorf("spool files %v", files)
				}
			} else if err == nil || l.Healthy() || st1.Pending != 50 || st1.OldestAge <= 0 {
				t.Errorf("refusing: %v healthy=%v %+v", err, l.Healthy(), st1)
			}
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
			recordN(t, l, 100, 10)
			waitFor(t, 20*time.Second, "catching up", func() bool { s := l.Stats(); return s.Written == 110 && !s.StoreDown })
			if !l.Healthy() {
				t.Errorf("unhealthy after catching up: %+v", l.Stats())
			}
			closeLog(t, l)
			rep := mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{})
			wantOK(t, rep)
			if rep.Records != 110 {
				t.Errorf("%d records", rep.Records)
			}
		})
	}
}

// TestSpoolReplayedAtStart: a spool left behind (the process died while
// the store was down) is written to the store by the next writer.
func TestSpoolReplayedAtStart(t *testing.T) {
	db := backends()[0].open(t)
	st := openStore(t, db)
	s := testSigner("a")
	o := testOptions(t)
	w := "r1/dead0000dead0000"
	var es []Entry
	prev := ""
	for i := range 5 {
		body := []byte(`{"v":1,"kind":"decision","id":"x` + string(rune('0'+i)) + `"}`)
		e := Entry{Writer: w, Seq: uint64(i + 1), Time: time.Now().UTC().Truncate(time.Microsecond), Kind: KindDecision, ID: "x", Body: body}
		e.seal(prev)
		prev = e.Hash
		es = append(es, e)
	}
	if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sp := newSpool(filepath.Join(o.SpoolDir, spoolName(w)))
	if err := sp.write(es, nil); err != nil {
		t.Fatal(err)
	}
	sp.f.Close()
	l := openLog(t, st, s, o)
	closeLog(t, l)
	spans, err := st.Writers(context.Background(), time.Time{}, time.Time{})
	if err != nil || len(spans) != 1 || spans[0].Writer != w || spans[0].Entries != 5 {
		t.Errorf("replayed: %+v %v", spans, err)
	}
	if files, _ := filepath.Glob(filepath.Join(o.SpoolDir, "*.spool")); len(files) != 0 {
		t.Errorf("spool files left: %v", files)
	}
}

// TestBufferFull: a full buffer drops the record, counts it and turns
// Healthy false; nothing blocks.
func TestBufferFull(t *testing.T) {
	db := backends()[0].open(t)
	st := openStore(t, db)
	o := testOptions(t)
	o.BatchSize, o.Buffer, o.BatchInterval = 8, 8, time.Hour
	l := openLog(t, st, testSigner("a"), o)
	// The writer takes records one batch at a time: hold it in a commit by
	// locking the database.
	tx, err := db.SQL.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO audit_keys (key_id, public_key, first_seen) VALUES ('lock', 'x', 0)`); err != nil {
		t.Fatal(err)
	}
	// The writer cannot commit until the transaction ends, after the
	// loop: a Record that waited for room would never return.
	dropped, sawUnhealthy := 0, false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if !l.Record(decision(i, "support")) {
				dropped++
				// A drop means a full buffer: Healthy says so while it is
				// (the writer may take records out again in between).
				sawUnhealthy = sawUnhealthy || !l.Healthy()
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = tx.Rollback()
		t.Fatal("Record blocked while the buffer was full")
	}
	if dropped == 0 || l.Stats().Dropped != int64(dropped) || !sawUnhealthy {
		t.Errorf("dropped %d, stats %+v, unhealthy while full: %v", dropped, l.Stats(), sawUnhealthy)
	}
	_ = tx.Rollback()
}

// stoppableStore is a store on a PostgreSQL server of the test's own,
// which the test may stop and start again.
func stoppableStore(t *testing.T) (*testsrv.Postgres, *Store) {
	t.Helper()
	pg := testsrv.StartPostgres(t)
	db, err := store.OpenPostgres(context.Background(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return pg, openStore(t, db)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWriterSleepsWhenIdle: with nothing handed over for a while the
// writer stops its batch timer, and the next record still reaches the
// store by itself (no Flush); while records wait for a store that is down
// it keeps retrying instead, so they are written once the store is back
// without another record to wake it.
func TestWriterSleepsWhenIdle(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		st := openStore(t, backends()[0].open(t))
		o := testOptions(t)
		o.idleAfter = 30 * time.Millisecond
		l := openLog(t, st, testSigner("a"), o)
		for round := range 3 {
			recordN(t, l, round, 1)
			waitFor(t, 10*time.Second, "the record written", func() bool { return l.Stats().Written == int64(round+1) })
			waitFor(t, 10*time.Second, "the writer asleep", l.in.Asleep)
		}
		closeLog(t, l)
	})
	t.Run("store down", func(t *testing.T) {
		pg, st := stoppableStore(t)
		o := testOptions(t)
		o.idleAfter, o.StoreTimeout = 30*time.Millisecond, 500*time.Millisecond
		l := openLog(t, st, testSigner("a"), o)
		recordN(t, l, 0, 5)
		flush(t, l)
		pg.Stop()
		recordN(t, l, 5, 5)
		waitFor(t, 10*time.Second, "the log to notice", func() bool { return l.Stats().StoreDown })
		time.Sleep(10 * o.idleAfter) // long past idleAfter: a sleeping writer would not retry
		if l.in.Asleep() {
			t.Error("the writer sleeps with records waiting for the store")
		}
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the waiting records written", func() bool { s := l.Stats(); return s.Written == 10 && !s.StoreDown })
		closeLog(t, l)
	})
}

// TestCollisionIsSaid: a row someone put at the writer's next place (with
// its chain recomputed, as the audit probe did) keeps that place, and the
// genuine record is not in the store; the writer now says so — counted in
// its stats, logged — where it used to drop it without a word. The same
// batch written again (a commit whose answer was lost) is no collision.
func TestCollisionIsSaid(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		l := openLog(t, st, testSigner("a"), testOptions(t))
		recordN(t, l, 0, 3)
		flush(t, l)
		ctx := context.Background()
		var w string
		if err := db.SQL.QueryRowContext(ctx, `SELECT writer FROM audit_entries LIMIT 1`).Scan(&w); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO audit_entries (writer, seq, time_us, kind, workspace, decision_id, prev, body_sha256, hash)
			VALUES ($1, 4, 0, 'decision', 'legal', 'forged', 'x', 'y', 'forged-hash')`, w); err != nil {
			t.Fatal(err)
		}
		recordN(t, l, 3, 2)
		flush(t, l)
		if n, first := st.Collisions(); n != 1 || first != "writer "+w+" seq 4" {
			t.Fatalf("collisions %d at %q", n, first)
		}
		if s := l.Stats(); s.Collisions != 1 {
			t.Errorf("stats %+v", s)
		}
		// Written again, the last batch finds its own rows: nothing new.
		var es []Entry
		rows, err := db.SQL.QueryContext(ctx, `SELECT seq, hash FROM audit_entries WHERE writer = $1 AND seq = 5`, w)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var e Entry
			var seq int64
			if err := rows.Scan(&seq, &e.Hash); err != nil {
				t.Fatal(err)
			}
			e.Writer, e.Seq, e.Kind, e.Workspace, e.ID, e.Pruned = w, uint64(seq), "decision", "legal", "again", true
			es = append(es, e)
		}
		rows.Close()
		if len(es) != 1 {
			t.Fatalf("seq 5: %d rows", len(es))
		}
		if err := st.Append(ctx, es, nil); err != nil {
			t.Fatal(err)
		}
		if n, _ := st.Collisions(); n != 1 {
			t.Errorf("a batch written again counted: %d", n)
		}
		closeLog(t, l)
	})
}

// TestExportAgainstWitness: an export verifies against a witness of the
// same moment — an export cut after an earlier checkpoint verified by
// itself (its writer open), and the auditor had to compare by hand (the
// compliance probe). Cut, it is truncated; whole, it is ok; a witness
// checkpoint the export's chain does not match is a mismatch.
func TestExportAgainstWitness(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o := testOptions(t)
		o.CheckpointInterval = 10 * time.Millisecond
		l := openLog(t, st, s, o)
		recordN(t, l, 0, 20)
		flush(t, l)
		time.Sleep(30 * time.Millisecond) // an interval checkpoint
		recordN(t, l, 20, 20)
		closeLog(t, l)
		cps, err := st.Checkpoints(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		witness := cps[len(cps)-1:] // the writer's last: the shutdown checkpoint
		keys := []PublicKey{s.Public()}
		var whole bytes.Buffer
		if _, err := st.Export(context.Background(), ExportFilter{}, "jsonl", &whole); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyExport(bytes.NewReader(whole.Bytes()), keys, witness)
		if err != nil {
			t.Fatal(err)
		}
		wantOK(t, rep)
		// Cut after the interval checkpoint at seq 20: its lines past it go.
		var cut strings.Builder
		for _, line := range strings.SplitAfter(whole.String(), "\n") {
			if gjson.Get(line, "seq").Int() <= 20 {
				cut.WriteString(line)
			}
		}
		if rep, err := VerifyExport(strings.NewReader(cut.String()), keys, nil); err != nil || !rep.OK() {
			t.Fatalf("the cut export by itself: %v %s", err, problems(rep))
		}
		rep, err = VerifyExport(strings.NewReader(cut.String()), keys, witness)
		if err != nil || rep.OK() || rep.Problems[0].Kind != ProblemTruncated {
			t.Errorf("the cut export against the witness: %v %s", err, problems(rep))
		}
		// A witness that signs another chain at a seq the export holds.
		forged := witness[0]
		forged.Hash = strings.Repeat("0", len(forged.Hash))
		s.Sign(&forged)
		rep, err = VerifyExport(bytes.NewReader(whole.Bytes()), keys, []Checkpoint{forged})
		if err != nil || !strings.Contains(problems(rep), "signs another chain") {
			t.Errorf("a mismatched witness: %v %s", err, problems(rep))
		}
	})
}

// TestPrunedContentLeavesTheFile: a record's content that retention
// removed is gone from the SQLite file and its write-ahead log, not only
// from the rows: it stayed in the file's free space and the log's page
// images, readable with strings(1), until a VACUUM (the data-protection
// probe). secure_delete zeroes what an update removes; the prune empties
// the log.
func TestPrunedContentLeavesTheFile(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := openStore(t, db)
	l := openLog(t, st, testSigner("a"), testOptions(t))
	const marker = "ZEBRA-LEGAL-4711-erika.mustermann"
	old := time.Now().Add(-48 * time.Hour)
	for i := range 30 {
		r := decision(i, "legal")
		r.Time = old.Add(time.Duration(i) * time.Second)
		r.Content = &Content{Messages: []ContentMessage{{Role: "user", Text: fmt.Sprintf("Please summarise contract %d of %s for me.", i, marker)}},
			Answer: "Contract of " + marker + " summarised."}
		l.Record(r)
	}
	recordN(t, l, 30, 5, "support") // newer, kept
	closeLog(t, l)
	found := func() int {
		n := 0
		for _, f := range []string{store.SQLiteFile, store.SQLiteFile + "-wal"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			n += bytes.Count(b, []byte(marker))
		}
		return n
	}
	if found() == 0 {
		t.Fatal("the marker is not in the file before the prune: the test reads nothing")
	}
	res, err := st.Prune(ctx, Retention{Workspaces: map[string]time.Duration{"legal": 24 * time.Hour}}, time.Now())
	if err != nil || res.Pruned != 30 {
		t.Fatalf("prune %+v %v, want 30 pruned", res, err)
	}
	if n := found(); n != 0 {
		t.Errorf("the pruned content is still in the state files %d times", n)
	}
}

// TestTornSpoolReplayedAtStart (the storage probe): a spool with a line
// cut short in its middle (a full disk, in a file written before writes
// were cut back) and at its end (a crash mid-write) is replayed as far as
// it can be read. Such a file stopped every start ("export line 4:
// unexpected EOF"); it is kept beside as *.broken.
func TestTornSpoolReplayedAtStart(t *testing.T) {
	db := backends()[0].open(t)
	st := openStore(t, db)
	o := testOptions(t)
	w := "r1/dead0000dead0001"
	var lines [][]byte
	prev := ""
	for i := range 8 {
		body := []byte(`{"v":1,"kind":"decision","id":"x` + string(rune('0'+i)) + `"}`)
		e := Entry{Writer: w, Seq: uint64(i + 1), Time: time.Now().UTC().Truncate(time.Microsecond), Kind: KindDecision, ID: "x", Body: body}
		e.seal(prev)
		prev = e.Hash
		b, err := json.Marshal(EntryLine(&e, false))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, b)
	}
	var file []byte
	for i, l := range lines {
		switch i {
		case 3: // half of it, and the next batch written straight after
			file = append(file, l[:len(l)/2]...)
		case 7: // half of it, and nothing after
			file = append(file, l[:len(l)/2]...)
		default:
			file = append(append(file, l...), '\n')
		}
	}
	if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.SpoolDir, spoolName(w))
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, st, testSigner("a"), o)
	closeLog(t, l)
	// Lines 1–3 and 6–7 are whole; 4 and 5 share a line, 8 is cut.
	spans, err := st.Writers(context.Background(), time.Time{}, time.Time{})
	if err != nil || len(spans) != 1 || spans[0].Writer != w || spans[0].Entries != 5 {
		t.Errorf("replayed: %+v %v", spans, err)
	}
	if _, err := os.Stat(path + ".broken"); err != nil {
		t.Errorf("the torn spool is not kept: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the torn spool is still there to replay: %v", err)
	}
}

// TestSpoolWriteCutShort (the storage probe): a batch the disk had no
// room for leaves nothing in the spool — half a line there was followed
// by the next batch, and the file could not be replayed. The file is cut
// back to its last whole batch, and the next write follows it.
func TestSpoolWriteCutShort(t *testing.T) {
	if os.Getenv("STELLWERK_SPOOL_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolWriteCutShort$", "-test.v")
		cmd.Env = append(os.Environ(), "STELLWERK_SPOOL_CHILD="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	// The child: files it writes may grow to 64 KiB (a full disk, as
	// write(2) sees it: short writes, then EFBIG).
	signal.Ignore(syscall.SIGXFSZ)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	full := lim
	full.Cur = 64 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Skip("cannot limit file sizes here:", err)
	}
	sp := newSpool(filepath.Join(os.Getenv("STELLWERK_SPOOL_CHILD"), spoolName("r1/full")))
	prev, seq := "", uint64(0)
	batch := func() []Entry {
		var es []Entry
		for range 20 {
			seq++
			e := Entry{Writer: "r1/full", Seq: seq, Time: time.Now().UTC(), Kind: KindDecision, ID: "x",
				Body: []byte(`{"v":1,"kind":"decision","pad":"` + strings.Repeat("p", 400) + `"}`)}
			e.seal(prev)
			prev = e.Hash
			es = append(es, e)
		}
		return es
	}
	written, failed := 0, false
	for range 20 {
		if err := sp.write(batch(), nil); err != nil {
			failed = true
			break
		}
		written++
	}
	if !failed {
		t.Fatal("the file limit never stopped a write")
	}
	// Room again: the next batch follows the last whole one.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	if err := sp.write(batch(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	lines, skipped, err := readSpool(sp.f)
	if err != nil || skipped != 0 || len(lines) != 20*(written+1) {
		t.Errorf("%d lines, %d skipped (%v); want %d whole batches of 20 and none skipped", len(lines), skipped, err, written+1)
	}
}

// TestHealthyWhenTheStoreIsBack (the storage probe): with both the store
// and the spool unwritable, records wait in memory and the log says it is
// unhealthy; once the store takes them, it is healthy again. It stayed
// unhealthy (and stellwerk_audit_healthy 0) until a spool write succeeded,
// which never came while the store answered.
func TestHealthyWhenTheStoreIsBack(t *testing.T) {
	pg, st := stoppableStore(t)
	o := testOptions(t)
	o.Spool, o.StoreTimeout = true, 500*time.Millisecond
	l := openLog(t, st, testSigner("a"), o)
	// A directory where the spool file goes: it cannot be opened.
	if err := os.MkdirAll(l.spool.path, 0o700); err != nil {
		t.Fatal(err)
	}
	recordN(t, l, 0, 10)
	flush(t, l)
	pg.Stop()
	recordN(t, l, 10, 10)
	waitFor(t, 10*time.Second, "the log to find neither the store nor the spool", func() bool { return l.Stats().StoreDown && !l.Healthy() })
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	recordN(t, l, 20, 5)
	waitFor(t, 20*time.Second, "the records in the store", func() bool { s := l.Stats(); return s.Written == 25 && !s.StoreDown })
	if !l.Healthy() {
		t.Errorf("unhealthy with everything in the store: %+v", l.Stats())
	}
	if err := os.Remove(l.spool.path); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
}
