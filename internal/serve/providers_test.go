package serve

import (
	"slices"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

// TestWithOverrides: an admin override is laid over the file's cluster
// block field by field, leaves the file's config untouched, and one for a
// provider the file no longer has is ignored.
func TestWithOverrides(t *testing.T) {
	base := &config.Config{Providers: []config.Provider{
		{Name: "a", Cluster: &config.ClusterSettings{CircuitBreakers: &config.CircuitBreakers{MaxConnections: 10, MaxRequests: 20}}},
		{Name: "b"},
	}}
	got := withOverrides(base, map[string]config.ClusterSettings{
		"a":    {CircuitBreakers: &config.CircuitBreakers{MaxRequests: 5}},
		"b":    {IdleTimeout: 7},
		"gone": {IdleTimeout: 9},
	})
	if cb := *got.Providers[0].Cluster.CircuitBreakers; cb != (config.CircuitBreakers{MaxConnections: 10, MaxRequests: 5}) {
		t.Errorf("a: %+v", cb)
	}
	if got.Providers[1].Cluster == nil || got.Providers[1].Cluster.IdleTimeout != 7 || len(got.Providers) != 2 {
		t.Errorf("b: %+v", got.Providers[1])
	}
	if base.Providers[0].Cluster.CircuitBreakers.MaxRequests != 20 || base.Providers[1].Cluster != nil {
		t.Errorf("the file's config changed: %+v %+v", base.Providers[0].Cluster.CircuitBreakers, base.Providers[1])
	}
	if withOverrides(base, nil) != base {
		t.Errorf("no override should give the file's config itself")
	}
}

// TestRemovalGrace: a removed provider's cluster outlives a reload by the
// attempts a request decided before it may still start; in clusters mode
// there is one, which starts at once.
func TestRemovalGrace(t *testing.T) {
	c := &config.Config{}
	c.ApplyDefaults()
	c.Failover.MaxAttempts, c.Failover.AttemptTimeout = 3, 2*time.Minute
	if g := removalGrace(c); g != 5*time.Minute {
		t.Errorf("standalone, 3 attempts of 2 min (capped): %s", g)
	}
	c.Failover.AttemptTimeout = 10 * time.Second
	if g := removalGrace(c); g != 35*time.Second {
		t.Errorf("standalone, 3 attempts of 10 s: %s", g)
	}
	c.Envoy.Mode = config.ModeClusters
	if g := removalGrace(c); g != 5*time.Second {
		t.Errorf("clusters mode: %s", g)
	}
}

// TestRejectionSeries: the pairs a config's limits can refuse with, for
// each workspace: a store key's own of every kind, and each budget's and
// rate limit's kind and scope, once.
func TestRejectionSeries(t *testing.T) {
	c := &config.Config{Workspaces: []config.Workspace{{Name: "legal"}, {Name: "default"}},
		Budgets:    config.Budgets{Limits: []config.BudgetRule{{Name: "a", Scope: "team"}, {Name: "b", Scope: "team"}, {Name: "c", Scope: "global"}}},
		RateLimits: []config.RateLimitRule{{Name: "r", Scope: "model", RequestsPerMinute: 5, TokensPerDay: 9}}}
	ws, pairs := rejectionSeries(c)
	want := [][2]string{{"budget", "key"}, {"requests", "key"}, {"tokens", "key"}, {"budget", "team"}, {"budget", "global"}, {"requests", "model"}, {"tokens", "model"}}
	if !slices.Equal(ws, []string{"legal", "default"}) || !slices.Equal(pairs, want) {
		t.Errorf("%v %v", ws, pairs)
	}
	if ws, _ := rejectionSeries(&config.Config{}); !slices.Equal(ws, []string{"default"}) {
		t.Errorf("no workspaces: %v", ws)
	}
}
