package health

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// TestSharedCooldowns is the conformance suite of the backends that share
// cooldowns between replicas: memory and a real Redis (started by the
// test; skipped only with STELLWERK_STORE_TESTS=skip).
func TestSharedCooldowns(t *testing.T) {
	backends := map[string]func(t *testing.T) Backend{
		"memory": func(*testing.T) Backend { return NewBus() },
		"redis": func(t *testing.T) Backend {
			srv := testsrv.Redis(t)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr})
			t.Cleanup(func() { c.Close() })
			return NewRedis(c, "stellwerk-test-"+strconv.FormatInt(time.Now().UnixNano(), 36)+":")
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			policy := Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: time.Minute, Reopen: time.Minute}
			replica := func() *Tracker {
				tr := New(policy)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); Share(ctx, tr, b, zap.NewNop()) }()
				t.Cleanup(func() { cancel(); <-done })
				return tr
			}
			a, other := replica(), replica()
			// Following starts asynchronously: wait until a test cooldown
			// has travelled before counting on it.
			until := func(what string, cond func() bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !cond() {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not within 10s", what)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			probe := Target{Provider: "probe"}
			until("the first cooldown reaches the other replica", func() bool {
				a.Failed(probe, "status 503", 20*time.Second)
				return !other.Admits(probe, time.Now(), 0)
			})

			// An outage one replica saw: the other skips the provider too.
			down := Target{Provider: "down", Model: "m1"}
			a.Failed(down, "status 503", 30*time.Second)
			until("an outage is shared", func() bool { return !other.Admits(Target{Provider: "down", Model: "m2"}, time.Now(), 0) })
			if _, reason, ok := other.Cooling("down"); !ok || reason != "status 503, Retry-After 30s" {
				t.Errorf("the other replica's cooldown: %v %q", ok, reason)
			}

			// A tenant's rate limit on its own key: shared as that scope only.
			own := Target{Provider: "openai", Model: "gpt-4o", Workspace: "legal", PerModel: true}
			a.RateLimited(own, "rate limited (429)", 30*time.Second)
			until("a rate limit is shared", func() bool { return !other.Admits(own, time.Now(), 0) })
			for _, tg := range []Target{{Provider: "openai", Model: "gpt-4o"}, {Provider: "openai", Model: "gpt-4o-mini", Workspace: "legal"}} {
				if !other.Admits(tg, time.Now(), 0) {
					t.Errorf("%+v cooled by another scope's shared rate limit", tg)
				}
			}

			// A replica that starts later gets the cooldowns in force.
			late := replica()
			until("a later replica reads the cooldowns in force", func() bool {
				return !late.Admits(Target{Provider: "down"}, time.Now(), 0) && !late.Admits(own, time.Now(), 0)
			})
			// A refused credential is shared as that credential's: a replica
			// that sends another key (it has reloaded the fix) ignores it,
			// now and when it starts later; one with the same key cools it.
			eu, old, fixed := Target{Provider: "eu", Model: "eu-large"}, map[Credential]string{{Provider: "eu"}: "old"}, map[Credential]string{{Provider: "eu"}: "new"}
			a.SetCredentials(old)
			other.SetCredentials(old)
			fixedReplica := replica()
			fixedReplica.SetCredentials(fixed)
			for range 3 {
				a.CredentialRefused(eu, "status 401")
			}
			until("a refused credential is shared", func() bool { return !other.Admits(eu, time.Now(), 0) })
			if s := other.Snapshot(); !slices.ContainsFunc(s, func(s Status) bool { return s.Provider == "eu" && s.Scope == ScopeCredential }) {
				t.Errorf("the shared refusal's scope: %+v", s)
			}
			lateOld, lateFixed := replica(), replica()
			lateOld.SetCredentials(old)
			lateFixed.SetCredentials(fixed)
			until("a later replica with the old key reads its refusal", func() bool { return !lateOld.Admits(eu, time.Now(), 0) })
			time.Sleep(100 * time.Millisecond)
			if !fixedReplica.Admits(eu, time.Now(), 0) || !lateFixed.Admits(eu, time.Now(), 0) {
				t.Error("a replica with the new key is cooled by the old key's refusal")
			}

			// Runs of failures stay each replica's own.
			a.Failed(Target{Provider: "flaky"}, "status 500", 0)
			for _, s := range other.Snapshot() {
				if s.Provider == "flaky" {
					t.Errorf("a failure without a cooldown was shared: %+v", s)
				}
			}
		})
	}
}

// flakyBus is a Bus whose publishing fails while down is set, as Redis
// does while it is unreachable.
type flakyBus struct {
	*Bus
	down atomic.Bool
}

func (f *flakyBus) Publish(ctx context.Context, c Cooldown) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return f.Bus.Publish(ctx, c)
}

// TestCooldownSharedWhenBack: a cooldown started while the shared store
// does not answer is published once it does, while it is in force (the
// fleet probe found it dropped: each replica then cooled on its own).
func TestCooldownSharedWhenBack(t *testing.T) {
	b := &flakyBus{Bus: NewBus()}
	b.down.Store(true)
	policy := Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: time.Minute, Reopen: time.Minute}
	var trackers []*Tracker
	for range 2 {
		tr := New(policy)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); Share(ctx, tr, b, zap.NewNop()) }()
		t.Cleanup(func() { cancel(); <-done })
		trackers = append(trackers, tr)
	}
	a, other := trackers[0], trackers[1]
	for set := false; !set; time.Sleep(5 * time.Millisecond) { // Share sets its publisher as it starts
		a.mu.Lock()
		set = a.publish != nil
		a.mu.Unlock()
	}
	down := Target{Provider: "down"}
	a.Failed(down, "status 503", 30*time.Second)
	time.Sleep(1500 * time.Millisecond) // a retry or two while the store is down
	if !other.Admits(down, time.Now(), 0) {
		t.Fatal("shared while the store was down")
	}
	b.down.Store(false)
	for deadline := time.Now().Add(5 * time.Second); other.Admits(down, time.Now(), 0); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cooldown was not shared once the store answered")
		}
	}
}
