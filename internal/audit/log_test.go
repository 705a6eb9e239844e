package audit

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stellwerk/stellwerk/internal/handoff"
	"go.uber.org/zap"
)

// TestQueuedBodiesBounded: the request bodies waiting for the writer to
// hash them hold at most maxQueuedBodies; past that a request hashes its
// own, and the record carries the same fingerprint either way.
func TestQueuedBodiesBounded(t *testing.T) {
	l := &Log{in: handoff.New[*Record](1<<10, 1<<10), log: zap.NewNop()}
	big := bytes.Repeat([]byte("x"), 8<<20)
	var hashed int
	for i := 0; i < 20; i++ {
		r := &Record{Kind: KindDecision, ID: fmt.Sprint(i), Request: &Request{Body: big}}
		l.Record(r)
		if r.Request.Body == nil {
			hashed++
			if r.Request.Fingerprint != Fingerprint(big) {
				t.Fatalf("fingerprint %q", r.Request.Fingerprint)
			}
		}
	}
	if got := l.bodies.Load(); got > maxQueuedBodies || hashed != 20-maxQueuedBodies/(8<<20) {
		t.Errorf("%d bytes queued, %d of 20 hashed by the request", got, hashed)
	}
}
