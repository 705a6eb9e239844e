// Package live fans finished decisions out to whoever is watching the
// console's live stream (GET /admin/decisions/stream). It is built so that
// nobody watching costs one atomic load per request, and a slow watcher
// never slows a request: each watcher has a bounded buffer, and a decision
// that does not fit is dropped for that watcher and counted.
package live

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
)

// Buffer is how many decisions wait for one watcher before newer ones are
// dropped for it.
const Buffer = 256

// Hub is the set of watchers. The zero value is ready to use; a nil *Hub
// has no watchers.
type Hub struct {
	n       atomic.Int64 // watchers, read first on every request
	mu      sync.Mutex
	subs    map[*Sub]struct{}
	dropped atomic.Int64
}

// Sub is one watcher: it reads C until it calls Close.
type Sub struct {
	C       <-chan *Decision
	c       chan *Decision
	hub     *Hub
	dropped atomic.Int64
}

// Watching reports whether anyone watches; the edge builds nothing for the
// stream when nobody does.
func (h *Hub) Watching() bool { return h != nil && h.n.Load() > 0 }

// Subscribe adds a watcher.
func (h *Hub) Subscribe() *Sub {
	c := make(chan *Decision, Buffer)
	s := &Sub{C: c, c: c, hub: h}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Sub]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.n.Store(int64(len(h.subs)))
	h.mu.Unlock()
	return s
}

// Close removes the watcher; it receives nothing more. C is not closed:
// the reader stops reading when it stops watching.
func (s *Sub) Close() {
	h := s.hub
	h.mu.Lock()
	delete(h.subs, s)
	h.n.Store(int64(len(h.subs)))
	h.mu.Unlock()
}

// Dropped is how many decisions this watcher missed because its buffer was
// full.
func (s *Sub) Dropped() int64 { return s.dropped.Load() }

// Dropped is how many decisions all watchers together missed.
func (h *Hub) Dropped() int64 {
	if h == nil {
		return 0
	}
	return h.dropped.Load()
}

// Watchers is how many watchers there are.
func (h *Hub) Watchers() int64 {
	if h == nil {
		return 0
	}
	return h.n.Load()
}

// Publish hands d to every watcher without waiting. d must not change
// afterwards: watchers read it concurrently.
func (h *Hub) Publish(d *Decision) {
	if !h.Watching() {
		return
	}
	h.mu.Lock()
	for s := range h.subs {
		select {
		case s.c <- d:
		default:
			s.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
	h.mu.Unlock()
}

// Decision is what a watcher sees of one finished request: its audit
// record, and the time from its arrival to its end as stellwerk saw it.
type Decision struct {
	*audit.Record
	LatencyMS int64 `json:"latency_ms"`
}

// View is the part of a decision record a watcher sees: every fact of the
// decision, and neither the request's body, its replay inputs (which
// repeat the classification and state) nor any kept content. The audit
// writer changes its own record's Request after the hand-over, so the
// view has its own copy.
func View(r *audit.Record, latency time.Duration) *Decision {
	v := *r
	v.V = audit.SchemaVersion // Log.Record sets it on its own copy later
	if r.Request != nil {
		q := *r.Request
		q.Body = nil
		v.Request = &q
	}
	v.Replay, v.Content = nil, nil
	v.Candidates, v.Table = r.CandidateList(), nil
	return &Decision{Record: &v, LatencyMS: latency.Milliseconds()}
}
