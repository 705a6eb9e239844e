package extproc

import (
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"testing"
)

// BenchmarkAttemptLog: the attempt log under parallel load, one op per
// request. "served" is a failed-over request whose edge and egress streams
// run in this process; "two replicas" alternates such a request with an
// attempt whose edge stream runs on another replica (its record has no edge
// here to read it). entries is what the log holds afterwards.
func BenchmarkAttemptLog(b *testing.B) {
	for _, bc := range []struct {
		name   string
		orphan bool
	}{{"served", false}, {"two replicas", true}} {
		b.Run(bc.name, func(b *testing.B) {
			l := &attemptLog{}
			var goroutines atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				g := goroutines.Add(1)
				var n uint64
				for pb.Next() {
					n++
					id := benchID(g, n)
					if bc.orphan && n%2 == 0 {
						benchOrphan(l, id)
					} else {
						benchServed(l, id)
					}
				}
			})
			b.ReportMetric(float64(benchEntries(l)), "entries")
		})
	}
}

// benchID is a decision id as long as a real one, unique per goroutine and n.
func benchID(g, n uint64) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], g)
	binary.BigEndian.PutUint64(raw[8:], n)
	return hex.EncodeToString(raw[:])
}

var (
	benchFailed = attempt{Provider: "a", Model: "a1", Status: 503, Outcome: "failed", Reason: "status 503"}
	benchOK     = attempt{Provider: "b", Model: "b1", Status: 200, Outcome: "served"}
)

// benchServed: attempt 0 fails, attempt 1 serves, the edge reads both.
func benchServed(l *attemptLog, id string) {
	l.open(id, 2)
	l.record(id, 0, benchFailed)
	l.record(id, 1, benchOK)
	_ = l.take(id)
}

// benchOrphan: an attempt whose edge stream is on another replica.
func benchOrphan(l *attemptLog, id string) { l.record(id, 1, benchOK) }

func benchEntries(l *attemptLog) int { return l.Len() }
