package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestTellOncePerPeriodSigned: each budget, subject and kind is told once
// per period, signed with the secret; a later period tells again.
func TestTellOncePerPeriodSigned(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write(b)
		if r.Header.Get("x-stellwerk-signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("signature %q", r.Header.Get("x-stellwerk-signature"))
		}
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer srv.Close()
	w := New(srv.URL+"/hook?token=abc", []byte("s3cret"), "r1", nil, zap.NewNop())
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	reset := now.Add(14 * time.Hour)
	ev := Event{Kind: "budget_warning", Budget: "team-day", Subject: "acme/ml", Period: "day", Ratio: 0.81, At: now, Resets: reset}
	w.Tell(ev)
	ev.Ratio, ev.At = 0.9, now.Add(time.Hour)
	w.Tell(ev) // same period: already told
	ev.Kind = "budget_exhausted"
	w.Tell(ev)
	next := ev
	next.Kind, next.At, next.Resets = "budget_warning", reset.Add(time.Hour), reset.Add(24*time.Hour)
	w.Tell(next)
	w.Close()
	if len(got) != 3 || got[0].Kind != "budget_warning" || got[1].Kind != "budget_exhausted" || got[2].At != next.At || got[0].Replica != "r1" {
		t.Fatalf("told %+v", got)
	}
}

// TestFullQueueDrops: a webhook that hangs never blocks Tell.
func TestFullQueueDrops(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	w := New(srv.URL, nil, "", nil, zap.NewNop())
	// The webhook never answers: a Tell that waited for room would never
	// return.
	done := make(chan struct{})
	go func() {
		defer close(done)
		now := time.Now()
		for i := 0; i < queueSize+50; i++ {
			w.Tell(Event{Kind: "budget_warning", Budget: "b", Subject: string(rune('a'+i%26)) + string(rune(i)), At: now})
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Tell blocked on a full queue")
	}
	if w.Dropped() == 0 {
		t.Errorf("dropped %d of %d", w.Dropped(), queueSize+50)
	}
}
