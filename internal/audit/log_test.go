package audit

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/stellwerk/stellwerk/internal/handoff"
	"go.uber.org/zap"
)

// TestQueuedBodiesBounded: the request bodies waiting for the writer to
// hash them hold at most maxQueuedBodies; past that a request hashes its
// own, and the record carries the same fingerprint either way. A record
// whose body the request hashed is detached from it: a model read in place
// from the body kept all of it (and the bound kept nothing).
func TestQueuedBodiesBounded(t *testing.T) {
	l := &Log{in: handoff.New[*Record](1<<10, 1<<10), log: zap.NewNop()}
	big := bytes.Repeat([]byte("x"), 8<<20)
	model := unsafe.String(&big[0], 5) // as the request's parse reads it
	var hashed int
	for i := 0; i < 20; i++ {
		in := &detachable{}
		r := &Record{Kind: KindDecision, ID: fmt.Sprint(i), Request: &Request{Body: big, Model: model}, Replay: in}
		l.Record(r)
		if r.Request.Body == nil {
			hashed++
			if r.Request.Fingerprint != Fingerprint(big) {
				t.Fatalf("fingerprint %q", r.Request.Fingerprint)
			}
			if unsafe.StringData(r.Request.Model) == &big[0] || !in.detached || r.Request.Model != "xxxxx" {
				t.Fatalf("record %d: its body hashed by the request but the record not detached (model %q, replay detached %v)",
					i, r.Request.Model, in.detached)
			}
		} else if in.detached {
			t.Fatalf("record %d detached while its body waits for the writer", i)
		}
	}
	if got := l.bodies.Load(); got > maxQueuedBodies || hashed != 20-maxQueuedBodies/(8<<20) {
		t.Errorf("%d bytes queued, %d of 20 hashed by the request", got, hashed)
	}
}

type detachable struct{ detached bool }

func (d *detachable) Detach() { d.detached = true }
