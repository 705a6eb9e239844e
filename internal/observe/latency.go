// Package observe keeps what live traffic teaches about models: their
// latency, learned as an exponentially weighted moving average of the time
// from routing a request to the provider's first response bytes.
//
// What was learned fades: between observations a model's learned latency
// decays toward its catalog seed (half-life HalfLife), so a model measured
// slow once — a cold TLS connection, one bad minute — and then avoided is
// tried again after a while instead of being starved forever, and the next
// observation blends with the faded value.
package observe

import (
	"math"
	"sync"
	"time"
)

// alpha weighs each new observation; 0.2 follows changes within about ten
// requests without jumping on one slow answer.
const alpha = 0.2

// DefaultHalfLife is how fast an unrefreshed observation fades toward the
// seed when Latency.HalfLife is zero.
const DefaultHalfLife = 5 * time.Minute

// Latency is safe for concurrent use.
type Latency struct {
	// HalfLife is the time after which half of the difference between the
	// learned latency and the seed is forgotten (0: DefaultHalfLife).
	HalfLife time.Duration
	// Now is the clock (nil: time.Now); tests set it.
	Now func() time.Time

	m sync.Map // model id → *cell
}

type cell struct {
	mu   sync.Mutex
	ms   float64
	at   time.Time
	seed float64 // the seed the last Get or Observe faded toward
}

func (l *Latency) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Latency) halfLife() time.Duration {
	if l.HalfLife > 0 {
		return l.HalfLife
	}
	return DefaultHalfLife
}

// faded is the cell's value at t, decayed toward seed.
func (l *Latency) faded(c *cell, seed float64, t time.Time) float64 {
	age := t.Sub(c.at)
	if age <= 0 || seed < 0 {
		return c.ms
	}
	return seed + (c.ms-seed)*math.Exp2(-float64(age)/float64(l.halfLife()))
}

// Observe records one response time for a model.
func (l *Latency) Observe(model string, d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 0 || math.IsNaN(ms) {
		return
	}
	t := l.now()
	v, loaded := l.m.LoadOrStore(model, &cell{ms: ms, at: t, seed: -1})
	if !loaded {
		return
	}
	c := v.(*cell)
	c.mu.Lock()
	c.ms = alpha*ms + (1-alpha)*l.faded(c, c.seed, t)
	c.at = t
	c.mu.Unlock()
}

// Get returns the learned latency of a model in ms, faded toward seed by
// the time since its last observation, or seed when none was observed yet.
func (l *Latency) Get(model string, seed int) int {
	if l == nil {
		return seed
	}
	v, ok := l.m.Load(model)
	if !ok {
		return seed
	}
	c := v.(*cell)
	c.mu.Lock()
	c.seed = float64(seed)
	ms := l.faded(c, float64(seed), l.now())
	c.mu.Unlock()
	return int(math.Round(ms))
}
