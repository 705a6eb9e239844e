package audit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/stellwerk/stellwerk/internal/store"
)

// withReplay is decision(i, ws) with replay inputs that name the caller
// (headers, user, principal) beside the learned latencies.
func withReplay(i int, ws string) *Record {
	r := decision(i, ws)
	r.Replay = map[string]any{"v": 1, "decision_id": r.ID, "path": "/v1/chat/completions", "model": "auto",
		"headers": map[string]string{"x-request-id": "req-ab12cd34"}, "user": "end-user-4711",
		"principal": map[string]any{"key_id": "support-bot", "workspace": ws},
		"now":       "2026-12-03T08:00:00Z", "latency_ms": map[string]int{"mistral-small": 412, "gpt-4o": 633}}
	return r
}

func dictionaryRows(t *testing.T, db *store.DB) map[string][]byte {
	t.Helper()
	rows, err := db.SQL.Query(`SELECT id, body FROM audit_dictionaries`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	return out
}

// TestDictionaryCompression: decision records are stored against one
// dictionary, read back as written (also by a store that has not seen the
// dictionary yet), verify, and take less room than compressed alone.
func TestDictionaryCompression(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		s := testSigner("a")
		l := openLog(t, st, s, testOptions(t))
		for i := range 300 {
			if !l.Record(withReplay(i, []string{"support", "legal"}[i%2])) {
				t.Fatalf("record %d dropped", i)
			}
		}
		closeLog(t, l)
		dicts := dictionaryRows(t, db)
		if len(dicts) != 1 {
			t.Fatalf("%d dictionaries, want 1", len(dicts))
		}
		var withDict, rows int
		if err := db.SQL.QueryRow(`SELECT COUNT(body_dict), COUNT(*) FROM audit_entries`).Scan(&withDict, &rows); err != nil {
			t.Fatal(err)
		}
		if rows != 300 || withDict != 300 {
			t.Fatalf("%d of %d rows compressed against a dictionary", withDict, rows)
		}
		wantOK(t, mustVerify(t, st, []PublicKey{s.Public()}, VerifyOptions{}))

		// A store that has not made the dictionary reads it.
		cold := openStore(t, db)
		page, _, err := cold.Query(context.Background(), Filter{ID: "dec-000007"}, nil, 10)
		if err != nil || len(page) != 1 || !strings.Contains(string(page[0].Body), `"chosen":"mistral-small"`) ||
			!strings.Contains(string(page[0].Body), `"user":"end-user-4711"`) {
			t.Fatalf("cold read: %v %+v", err, page)
		}
		wantOK(t, mustVerify(t, cold, []PublicKey{s.Public()}, VerifyOptions{}))

		// Against the dictionary the records take less room than alone.
		var stored, alone int
		err = cold.EachEntry(context.Background(), w1(t, cold), 1, 300, func(e *Entry) error {
			alone += len(s2.Encode(nil, e.Body))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SQL.QueryRow(`SELECT SUM(LENGTH(body_s2)) FROM audit_entries`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored >= alone*3/4 {
			t.Errorf("stored %d bytes against the dictionary, %d alone", stored, alone)
		}
		t.Logf("stored %d bytes against the dictionary, %d alone", stored, alone)
	})
}

// w1 is the store's only writer.
func w1(t *testing.T, st *Store) string {
	t.Helper()
	ws, err := st.Writers(context.Background(), time.Time{}, time.Time{})
	if err != nil || len(ws) != 1 {
		t.Fatalf("writers %v %+v", err, ws)
	}
	return ws[0].Writer
}

// TestDictionaryHoldsNoIdentity: a dictionary, which retention does not
// remove, holds nothing that identifies a request or its caller — only
// the members it is made of.
func TestDictionaryHoldsNoIdentity(t *testing.T) {
	r := withReplay(42, "legal")
	b, err := encodeRecord(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	d := newDictionary(b, time.Now())
	if d == nil {
		t.Fatal("no dictionary")
	}
	got := string(d.stored)
	for _, secret := range []string{r.ID, "ana@example.com", "support-bot", "tier1", r.Request.Fingerprint, "req-ab12cd34",
		"end-user-4711", "2026-12-03T08:00:00Z", `"optimize"`, `"legal"`, `"workspace"`, `"time"`} {
		if strings.Contains(got, secret) {
			t.Errorf("dictionary holds %q", secret)
		}
	}
	for _, kept := range []string{`"candidates":{"model":["mistral-small"`, `"residency us is not allowed for internal data"`, `"latency_ms":{"gpt-4o":633`} {
		if !strings.Contains(got, kept) {
			t.Errorf("dictionary lacks %s: %s", kept, got)
		}
	}
	if newDictionary([]byte(`{"v":2,"kind":"decision"`), time.Now()) != nil {
		t.Error("a dictionary from a record that is not JSON")
	}
}

// TestDictionaryRotation: a writer's store makes a new dictionary after
// dictMaxAge; the records of both read back and verify, also after the
// first dictionary's records were pruned.
func TestDictionaryRotation(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		var mu sync.Mutex
		now := time.Now()
		st.dicts.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		s := testSigner("a")
		l := openLog(t, st, s, testOptions(t))
		recordN(t, l, 0, 50)
		flush(t, l)
		mu.Lock()
		now = now.Add(dictMaxAge)
		mu.Unlock()
		for i := 50; i < 100; i++ { // what a new catalog or policy would change
			r := decision(i, "support")
			r.Objective, r.Classification.Task = "quality", "code"
			if !l.Record(r) {
				t.Fatalf("record %d dropped", i)
			}
		}
		closeLog(t, l)
		if n := len(dictionaryRows(t, db)); n != 2 {
			t.Fatalf("%d dictionaries, want 2", n)
		}
		var ids int
		if err := db.SQL.QueryRow(`SELECT COUNT(DISTINCT body_dict) FROM audit_entries`).Scan(&ids); err != nil || ids != 2 {
			t.Fatalf("rows name %d dictionaries (%v), want 2", ids, err)
		}
		cold := openStore(t, db)
		wantOK(t, mustVerify(t, cold, []PublicKey{s.Public()}, VerifyOptions{}))
		for _, id := range []string{"dec-000003", "dec-000077"} {
			page, _, err := cold.Query(context.Background(), Filter{ID: id}, nil, 1)
			if err != nil || len(page) != 1 || !strings.Contains(string(page[0].Body), `"id":"`+id+`"`) {
				t.Fatalf("%s: %v %+v", id, err, page)
			}
		}
	})
}

// TestDictionaryLost: records whose dictionary is gone, or was altered,
// verify as modified and read without a body; nothing else fails.
func TestDictionaryLost(t *testing.T) {
	for _, how := range []string{"deleted", "altered"} {
		t.Run(how, func(t *testing.T) {
			conform(t, func(t *testing.T, db *store.DB) {
				st := openStore(t, db)
				s := testSigner("a")
				l := openLog(t, st, s, testOptions(t))
				recordN(t, l, 0, 20)
				closeLog(t, l)
				q := `DELETE FROM audit_dictionaries`
				if how == "altered" {
					q = `UPDATE audit_dictionaries SET body = $1`
				}
				var args []any
				if how == "altered" {
					args = append(args, s2.MakeDict([]byte(strings.Repeat(`{"candidates":"forged"}`, 40)), nil).Bytes())
				}
				if _, err := db.SQL.Exec(q, args...); err != nil {
					t.Fatal(err)
				}
				cold := openStore(t, db)
				rep := mustVerify(t, cold, []PublicKey{s.Public()}, VerifyOptions{})
				if rep.OK() {
					t.Fatal("records without their dictionary verified")
				}
				// Each names the dictionary, not an edit of the record (the
				// compliance probe read 50 records "edited").
				for _, p := range rep.Problems {
					if p.Kind != ProblemModified || !strings.Contains(p.Detail, "compressed against dictionary") {
						t.Errorf("problem %s", p)
					}
				}
				page, _, err := cold.Query(context.Background(), Filter{ID: "dec-000003"}, nil, 1)
				if err != nil || len(page) != 1 || page[0].Body != nil {
					t.Fatalf("read: %v %+v", err, page)
				}
			})
		})
	}
}

// TestDictionaryLargeRecord: a record larger than S2's dictionary window
// (64 KiB) round-trips through a dictionary.
func TestDictionaryLargeRecord(t *testing.T) {
	b, err := encodeRecord(nil, withReplay(1, "support"))
	if err != nil {
		t.Fatal(err)
	}
	d := newDictionary(b, time.Now())
	big := withReplay(2, "support")
	for i := range 3000 {
		big.Candidates = append(big.Candidates, Candidate{Model: "model-" + strings.Repeat("x", i%17), Verdict: "rejected",
			Reason: "quality: below the floor", Quality: float64(i) / 3000})
	}
	body, err := encodeRecord(nil, big)
	if err != nil || len(body) < 200<<10 {
		t.Fatalf("%d bytes, %v", len(body), err)
	}
	z := d.d.Encode(nil, body)
	back, err := s2.NewDict(d.stored).Decode(nil, z)
	if err != nil || string(back) != string(body) {
		t.Fatalf("round trip: %v", err)
	}
}
