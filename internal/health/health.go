// Package health remembers which providers failed recently, so selection can
// skip a provider in cooldown instead of sending it traffic it would refuse.
//
// A provider enters a cooldown when it says so (Retry-After on a 429 or 503)
// or after a run of consecutive failures; any success ends the run. The
// state is this replica's own: each stellwerk replica learns from the
// attempts it handles (see docs/failover.md).
package health

import (
	"sync"
	"sync/atomic"
	"time"
)

// Policy is when a provider cools down.
type Policy struct {
	FailuresBeforeCooldown int
	Cooldown               time.Duration
	MaxCooldown            time.Duration // caps Retry-After
}

// Tracker is safe for concurrent use. A nil or zero Tracker never cools
// down.
type Tracker struct {
	mu        sync.Mutex
	policy    Policy
	providers map[string]*provider
	now       func() time.Time
	// latest is the end of the last cooldown to end (unix ns): selection
	// asks about every model of every request, and while no provider
	// cools down the answer needs no lock.
	latest atomic.Int64
}

type provider struct {
	failures int       // consecutive
	until    time.Time // cooldown end; zero when none
	reason   string
}

// New returns a tracker with policy p.
func New(p Policy) *Tracker {
	return &Tracker{policy: p, providers: map[string]*provider{}, now: time.Now}
}

// SetPolicy changes the policy (on reload); cooldowns in force stay.
func (t *Tracker) SetPolicy(p Policy) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.policy = p
	t.mu.Unlock()
}

// Succeeded records an answer that was not a failure.
func (t *Tracker) Succeeded(name string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.providers[name]; p != nil {
		p.failures = 0
	}
}

// Failed records a failed attempt. retryAfter > 0 is the provider's own
// request to wait, honoured up to MaxCooldown. It reports whether the
// provider is now cooling down.
func (t *Tracker) Failed(name, reason string, retryAfter time.Duration) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.providers == nil {
		return false
	}
	p := t.providers[name]
	if p == nil {
		p = &provider{}
		t.providers[name] = p
	}
	p.failures++
	now := t.now()
	var d time.Duration
	switch {
	case retryAfter > 0:
		d = min(retryAfter, t.policy.MaxCooldown)
		reason += ", Retry-After " + retryAfter.String()
	case t.policy.FailuresBeforeCooldown > 0 && p.failures >= t.policy.FailuresBeforeCooldown:
		d = t.policy.Cooldown
	}
	if d > 0 && now.Add(d).After(p.until) {
		p.until, p.reason = now.Add(d), reason
		if u := p.until.UnixNano(); u > t.latest.Load() {
			t.latest.Store(u) // under mu: no lost update
		}
	}
	return p.until.After(now)
}

// Cooling reports whether a provider is in cooldown now, until when and why.
func (t *Tracker) Cooling(name string) (until time.Time, reason string, ok bool) {
	if t == nil || t.now().UnixNano() >= t.latest.Load() {
		return time.Time{}, "", false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.providers[name]
	if p == nil || !p.until.After(t.now()) {
		return time.Time{}, "", false
	}
	return p.until, p.reason, true
}

// Status is one provider's state, for the admin API.
type Status struct {
	Provider            string    `json:"provider"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	CoolingUntil        time.Time `json:"cooling_until,omitzero"`
	Reason              string    `json:"reason,omitempty"`
}

// Snapshot lists providers with failures or a cooldown.
func (t *Tracker) Snapshot() []Status {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var out []Status
	for name, p := range t.providers {
		s := Status{Provider: name, ConsecutiveFailures: p.failures}
		if p.until.After(now) {
			s.CoolingUntil, s.Reason = p.until, p.reason
		}
		if s.ConsecutiveFailures > 0 || !s.CoolingUntil.IsZero() {
			out = append(out, s)
		}
	}
	return out
}
