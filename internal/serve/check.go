package serve

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/xds"
)

// Check runs the start-up checks of Run that need no server, database or
// port — policy compile and tests, catalog, classifiers, limits, Envoy
// resources and the secrets Run reads — and returns every problem found,
// not only the first, and the policy's warnings (modules with no effect). `stellwerk config check` is this, so a config it
// passes is one serve does not refuse for these reasons.
func Check(ctx context.Context, cfg *config.Config, env catalog.Env) (warnings []string, errs []error) {
	warnings, perrs := policy.Check(ctx, policy.Source{Library: *cfg.Policy.Library, Dir: cfg.Policy.Dir})
	for _, err := range perrs {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	cat, err := catalog.New(cfg, env)
	if err != nil {
		errs = append(errs, err)
	}
	if _, err := classify.New(cfg.Classify); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := loadPredictor(cfg, env); err != nil {
		errs = append(errs, err)
	}
	if _, err := ledger.LimitsFromConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	if cat != nil {
		if ir, err := xds.FromConfig(cfg, cat); err != nil {
			errs = append(errs, err)
		} else if _, err := xds.Translate(ir); err != nil {
			errs = append(errs, fmt.Errorf("xds: %w", err))
		}
	}
	if hook, err := budgetWebhook(cfg, env, nil, zap.NewNop()); err != nil {
		errs = append(errs, err)
	} else {
		hook.Close()
	}
	if _, err := keys.LoadKeyring(cfg.State.MasterKeys, env.Getenv); err != nil {
		errs = append(errs, err)
	}
	if cfg.State.HashKey.IsSet() {
		if _, err := keys.LoadHasher(config.State{HashKey: cfg.State.HashKey}, store.Postgres, env.Getenv); err != nil {
			errs = append(errs, err)
		}
	}
	if t := cfg.Server.GRPCTLS; t != nil {
		// serve loads them before it listens; a path that is wrong fails
		// the start (the docs probe: check said ok, serve exited).
		if _, err := serverTLS(*t); err != nil {
			errs = append(errs, fmt.Errorf("server.grpc: %w", err))
		}
	}
	if a := cfg.Audit; a.IsEnabled() && a.SigningKey.IsSet() {
		if _, err := audit.LoadPublic(a, cfg.State.Dir, env.Getenv); err != nil {
			errs = append(errs, err)
		}
	}
	return warnings, errs
}
