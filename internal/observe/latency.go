// Package observe keeps what live traffic teaches about models: their
// latency, learned as an exponentially weighted moving average of the time
// from routing a request to the provider's first response bytes.
package observe

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// alpha weighs each new observation; 0.2 follows changes within about ten
// requests without jumping on one slow answer.
const alpha = 0.2

// Latency is safe for concurrent use.
type Latency struct {
	m sync.Map // model id → *atomic.Uint64 (float64 bits, milliseconds)
}

// Observe records one response time for a model.
func (l *Latency) Observe(model string, d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 0 || math.IsNaN(ms) {
		return
	}
	v, loaded := l.m.LoadOrStore(model, new(atomic.Uint64))
	cell := v.(*atomic.Uint64)
	if !loaded {
		cell.Store(math.Float64bits(ms))
		return
	}
	for {
		old := cell.Load()
		next := alpha*ms + (1-alpha)*math.Float64frombits(old)
		if cell.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Get returns the learned latency of a model in ms, or seed when none was
// observed yet.
func (l *Latency) Get(model string, seed int) int {
	if l == nil {
		return seed
	}
	v, ok := l.m.Load(model)
	if !ok {
		return seed
	}
	return int(math.Round(math.Float64frombits(v.(*atomic.Uint64).Load())))
}
