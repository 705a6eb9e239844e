package health

import (
	"cmp"
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/logevery"
)

// Cooldown is one scope's cooldown as replicas share it: when a replica
// starts one, the others apply it (Share), so a provider that fails for
// one replica is skipped by all. Runs of failures stay each replica's own.
type Cooldown struct {
	Provider string `json:"provider"`
	// RateLimit: a credential's rate limit (Model "" every model of the
	// provider; Workspace "" the shared key), not the provider's outage.
	RateLimit bool `json:"rate_limit,omitempty"`
	// Credential is set for a refused credential (with RateLimit, every
	// model): the credential's fingerprint (Tracker.SetCredentials). A
	// replica whose credential differs ignores it: the refusal was of
	// another key (the old one, on a replica that has not reloaded yet).
	Credential string    `json:"credential,omitempty"`
	Model      string    `json:"model,omitempty"`
	Workspace  string    `json:"workspace,omitempty"`
	Until      time.Time `json:"until"`
	ReopenedBy time.Time `json:"reopened_by"`
	Reason     string    `json:"reason,omitempty"`
	// Asked: the provider asked for it (Retry-After), so it is not probed
	// and a success does not end it.
	Asked bool `json:"asked,omitempty"`
}

// Backend carries cooldowns between replicas: memory (one process, tests)
// or Redis (state.redis). Both pass the same conformance tests.
type Backend interface {
	// Publish tells every replica (this one included) of a cooldown.
	Publish(ctx context.Context, c Cooldown) error
	// Follow calls apply for each cooldown still in force, then for each
	// one published, until ctx ends or the connection breaks (an error).
	Follow(ctx context.Context, apply func(Cooldown)) error
}

// Apply puts a cooldown another replica started into this tracker; one
// already in force that lasts longer stays.
func (t *Tracker) Apply(c Cooldown) {
	if t == nil || c.Provider == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.providerLocked(c.Provider)
	w := &p.outage
	if c.Credential != "" && p.creds != nil && c.Credential != cmp.Or(p.creds[c.Workspace], noCredential) {
		return
	}
	if c.RateLimit {
		w = &t.limitLocked(p, c.Model, c.Workspace, c.Credential).w
	}
	until, end := c.Until.UnixNano(), c.ReopenedBy.UnixNano()
	if until <= w.until.Load() || end < until {
		return
	}
	reason := c.Reason
	w.reasonP.Store(&reason)
	w.asked.Store(c.Asked)
	w.reopen.Store(end)
	w.until.Store(until)
	if end > t.latest.Load() {
		t.latest.Store(end)
	}
}

// SetPublisher has the tracker call f with every cooldown it starts itself
// (not those it applies). f must not block: it runs on the request path.
func (t *Tracker) SetPublisher(f func(Cooldown)) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.publish = f
	t.mu.Unlock()
}

// Share publishes this tracker's cooldowns through b and applies every
// replica's, until ctx ends. Publishing never holds up a request: a full
// queue drops the event (the other replicas then learn from their own
// attempts). A cooldown whose publishing failed is published again every
// second until it is, or its reopening has ended. A broken connection is
// retried every second.
func Share(ctx context.Context, t *Tracker, b Backend, log *zap.Logger) {
	queue := make(chan Cooldown, 256)
	t.SetPublisher(func(c Cooldown) {
		select {
		case queue <- c:
		default:
			log.Warn("cooldown not shared: queue full", zap.String("provider", c.Provider))
		}
	})
	defer t.SetPublisher(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Cooldowns whose publishing failed (Redis unreachable), by their
		// target, the latest kept: published when Redis answers again, as
		// long as they are still in force (the fleet probe found them
		// dropped, each replica then cooling on its own).
		type target struct {
			provider, model, workspace, credential string
			rateLimit                              bool
		}
		pending := map[target]Cooldown{}
		var failures logevery.Limiter
		publish := func(c Cooldown) bool {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := b.Publish(pctx, c)
			if err != nil && ctx.Err() == nil {
				if ok, n := failures.Allow(); ok {
					log.Warn("sharing a cooldown failed; retried every second while it is in force", zap.String("provider", c.Provider),
						zap.Int64("failures", n), zap.Error(err))
				}
			}
			return err == nil
		}
		retry := time.NewTicker(time.Second)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-queue:
				k := target{c.Provider, c.Model, c.Workspace, c.Credential, c.RateLimit}
				if !publish(c) {
					pending[k] = c
				} else {
					delete(pending, k)
				}
			case <-retry.C:
				for k, c := range pending {
					if now := time.Now(); !now.Before(c.ReopenedBy) && !now.Before(c.Until) {
						delete(pending, k) // over: nothing to share
						continue
					}
					if !publish(c) {
						break // still down: the next tick tries again
					}
					delete(pending, k)
				}
			}
		}
	}()
	for ctx.Err() == nil {
		if err := b.Follow(ctx, t.Apply); err != nil && ctx.Err() == nil {
			log.Warn("following shared cooldowns failed; retrying", zap.Error(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Bus is the memory Backend: the trackers of one process share through it.
type Bus struct {
	mu        sync.Mutex
	now       func() time.Time
	cooldowns map[Cooldown]struct{} // in force (until their reopening ends)
	followers map[chan Cooldown]struct{}
}

var _ Backend = (*Bus)(nil)

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{now: time.Now, cooldowns: map[Cooldown]struct{}{}, followers: map[chan Cooldown]struct{}{}}
}

// Publish implements Backend.
func (b *Bus) Publish(_ context.Context, c Cooldown) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for k := range b.cooldowns {
		if !k.ReopenedBy.After(now) {
			delete(b.cooldowns, k)
		}
	}
	b.cooldowns[c] = struct{}{}
	for f := range b.followers {
		select {
		case f <- c:
		default: // a follower that does not keep up misses it, as with Redis pub/sub
		}
	}
	return nil
}

// Follow implements Backend.
func (b *Bus) Follow(ctx context.Context, apply func(Cooldown)) error {
	f := make(chan Cooldown, 256)
	b.mu.Lock()
	b.followers[f] = struct{}{}
	now := b.now()
	var current []Cooldown
	for c := range b.cooldowns {
		if c.ReopenedBy.After(now) {
			current = append(current, c)
		}
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.followers, f)
		b.mu.Unlock()
	}()
	for _, c := range current {
		apply(c)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-f:
			apply(c)
		}
	}
}
