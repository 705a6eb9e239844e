package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// backends opens a fresh database of each dialect; the suite runs every
// test on both.
type backend struct {
	name string
	open func(t testing.TB) *store.DB
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) *store.DB {
			db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "state"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
		{"postgres", func(t testing.TB) *store.DB {
			db, err := store.OpenPostgres(context.Background(), testsrv.PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}},
	}
}

func conform(t *testing.T, f func(t *testing.T, db *store.DB)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b.open(t)) })
	}
}

func testSigner(name string) *Signer {
	seed := sha256.Sum256([]byte("audit test key " + name))
	return NewSigner(ed25519.NewKeyFromSeed(seed[:]))
}

func openStore(t testing.TB, db *store.DB) *Store {
	t.Helper()
	st, err := OpenStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testOptions(t testing.TB) Options {
	return Options{Replica: "r1", BatchInterval: 5 * time.Millisecond, BatchSize: 64, Buffer: 4096,
		CheckpointInterval: time.Hour, SpoolDir: filepath.Join(t.TempDir(), "spool"), StoreTimeout: 10 * time.Second}
}

func openLog(t testing.TB, st *Store, s *Signer, o Options) *Log {
	t.Helper()
	l, err := Open(context.Background(), st, s, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// decision is a realistic decision record: eight candidates, two attempts.
func decision(i int, ws string) *Record {
	r := &Record{Kind: KindDecision, ID: fmt.Sprintf("dec-%06d", i), Workspace: ws,
		Principal:      &Principal{KeyID: "support-bot", Team: "tier1", User: "ana@example.com"},
		Request:        &Request{Fingerprint: Fingerprint([]byte(fmt.Sprint("body", i))), Path: "/v1/chat/completions", Model: "auto", Bytes: 812},
		Classification: &Classification{Task: "summarize", TaskConfidence: 0.82, Complexity: "low", Language: "en", Sensitivity: "internal", Risk: "low", PII: map[string]int{"email": 1}, InputTokens: 231, Scan: "complete"},
		RequestPolicy:  &RequestPolicy{Fingerprint: "4f0c1e2d3a4b5c6d", Policy: []byte(`{"optimize":"cost","residency":"eu"}`)},
		Versions:       Versions{Policy: "pv-1a2b3c", Config: ContentHash([]byte("config")), Catalog: ContentHash([]byte("catalog"))},
		Constraint:     "eu residency", Objective: "cost", Chosen: "mistral-small", Served: "mistral-small", Provider: "mistral",
		Reason:     "cheapest eligible model meeting quality 0.70 for summarize (eu residency)",
		Fallbacks:  []string{"gpt-4o-mini-eu", "claude-haiku-eu"},
		Attempts:   []Attempt{{Model: "mistral-small", Provider: "mistral", Status: 200, LatencyMS: 412.5, Outcome: "served"}},
		Usage:      &Usage{PromptTokens: 229, CompletionTokens: 88},
		Cost:       &Cost{EUR: 0.000041, Amount: 0.000045, Currency: "USD", Source: "provider_usage", BaselineModel: "gpt-4o", BaselineEUR: 0.0014, SavingEUR: 0.00136},
		OverheadUS: 412, Status: 200}
	for j, m := range []string{"mistral-small", "gpt-4o-mini-eu", "claude-haiku-eu", "gpt-4o", "claude-sonnet", "llama-70b-onprem", "gemini-flash", "mistral-large"} {
		c := Candidate{Model: m, Provider: strings.Split(m, "-")[0], Verdict: "eligible", EstimatedCostEUR: 0.00004 * float64(j+1), Quality: 0.7 + 0.03*float64(j), LatencyMS: 300 + 50*j, Residency: "eu"}
		switch {
		case j == 0:
			c.Verdict = "chosen"
		case j >= 5:
			c.Verdict, c.Reason = "excluded", "residency us is not allowed for internal data"
		}
		r.Candidates = append(r.Candidates, c)
	}
	return r
}

func recordN(t testing.TB, l *Log, from, n int, ws ...string) {
	t.Helper()
	if len(ws) == 0 {
		ws = []string{"support", "legal"}
	}
	for i := from; i < from+n; i++ {
		if !l.Record(decision(i, ws[i%len(ws)])) {
			t.Fatalf("record %d dropped", i)
		}
	}
}

func flush(t testing.TB, l *Log) {
	t.Helper()
	// A commit slowed past its timeout (a loaded CI machine) is retried
	// by the writer: wait for it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.Flush(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func closeLog(t testing.TB, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownWhenIdle: a writer that wrote nothing since its last
// checkpoint — none at all (the opening one), or nothing since an
// interval checkpoint — still ends its chain with a shutdown checkpoint,
// which takes the last one's place; the chain verifies as closed, and the
// replica's next writer links to it.
func TestShutdownWhenIdle(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o := testOptions(t)
		empty := openLog(t, st, s, o)
		closeLog(t, empty)

		o.CheckpointInterval = 10 * time.Millisecond
		idle := openLog(t, st, s, o)
		recordN(t, idle, 0, 20)
		flush(t, idle)
		deadline := time.Now().Add(30 * time.Second)
		for idle.Stats().Checkpoints < 2 && time.Now().Before(deadline) { // the interval checkpoint of seq 20
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(30 * time.Millisecond) // idle: the head does not move, no more interval checkpoints
		closeLog(t, idle)

		next := openLog(t, st, s, o)
		closeLog(t, next)

		rep := mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{})
		wantOK(t, rep)
		if len(rep.Writers) != 3 {
			t.Fatalf("report %+v", rep)
		}
		for _, w := range rep.Writers {
			if !w.Closed || w.Unsigned != 0 {
				t.Errorf("writer %+v: not closed", w)
			}
		}
		cps, err := st.Checkpoints(context.Background(), idle.Writer())
		if err != nil {
			t.Fatal(err)
		}
		if last := cps[len(cps)-1]; last.Seq != 20 || last.Reason != ReasonShutdown {
			t.Errorf("the idle writer's last checkpoint: %+v", last)
		}
	})
}

func mustVerify(t *testing.T, st *Store, keys []PublicKey, o VerifyOptions) *Report {
	t.Helper()
	rep, err := st.Verify(context.Background(), keys, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func wantOK(t *testing.T, rep *Report) {
	t.Helper()
	if !rep.OK() {
		for _, p := range rep.Problems {
			t.Errorf("problem: %s", p)
		}
	}
}

// TestWriteVerify: records reach the store in order, the chain and its
// checkpoints verify, and the writer ends with a shutdown checkpoint.
func TestWriteVerify(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o := testOptions(t)
		o.CheckpointInterval = 20 * time.Millisecond
		l := openLog(t, st, s, o)
		recordN(t, l, 0, 150)
		flush(t, l)
		time.Sleep(60 * time.Millisecond) // an interval checkpoint
		recordN(t, l, 150, 150)
		closeLog(t, l)
		if st := l.Stats(); st.Written != 300 || st.Dropped != 0 || st.Pending != 0 {
			t.Errorf("stats %+v", st)
		}
		rep := mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{})
		wantOK(t, rep)
		if len(rep.Writers) != 1 || rep.Records != 300 {
			t.Fatalf("report %+v", rep)
		}
		w := rep.Writers[0]
		if w.FirstSeq != 1 || w.LastSeq != 300 || !w.Closed || w.SignedThrough != 300 || w.Unsigned != 0 || w.Checkpoints < 3 {
			t.Errorf("writer %+v", w)
		}
		// Another key does not verify it.
		rep = mustVerify(t, st, []PublicKey{testSigner("b").Public()}, VerifyOptions{})
		if rep.OK() || rep.Problems[0].Kind != ProblemSignature {
			t.Errorf("foreign key accepted: %+v", rep.Problems)
		}
		// The writer fingerprints a body handed over with the record.
		l2 := openLog(t, st, s, testOptions(t))
		l2.Record(&Record{Kind: KindDecision, ID: "fp", Request: &Request{Body: []byte(`{"model":"auto"}`)}})
		closeLog(t, l2)
		if page, _, err := st.Query(context.Background(), Filter{ID: "fp"}, nil, 1); err != nil || len(page) != 1 ||
			!strings.Contains(string(page[0].Body), Fingerprint([]byte(`{"model":"auto"}`))) || strings.Contains(string(page[0].Body), "auto") {
			t.Errorf("fingerprint: %v %+v", err, page)
		}
		// The records read back as written.
		page, next, err := st.Query(context.Background(), Filter{ID: "dec-000007"}, nil, 10)
		if err != nil || len(page) != 1 || next != nil || !strings.Contains(string(page[0].Body), `"chosen":"mistral-small"`) ||
			page[0].Workspace != "legal" {
			t.Fatalf("query: %v %d %+v", err, len(page), page)
		}
	})
}

// TestConcurrentWriters: two replicas write the same store at once, each
// its own chain; both verify.
func TestConcurrentWriters(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o1, o2 := testOptions(t), testOptions(t)
		o2.Replica = "r2"
		l1, l2 := openLog(t, st, s, o1), openLog(t, st, s, o2)
		done := make(chan struct{})
		go func() { recordN(t, l2, 1000, 500); close(done) }()
		recordN(t, l1, 0, 500)
		<-done
		closeLog(t, l1)
		closeLog(t, l2)
		rep := mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{})
		wantOK(t, rep)
		if len(rep.Writers) != 2 || rep.Records != 1000 {
			t.Errorf("report %+v", rep.Writers)
		}
	})
}

// TestVersionsKept: a version is kept once under its hash and read back
// byte for byte; an unknown hash is ErrNoVersion.
func TestVersionsKept(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		ctx := context.Background()
		body := []byte("routing:\n  default_model: m\n# ü\n")
		h := ContentHash(body)
		for range 2 {
			if err := st.PutVersion(ctx, VersionConfig, h, body); err != nil {
				t.Fatal(err)
			}
		}
		kind, got, err := st.Version(ctx, h)
		if err != nil || kind != VersionConfig || string(got) != string(body) {
			t.Fatalf("read back %q %q %v", kind, got, err)
		}
		if _, _, err := st.Version(ctx, ContentHash([]byte("other"))); !errors.Is(err, ErrNoVersion) {
			t.Fatalf("unknown hash: %v", err)
		}
	})
}

// TestAppendAgain: a batch written again — its commit went through but its
// answer was lost, and the writer retries it with the records that came
// since — keeps each record once, as does a record repeated within one
// batch. (On SQLite the insert is OR FAIL, so it keeps no statement
// journal: a statement that fails ends its transaction anyway, store.Tx.)
func TestAppendAgain(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		ctx := context.Background()
		es := make([]Entry, 6)
		prev := ""
		for i := range es {
			body, err := jsonRecord(wideDecision(i, 8))
			if err != nil {
				t.Fatal(err)
			}
			es[i] = Entry{Writer: "again/1", Seq: uint64(i + 1), Time: time.Now().UTC().Truncate(time.Microsecond), Kind: KindDecision,
				Workspace: "support", ID: fmt.Sprint("d", i), Body: body}
			es[i].seal(prev)
			prev = es[i].Hash
		}
		var got []uint64
		count := func() []uint64 {
			got = got[:0]
			if err := st.EachEntry(ctx, "again/1", 1, 100, func(e *Entry) error { got = append(got, e.Seq); return nil }); err != nil {
				t.Fatal(err)
			}
			return got
		}
		// A writer opens with a checkpoint at seq 0, as Open writes it.
		s := testSigner("a")
		open := Checkpoint{Writer: "again/1", Seq: 0, Time: time.Now().UTC().Truncate(time.Microsecond), Reason: ReasonOpen}
		s.Sign(&open)
		if err := st.Append(ctx, es[:3], []Checkpoint{open}); err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, es[:5], nil); err != nil {
			t.Fatalf("the batch again, with two more: %v", err)
		}
		if n := count(); !slices.Equal(n, []uint64{1, 2, 3, 4, 5}) {
			t.Fatalf("rows %v, want 1–5", n)
		}
		if err := st.Append(ctx, []Entry{es[5], es[5]}, nil); err != nil {
			t.Fatalf("a record twice in one batch: %v", err)
		}
		if n := count(); !slices.Equal(n, []uint64{1, 2, 3, 4, 5, 6}) {
			t.Fatalf("rows %v, want 1–6", n)
		}
		wantOK(t, mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{}))
	})
}
