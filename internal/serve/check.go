package serve

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
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
	psrc := policy.Source{Library: *cfg.Policy.Library, Dir: cfg.Policy.Dir, RequireDir: cfg.Policy.RequireDirModules}
	warnings, perrs := policy.Check(ctx, psrc)
	for _, err := range perrs {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	warnings = append(warnings, policy.CheckAliases(psrc, cfg.ModelAliases())...)
	cat, err := catalog.New(cfg, env)
	if err != nil {
		errs = append(errs, err)
	}
	if cat != nil {
		for _, s := range cat.IgnoredScores {
			warnings = append(warnings, "scorecard rows of a model not in the catalog are ignored: "+s)
		}
	}
	for _, m := range cfg.Models {
		// No model lists near these (2026: 150 and 600 USD per million
		// tokens at most): a price written per thousand tokens, or with
		// three zeros too many, was taken without a word (the catalog
		// probe's input_per_mtok: 2500).
		if p := m.Price; p.InputPerMTok > implausibleInput || p.OutputPerMTok > implausibleOutput {
			warnings = append(warnings, fmt.Sprintf("model %q: price %g in, %g out per million tokens is far above any listed; is it per thousand, or a slip?",
				m.ID, p.InputPerMTok, p.OutputPerMTok))
		}
	}
	if _, err := classify.New(cfg.Classify); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := loadPredictor(cfg, env); err != nil {
		errs = append(errs, err)
	}
	if _, err := readStreamToken(cfg.Server, env.Getenv); err != nil {
		errs = append(errs, err)
	}
	if pg := cfg.State.Postgres; pg != nil {
		// serve reads and parses it before anything else.
		if dsn, err := store.ReadSecret(config.SecretSource{Env: pg.DSNEnv, File: pg.DSNFile}, env.Getenv); err != nil {
			errs = append(errs, fmt.Errorf("state.postgres: %w", err))
		} else if err := store.CheckPostgresDSN(dsn); err != nil {
			errs = append(errs, err)
		}
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

// Unservable lists the workspaces and teams whose settings leave no model
// of the catalog for any request, which config check warns about: their
// allow and deny lists, or those with the workspace's residency as the
// shipped library reads it, or a default_model they may not use. A
// workspace with allow: [m1] and deny: [m1], or residency eu and only US
// models, checked ok and refused every request (the config probe). The
// policy can narrow further per request; this is what the config alone
// says.
func Unservable(cfg *config.Config, cat *catalog.Catalog) []string {
	r := decision.New(cfg, cat, nil, nil, zap.NewNop())
	rejects := map[string][]string{"eu": {"us", "global"}, "on_prem": {"eu", "us", "global"}} // rego/stellwerk/residency.rego
	var out []string
	check := func(ws config.Workspace, team string) {
		who := "workspace " + ws.Name
		if team != "" {
			who += " team " + team
		}
		v := r.Visible(auth.Principal{Workspace: ws.Name, Team: team})
		if len(v.Models()) == 0 {
			out = append(out, who+": its allow and deny lists leave no model; every request is refused")
			return
		}
		if bad := rejects[ws.Residency]; bad != nil && !slices.ContainsFunc(v.Models(), func(m *catalog.Model) bool {
			return !slices.Contains(bad, m.Provider.Residency)
		}) {
			out = append(out, who+": no model it may use meets its residency "+ws.Residency+"; every request is refused")
		}
		if d := ws.DefaultModel; d != "" && !v.Has(d) {
			out = append(out, who+": its default_model "+d+" is not one it may use")
		}
	}
	for _, ws := range cfg.Workspaces {
		check(ws, "")
		for _, t := range ws.Teams {
			check(ws, t.Name)
		}
	}
	return out
}

// implausibleInput and implausibleOutput are prices per million tokens
// config check warns about: several times the dearest model listed.
const implausibleInput, implausibleOutput = 1000, 5000
