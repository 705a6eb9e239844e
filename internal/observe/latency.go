// Package observe keeps what live traffic teaches about models: their
// latency, learned as an exponentially weighted moving average of the time
// from routing a request to the provider's first response bytes. Streams
// and JSON answers are learned apart: a stream's first bytes come with its
// first token (time to first token), a JSON answer's with the whole
// completion, and selection compares each kind of request by its own.
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
	"sync/atomic"
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

	m  sync.Map     // model id → *Cell
	hl atomic.Int64 // SetHalfLife's, ns; 0: HalfLife
}

// SetHalfLife changes the half-life (routing.latency_half_life, on start and
// reload) while requests read it; what was learned stays.
func (l *Latency) SetHalfLife(d time.Duration) { l.hl.Store(int64(d)) }

// Cell is one model's learned latencies: [0] JSON completions, [1]
// streams' first token. Selection reads every model's on every request:
// Get is lock-free, and in steady state writes nothing; Observe (once
// per answer) replaces the value under mu. Selection keeps each catalog
// model's cell (Latency.Cell) rather than looking it up by name per
// request: 71 lookups in a sync.Map cost ~35 µs a request under load, in
// cache misses.
type Cell struct {
	l  *Latency
	mu sync.Mutex // Observe
	s  [2]series
}

type series struct {
	v    atomic.Pointer[value] // nil: nothing observed yet
	seed atomic.Uint64         // float64 bits of the seed the last Get faded toward; noSeed none yet
}

// value is a series' learned latency as of its last observation.
type value struct {
	ms float64
	at time.Time
}

var noSeed = math.Float64bits(-1)

func kind(stream bool) int {
	if stream {
		return 1
	}
	return 0
}

func (l *Latency) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Latency) halfLife() time.Duration {
	if d := l.hl.Load(); d > 0 {
		return time.Duration(d)
	}
	if l.HalfLife > 0 {
		return l.HalfLife
	}
	return DefaultHalfLife
}

// faded is the value at t, decayed toward seed.
func (l *Latency) faded(v *value, seed float64, t time.Time) float64 {
	age := t.Sub(v.at)
	if age <= 0 || seed < 0 {
		return v.ms
	}
	return seed + (v.ms-seed)*math.Exp2(-float64(age)/float64(l.halfLife()))
}

// Observe records one response time for a model: the time to a stream's
// first bytes, or to a JSON answer.
func (l *Latency) Observe(model string, stream bool, d time.Duration) {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 0 || math.IsNaN(ms) {
		return
	}
	t := l.now()
	c := l.Cell(model)
	c.mu.Lock()
	s := &c.s[kind(stream)]
	if old := s.v.Load(); old != nil {
		ms = alpha*ms + (1-alpha)*l.faded(old, math.Float64frombits(s.seed.Load()), t)
	} // else the first observation replaces the seed
	s.v.Store(&value{ms: ms, at: t})
	c.mu.Unlock()
}

// Cell returns a model's cell, made (with nothing learned) if it has none
// yet. Cells are never removed: a model of the catalog has one for the
// process's life, reloads included.
func (l *Latency) Cell(model string) *Cell {
	if v, ok := l.m.Load(model); ok {
		return v.(*Cell)
	}
	nc := &Cell{l: l}
	nc.s[0].seed.Store(noSeed)
	nc.s[1].seed.Store(noSeed)
	v, _ := l.m.LoadOrStore(model, nc)
	return v.(*Cell)
}

// Get returns the learned latency of a model in ms for a streaming request
// (time to first token) or a JSON one (completion), faded toward seed by
// the time since its last observation, or seed when none was observed yet.
func (l *Latency) Get(model string, stream bool, seed int) int {
	if l == nil {
		return seed
	}
	v, ok := l.m.Load(model)
	if !ok {
		return seed
	}
	return v.(*Cell).Get(stream, seed, l.now())
}

// Get is Latency.Get for this cell's model at now (nil: seed).
func (c *Cell) Get(stream bool, seed int, now time.Time) int {
	if c == nil {
		return seed
	}
	s := &c.s[kind(stream)]
	val := s.v.Load()
	if val == nil {
		return seed
	}
	ms := float64(seed)
	if bits := math.Float64bits(ms); s.seed.Load() != bits {
		s.seed.Store(bits) // the seed changed (a reload): Observe fades toward the new one
	}
	return int(math.Round(c.l.faded(val, ms, now)))
}
