package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit/audittest"
	"github.com/stellwerk/stellwerk/internal/store"
)

// writeChain writes 40 records with a checkpoint after the 20th, and closes
// the writer (shutdown checkpoint at 40).
func writeChain(t *testing.T, st *Store, s *Signer) string {
	t.Helper()
	o := testOptions(t)
	o.CheckpointInterval = 10 * time.Millisecond
	l := openLog(t, st, s, o)
	recordN(t, l, 0, 20)
	flush(t, l)
	time.Sleep(40 * time.Millisecond)
	recordN(t, l, 20, 20)
	closeLog(t, l)
	return l.Writer()
}

func sqlExec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.SQL.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func entryAt(t *testing.T, st *Store, writer string, seq uint64) Entry {
	t.Helper()
	var e Entry
	found := false
	if err := st.EachEntry(context.Background(), writer, seq, seq, func(x *Entry) error { e, found = *x, true; return nil }); err != nil || !found {
		t.Fatalf("entry %d: %v", seq, err)
	}
	return e
}

// putEntry overwrites the row at e.Seq with e's fields.
func putEntry(t *testing.T, db *store.DB, e Entry, atSeq uint64) {
	t.Helper()
	sqlExec(t, db, `UPDATE audit_entries SET time_us = $1, kind = $2, workspace = $3, decision_id = $4, prev = $5, body_sha256 = $6,
		hash = $7, body = NULL, body_s2 = $8 WHERE writer = $9 AND seq = $10`, TimeUS(e.Time), e.Kind, e.Workspace, e.ID, e.Prev, e.BodySHA256, e.Hash,
		putBody(e.Body), e.Writer, int64(atSeq))
}

// TestTamperDetected does each kind of tampering to a real store and
// checks that Verify names it, at the right place.
func TestTamperDetected(t *testing.T) {
	type tamper struct {
		do       func(t *testing.T, db *store.DB, st *Store, writer string)
		kind     string
		seq      uint64
		detail   string
		otherKey bool
	}
	cases := map[string]tamper{
		"body edited": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			if audittest.EditBody(t, db, "mistral-small", "gpt-4o", `writer = $1 AND seq = 7`, w) != 1 {
				t.Fatal("record 7 not edited")
			}
		}, kind: ProblemModified, seq: 7, detail: "content"},
		"compressed body damaged": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			// Bytes that are no S2 block, and a block that claims a huge size.
			sqlExec(t, db, `UPDATE audit_entries SET body_s2 = $1 WHERE writer = $2 AND seq = 8`, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01}, w)
		}, kind: ProblemModified, seq: 8, detail: "content"},
		"stored as text instead": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			// A row in the pre-compression form is read as such: editing it
			// there is found too.
			e := entryAt(t, st, w, 9)
			sqlExec(t, db, `UPDATE audit_entries SET body = $1, body_s2 = NULL WHERE writer = $2 AND seq = 9`,
				strings.ReplaceAll(string(e.Body), "support", "legal"), w)
		}, kind: ProblemModified, seq: 9, detail: "content"},
		"column edited": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			sqlExec(t, db, `UPDATE audit_entries SET workspace = 'other' WHERE writer = $1 AND seq = 12`, w)
		}, kind: ProblemModified, seq: 12, detail: "columns"},
		"rewritten with recomputed hashes": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			e := entryAt(t, st, w, 9)
			e.Body = []byte(strings.Replace(string(e.Body), `"status":200`, `"status":403`, 1))
			e.seal(e.Prev)
			putEntry(t, db, e, 9)
		}, kind: ProblemModified, seq: 9, detail: "rewritten"},
		"deleted": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			sqlExec(t, db, `DELETE FROM audit_entries WHERE writer = $1 AND seq = 15`, w)
		}, kind: ProblemDeleted, seq: 15, detail: "missing"},
		"inserted (later records renumbered)": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			for seq := 40; seq >= 25; seq-- {
				sqlExec(t, db, `UPDATE audit_entries SET seq = seq + 1 WHERE writer = $1 AND seq = $2`, w, seq)
			}
			prev := entryAt(t, st, w, 24)
			forged := Entry{Writer: w, Seq: 25, Time: prev.Time, Kind: KindDecision, Workspace: "support", ID: "forged",
				Body: []byte(`{"v":1,"kind":"decision","id":"forged"}`)}
			forged.seal(prev.Hash)
			if err := st.Append(context.Background(), []Entry{forged}, nil); err != nil {
				t.Fatal(err)
			}
		}, kind: ProblemInserted, seq: 26, detail: "inserted before seq 26"},
		"reordered": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			a, b := entryAt(t, st, w, 30), entryAt(t, st, w, 31)
			putEntry(t, db, b, 30)
			putEntry(t, db, a, 31)
		}, kind: ProblemReordered, seq: 30, detail: "stored as seq [30 31]"},
		"tail truncated": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			sqlExec(t, db, `DELETE FROM audit_entries WHERE writer = $1 AND seq > 36`, w)
		}, kind: ProblemTruncated, seq: 37, detail: "signed by checkpoint 40"},
		// With it goes what it named: where the replica's previous writer
		// ended (found by a helper: that writer's rewritten tail then
		// verified).
		"opening checkpoint deleted": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			sqlExec(t, db, `DELETE FROM audit_checkpoints WHERE writer = $1 AND seq = 0`, w)
		}, kind: ProblemDeleted, seq: 0, detail: "opening checkpoint (seq 0) is missing"},
		"checkpoint forged": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			sqlExec(t, db, `UPDATE audit_checkpoints SET hash = $1 WHERE writer = $2 AND seq = 40`, strings.Repeat("0", 64), w)
		}, kind: ProblemSignature, seq: 40, detail: "signature does not verify"},
		"signed by an unknown key": {do: func(t *testing.T, db *store.DB, st *Store, w string) {}, otherKey: true,
			kind: ProblemSignature, seq: 0, detail: "not among the trusted"},
		"whole tail rewritten consistently": {do: func(t *testing.T, db *store.DB, st *Store, w string) {
			// No secret protects the chain itself: a forger can recompute
			// every hash after a change. The signed checkpoint still says
			// what the writer wrote.
			prev := entryAt(t, st, w, 32).Hash
			for seq := uint64(33); seq <= 40; seq++ {
				e := entryAt(t, st, w, seq)
				e.Body = []byte(strings.ReplaceAll(string(e.Body), `"cost"`, `"kost"`))
				e.seal(prev)
				putEntry(t, db, e, seq)
				prev = e.Hash
			}
		}, kind: ProblemCheckpoint, seq: 0, detail: "differs from what the writer signed"},
	}
	conform(t, func(t *testing.T, db *store.DB) {
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				st := openStore(t, db)
				sqlExec(t, db, `DELETE FROM audit_entries`)
				sqlExec(t, db, `DELETE FROM audit_checkpoints`)
				s := testSigner("a")
				w := writeChain(t, st, s)
				wantOK(t, mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{}))
				tc.do(t, db, st, w)
				keys := []PublicKey{s.Public()}
				if tc.otherKey {
					keys = []PublicKey{testSigner("other").Public()}
				}
				rep := mustVerify(t, st, keys, VerifyOptions{})
				found := false
				for _, p := range rep.Problems {
					if p.Kind == tc.kind && p.Writer == w && (tc.seq == 0 || p.Seq == tc.seq) && strings.Contains(p.Detail, tc.detail) {
						found = true
					}
				}
				if !found {
					t.Errorf("want %s at seq %d (%q); got:\n%s", tc.kind, tc.seq, tc.detail, problems(rep))
				}
			})
		}
	})
}

func problems(r *Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

// TestWholeWriterDeleted: a replica's next writer names the last
// checkpoint of the one before; removing that writer's whole log is found.
func TestWholeWriterDeleted(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		first := writeChain(t, st, s)
		second := writeChain(t, st, s)
		keys := []PublicKey{s.Public()}
		wantOK(t, mustVerify(t, st, keys, VerifyOptions{}))
		sqlExec(t, db, `DELETE FROM audit_entries WHERE writer = $1`, first)
		sqlExec(t, db, `DELETE FROM audit_checkpoints WHERE writer = $1`, first)
		rep := mustVerify(t, st, keys, VerifyOptions{})
		if len(rep.Problems) != 1 || rep.Problems[0].Writer != second || rep.Problems[0].Kind != ProblemDeleted {
			t.Errorf("got:\n%s", problems(rep))
		}
	})
}

// TestTextBodies: rows written before records were stored compressed
// (schema version 3) keep their text body; they read back the same, verify,
// and retention removes them like the others.
func TestTextBodies(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		w := writeChain(t, st, s)
		var want []Entry
		if err := st.EachEntry(context.Background(), w, 1, 1<<62, func(e *Entry) error { want = append(want, *e); return nil }); err != nil {
			t.Fatal(err)
		}
		var stored int64
		for _, e := range want[:30] {
			var n int64
			if err := db.SQL.QueryRow(`SELECT LENGTH(body_s2) FROM audit_entries WHERE writer = $1 AND seq = $2`, w, int64(e.Seq)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 || n >= int64(len(e.Body)) {
				t.Fatalf("seq %d: %d bytes stored for a %d-byte record", e.Seq, n, len(e.Body))
			}
			stored += n
			sqlExec(t, db, `UPDATE audit_entries SET body = $1, body_s2 = NULL WHERE writer = $2 AND seq = $3`, string(e.Body), w, int64(e.Seq))
		}
		t.Logf("records 1–30: %d bytes of JSON stored as %d", func() (n int) {
			for _, e := range want[:30] {
				n += len(e.Body)
			}
			return n
		}(), stored)
		keys := []PublicKey{s.Public()}
		wantOK(t, mustVerify(t, st, keys, VerifyOptions{}))
		i := 0
		if err := st.EachEntry(context.Background(), w, 1, 1<<62, func(e *Entry) error {
			if string(e.Body) != string(want[i].Body) || e.Pruned {
				t.Errorf("seq %d reads back differently", e.Seq)
			}
			i++
			return nil
		}); err != nil || i != len(want) {
			t.Fatalf("%d of %d entries: %v", i, len(want), err)
		}
		res, err := st.Prune(context.Background(), Retention{Default: time.Nanosecond}, time.Now().Add(time.Hour))
		if err != nil || res.Pruned != int64(len(want)) {
			t.Fatalf("prune: %+v %v, want %d pruned", res, err, len(want))
		}
		var left int64
		if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE body IS NOT NULL OR body_s2 IS NOT NULL`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d bodies left after retention: %v", left, err)
		}
		wantOK(t, mustVerify(t, st, keys, VerifyOptions{}))
	})
}

// TestOldReplicasSeeRecords: during a rolling upgrade a replica from before
// schema version 3 reads body alone; a compressed record must not look
// pruned to it (its retention deletes pruned rows below a checkpoint), so
// every stored record keeps a non-NULL body marker until retention prunes it.
func TestOldReplicasSeeRecords(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		w := writeChain(t, st, testSigner("a"))
		var looksPruned, total int64
		if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE writer = $1 AND body IS NULL`, w).Scan(&looksPruned); err != nil {
			t.Fatal(err)
		}
		if err := db.SQL.QueryRow(`SELECT COUNT(*) FROM audit_entries WHERE writer = $1`, w).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if total == 0 || looksPruned != 0 {
			t.Fatalf("%d of %d records look pruned to a replica that reads body alone", looksPruned, total)
		}
	})
}

// TestSignedTailMadeUnsigned: a closed writer's checkpoints after seq 20
// deleted and its records after that rewritten with recomputed hashes look
// like a crashed writer's unsigned tail (found by a helper: verify said ok,
// exit 0). A witness kept outside the store (audit witness, an export)
// finds it whatever the times; without one, an unsigned tail that spans far
// longer than the checkpoint interval does.
func TestSignedTailMadeUnsigned(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		sqlExec(t, db, `DELETE FROM audit_entries`)
		sqlExec(t, db, `DELETE FROM audit_checkpoints`)
		s := testSigner("a")
		w := writeChain(t, st, s)
		keys := []PublicKey{s.Public()}
		cps, err := st.Checkpoints(context.Background(), w)
		if err != nil {
			t.Fatal(err)
		}
		witness := []Checkpoint{cps[len(cps)-1]} // the shutdown checkpoint, as audit witness prints it
		var firstCP uint64
		for _, c := range cps {
			if c.Seq > 0 && firstCP == 0 {
				firstCP = c.Seq
			}
		}
		if firstCP == 0 || firstCP >= 40 {
			t.Fatalf("no interval checkpoint inside the chain: %+v", cps)
		}
		// The forger: the checkpoints after the first interval one go, the
		// records after it are rewritten, minutes apart as a day's traffic.
		sqlExec(t, db, `DELETE FROM audit_checkpoints WHERE writer = $1 AND seq > $2`, w, int64(firstCP))
		prev := entryAt(t, st, w, firstCP).Hash
		base := entryAt(t, st, w, firstCP).Time
		for seq := firstCP + 1; seq <= 40; seq++ {
			e := entryAt(t, st, w, seq)
			e.Body = []byte(strings.ReplaceAll(string(e.Body), `"cost"`, `"kost"`))
			e.Time = base.Add(time.Duration(seq-firstCP) * 2 * time.Minute)
			e.seal(prev)
			putEntry(t, db, e, seq)
			prev = e.Hash
		}
		if rep := mustVerify(t, st, keys, VerifyOptions{}); !rep.OK() {
			t.Fatalf("without a witness or the interval this is what a crash leaves: %s", problems(rep))
		}
		has := func(rep *Report, kind, detail string) bool {
			for _, p := range rep.Problems {
				if p.Kind == kind && p.Writer == w && strings.Contains(p.Detail, detail) {
					return true
				}
			}
			return false
		}
		rep := mustVerify(t, st, keys, VerifyOptions{Witness: witness})
		if !has(rep, ProblemDeleted, "which the witness holds, is missing") || !has(rep, ProblemCheckpoint, "differs from what the writer signed") {
			t.Errorf("with the witness: %s", problems(rep))
		}
		rep = mustVerify(t, st, keys, VerifyOptions{CheckpointInterval: time.Minute})
		if !has(rep, ProblemDeleted, "the checkpoints that signed them are missing") {
			t.Errorf("with the interval: %s", problems(rep))
		}
		// A request as long as the span (a record's time is its arrival):
		// a crash tail of long requests is not taken for tampering (found by
		// a helper: a 96 s stream, then a crash).
		if rep := mustVerify(t, st, keys, VerifyOptions{CheckpointInterval: time.Second, MaxRequest: 40 * 2 * time.Minute}); !rep.OK() {
			t.Errorf("requests as long as the span: %s", problems(rep))
		}
		// A witness signed by a key not trusted proves nothing.
		rep = mustVerify(t, st, []PublicKey{testSigner("other").Public(), s.Public()}, VerifyOptions{Witness: []Checkpoint{{Writer: w, Seq: 40, KeyID: "nope"}}})
		if !has(rep, ProblemSignature, "proves nothing") {
			t.Errorf("an unsigned witness: %s", problems(rep))
		}
	})
}

// TestSlowRequestNotTampering: a running writer chains a request whose
// headers came 20 minutes before its record (a body uploaded slowly: no
// timeout bounds that) beside one of now. The unsigned tail spans 20
// minutes by the records' times, and verify took its missing checkpoints
// for deleted ones (a code review's finding); the record's took_ms says
// when it was chained.
func TestSlowRequestNotTampering(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		sqlExec(t, db, `DELETE FROM audit_entries`)
		sqlExec(t, db, `DELETE FROM audit_checkpoints`)
		s := testSigner("a")
		o := testOptions(t)
		o.CheckpointInterval = time.Hour // no checkpoint signs the tail yet
		l := openLog(t, st, s, o)
		slow := decision(1, "ws")
		slow.Time = time.Now().Add(-20 * time.Minute)
		slow.TookMS = (20 * time.Minute).Milliseconds()
		l.Record(slow)
		now := decision(2, "ws")
		now.Time = time.Now()
		l.Record(now)
		if err := l.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		opts := VerifyOptions{CheckpointInterval: 30 * time.Second, MaxRequest: 2 * time.Minute}
		if rep := mustVerify(t, st, []PublicKey{s.Public()}, opts); !rep.OK() {
			t.Errorf("a running writer's slow request reported as tampering:\n%s", problems(rep))
		}
	})
}

// TestOverlappingWritersOfOneName: a second process with the same
// audit.writer opened while the first idled after an interval checkpoint
// (an overlapping restart, one config for two replicas); the first's
// shutdown checkpoint would take that checkpoint's place, which the
// second's opening checkpoint names. Verify reported the first writer's
// log deleted, and nothing was (the compliance probe). The interval
// checkpoint stays; both chains verify.
func TestOverlappingWritersOfOneName(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		o := testOptions(t)
		o.CheckpointInterval = 10 * time.Millisecond
		a := openLog(t, st, s, o)
		recordN(t, a, 0, 5)
		flush(t, a)
		time.Sleep(60 * time.Millisecond) // a signs an interval checkpoint, then idles
		b := openLog(t, st, s, o)         // links to a's interval checkpoint
		closeLog(t, a)
		recordN(t, b, 5, 5)
		closeLog(t, b)
		if rep := mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{}); !rep.OK() {
			t.Errorf("overlapping writers of one name:\n%s", problems(rep))
		}
	})
}
