package live

import (
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
)

// TestHub: nobody watching means nothing is sent; a watcher gets every
// decision; a full buffer drops (and counts) instead of waiting; a closed
// watcher gets nothing more.
func TestHub(t *testing.T) {
	var nilHub *Hub
	if nilHub.Watching() || nilHub.Watchers() != 0 || nilHub.Dropped() != 0 {
		t.Fatal("a nil hub has watchers")
	}
	h := &Hub{}
	h.Publish(&Decision{Record: &audit.Record{ID: "unseen"}}) // nobody: nothing happens
	s := h.Subscribe()
	if !h.Watching() || h.Watchers() != 1 {
		t.Fatalf("watchers: %d", h.Watchers())
	}
	h.Publish(&Decision{Record: &audit.Record{ID: "a"}})
	if d := <-s.C; d.ID != "a" {
		t.Fatalf("got %q", d.ID)
	}

	done := make(chan struct{})
	go func() { // a watcher that reads nothing must not hold a request
		for i := 0; i < Buffer+10; i++ {
			h.Publish(&Decision{Record: &audit.Record{ID: "x"}})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full buffer")
	}
	if s.Dropped() != 10 || h.Dropped() != 10 || len(s.C) != Buffer {
		t.Fatalf("dropped %d (hub %d), buffered %d", s.Dropped(), h.Dropped(), len(s.C))
	}

	s.Close()
	if h.Watching() {
		t.Fatal("still watching after Close")
	}
	for len(s.C) > 0 {
		<-s.C
	}
	h.Publish(&Decision{Record: &audit.Record{ID: "after"}})
	if len(s.C) != 0 {
		t.Fatal("a closed watcher got a decision")
	}
}

// TestView: a watcher never sees the request's body, the replay inputs or
// kept content, and the view does not share the Request the audit writer
// changes after the hand-over.
func TestView(t *testing.T) {
	r := &audit.Record{ID: "d1", Request: &audit.Request{Body: []byte(`{"messages":"secret"}`), Model: "auto"},
		Replay: map[string]any{"x": 1}, Content: &audit.Content{Answer: "text"}, Chosen: "m"}
	v := View(r, 1500*time.Millisecond)
	if v.V != audit.SchemaVersion || v.Request.Body != nil || v.Replay != nil || v.Content != nil || v.Request.Model != "auto" || v.Chosen != "m" || v.LatencyMS != 1500 {
		t.Fatalf("view: %+v %+v", v.Record, v.Request)
	}
	if r.Request.Body == nil || r.Replay == nil || r.Content == nil {
		t.Fatal("View changed the audit record")
	}
	r.Request.Fingerprint = "sha256:…" // what the writer does later
	if v.Request.Fingerprint != "" {
		t.Fatal("the view shares the audit record's Request")
	}
}
