// Package logevery bounds a log line that would repeat with every request
// (a store that does not answer, a client refused at the handshake) to one
// line an interval, carrying how many occurrences it stands for: an outage
// is said, and does not flood the log (the fleet probe counted 740 lines a
// replica in 30 s of Redis being down).
package logevery

import (
	"sync/atomic"
	"time"
)

// Interval is a Limiter's default: one line every ten seconds.
const Interval = 10 * time.Second

// Limiter counts occurrences and lets one through an interval. The zero
// value uses Interval; it is safe for concurrent use.
type Limiter struct {
	Every time.Duration
	last  atomic.Int64 // unix nanoseconds of the last line
	n     atomic.Int64 // occurrences since the last line
}

// Allow counts one occurrence and reports whether to log it now, with the
// occurrences the line stands for (this one and those not logged since the
// last).
func (l *Limiter) Allow() (bool, int64) {
	every := l.Every
	if every <= 0 {
		every = Interval
	}
	n := l.n.Add(1)
	now, last := time.Now().UnixNano(), l.last.Load()
	if now-last < int64(every) || !l.last.CompareAndSwap(last, now) {
		return false, 0
	}
	l.n.Add(-n)
	return true, n
}
