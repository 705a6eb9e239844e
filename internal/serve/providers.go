package serve

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
)

var _ admin.ProviderService = (*status)(nil)

// withOverrides is base with each override laid over its provider's
// cluster block, field by field (config.ClusterSettings.Merge). base is
// not changed; an override for a provider base no longer has is ignored.
func withOverrides(base *config.Config, overrides map[string]config.ClusterSettings) *config.Config {
	if len(overrides) == 0 {
		return base
	}
	c := *base
	c.Providers = slices.Clone(base.Providers)
	for i := range c.Providers {
		ov, ok := overrides[c.Providers[i].Name]
		if !ok {
			continue
		}
		var own config.ClusterSettings
		if c.Providers[i].Cluster != nil {
			own = *c.Providers[i].Cluster
		}
		merged := own.Merge(ov)
		c.Providers[i].Cluster = &merged
	}
	return &c
}

// ProviderCluster is GET /admin/providers/{name}.
func (s *status) ProviderCluster(name string) (admin.ProviderCluster, error) {
	s.rl.mu.Lock()
	defer s.rl.mu.Unlock()
	return s.rl.providerView(name)
}

// ProviderClusters is GET /admin/providers: every configured provider's
// cluster, in the config's order.
func (s *status) ProviderClusters() []admin.ProviderCluster {
	s.rl.mu.Lock()
	defer s.rl.mu.Unlock()
	out := []admin.ProviderCluster{}
	for _, p := range s.rl.cur.cfg.Providers {
		if v, err := s.rl.providerView(p.Name); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// SetProviderCluster is PUT /admin/providers/{name}: the override replaces
// the provider's earlier one (an empty one removes it), is validated with
// the whole config, and reaches Envoy before the call returns.
func (s *status) SetProviderCluster(ctx context.Context, name string, ov config.ClusterSettings, actor string) (admin.ProviderCluster, error) {
	r := s.rl
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.ContainsFunc(r.base.Providers, func(p config.Provider) bool { return p.Name == name }) {
		return admin.ProviderCluster{}, fmt.Errorf("%w: %q", admin.ErrUnknownProvider, name)
	}
	next := maps.Clone(r.overrides)
	if next == nil {
		next = map[string]config.ClusterSettings{}
	}
	if ov == (config.ClusterSettings{}) {
		delete(next, name)
	} else {
		next[name] = ov
	}
	// Requests still decided under the old state may be in flight; apply
	// keeps every cluster Envoy needs for them (make before break).
	prev := r.overrides
	applied, err := r.apply(ctx, r.base, next, "admin:"+actor)
	if err != nil {
		return admin.ProviderCluster{}, fmt.Errorf("%w: %w", admin.ErrInvalidCluster, err)
	}
	if why := r.pub.Refusal(r.pub.Version()); !applied && why != "" {
		// An Envoy refused it: not kept. Kept, every Envoy that (re)starts
		// got it, refused it and had no cluster for the provider at all,
		// while the others served the last version they took (the SRE
		// probe). The earlier settings go back to every Envoy.
		if _, rerr := r.apply(ctx, r.base, prev, "admin:"+actor); rerr != nil {
			r.log.Error("the refused cluster settings could not be taken back", zap.String("provider", name), zap.Error(rerr))
		}
		r.log.Warn("Envoy refused a provider's cluster settings; the earlier ones are back in force", zap.String("provider", name),
			zap.String("token_id", actor), zap.String("refusal", why))
		return admin.ProviderCluster{}, fmt.Errorf("%w: Envoy refused them, the earlier settings stay in force: %s", admin.ErrInvalidCluster, apierr.Truncate(why, 1024))
	}
	recordChange(r.ln.audit, audit.KindConfig, "", audit.Change{Actor: "admin:" + actor, Action: "provider_cluster",
		Detail: map[string]string{"provider": name}})
	v, err := r.providerView(name)
	v.Applied = &applied
	return v, err
}

// providerView reads the provider's cluster as Envoy has it; r.mu is held.
func (r *reloader) providerView(name string) (admin.ProviderCluster, error) {
	cfg := r.cur.cfg
	i := slices.IndexFunc(cfg.Providers, func(p config.Provider) bool { return p.Name == name })
	if i < 0 {
		return admin.ProviderCluster{}, fmt.Errorf("%w: %q", admin.ErrUnknownProvider, name)
	}
	p := cfg.Providers[i]
	v := admin.ProviderCluster{Provider: name, Cluster: cfg.EffectiveCluster(p), Endpoints: p.Endpoints,
		SnapshotVersion: r.pub.Version(), Credential: "none"}
	for _, cp := range r.cur.cat.Providers() {
		if cp.Name == name && cp.CredentialSource() != "" {
			v.Credential = "missing"
			if cp.HasCredential() {
				v.Credential = "configured"
			}
		}
	}
	if ov, ok := r.overrides[name]; ok {
		v.Override = &ov
	}
	return v, nil
}
