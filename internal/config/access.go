package config

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validateAccess checks auth, keys, workspaces, policy and currency.
func (c *Config) validateAccess(models map[string]bool) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	oneOf := func(field, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			bad(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	oneOf("auth.mode", c.Auth.Mode, AuthModes)
	if c.Currency.USDToEUR <= 0 || c.Currency.USDToEUR > 10 {
		bad("currency.usd_to_eur", "must be a positive rate, got %v", c.Currency.USDToEUR)
	}
	if c.Policy.ReloadInterval < 100*time.Millisecond || c.Policy.ReloadInterval > time.Hour {
		// 1ns spun a core reading the directory (the config probe).
		bad("policy.reload_interval", "must be between 100ms and 1h, got %v", c.Policy.ReloadInterval)
	}
	if c.Policy.RequireDirModules && c.Policy.Dir == "" {
		bad("policy.require_dir_modules", "needs a dir")
	}
	if c.Policy.Library != nil && !*c.Policy.Library && c.Policy.Dir == "" {
		bad("policy", "library: false needs a dir with your own modules")
	}

	workspaces := map[string]map[string]bool{} // workspace → teams
	for i, w := range c.Workspaces {
		f := fmt.Sprintf("workspaces[%d]", i)
		if !nameRE.MatchString(w.Name) {
			bad(f+".name", "%q must be lower-case letters, digits, - or _", w.Name)
		} else if workspaces[w.Name] != nil {
			bad(f+".name", "duplicate workspace %q", w.Name)
		}
		teams := map[string]bool{}
		workspaces[w.Name] = teams
		oneOf(f+".residency", w.Residency, ResidencyRequirements)
		oneOf(f+".sensitive_residency", w.SensitiveResidency, ResidencyRequirements)
		for j, k := range w.UnreadSensitive {
			oneOf(f+".unread_sensitive["+strconv.Itoa(j)+"]", k, UnreadKinds)
		}
		oneOf(f+".objective", w.Objective, Objectives)
		oneOf(f+".secrets", w.Secrets, SecretsActions)
		oneOf(f+".injection", w.Injection, InjectionActions)
		oneOf(f+".downgrade_from", w.DowngradeFrom, DowngradeFroms)
		if p := w.DowngradeMaxPrice; p.InputPerMTok < 0 || p.OutputPerMTok < 0 {
			bad(f+".downgrade_max_price", "prices must not be negative (0: no ceiling)")
		}
		if w.QualityFloor < 0 || w.QualityFloor > 1 {
			bad(f+".quality_floor", "must be between 0 and 1")
		}
		if w.RelativeQuality < 0 || w.RelativeQuality > 1 {
			bad(f+".relative_quality", "must be between 0 and 1 (0: off)")
		}
		if w.MaxCostEUR < 0 {
			bad(f+".max_cost_eur", "must not be negative (0: no limit)")
		}
		if w.InjectionThreshold <= 0 || w.InjectionThreshold > 1 {
			bad(f+".injection_threshold", "must be within (0, 1]")
		}
		if w.InjectionMinTier < 1 || w.InjectionMinTier > 3 {
			bad(f+".injection_min_tier", "must be 1, 2 or 3")
		}
		for lvl, tier := range w.RiskTiers {
			if !slices.Contains(RiskLevels, lvl) {
				bad(f+".risk_tiers."+lvl, "unknown risk level (low, medium, high)")
			}
			if tier < 1 || tier > 3 {
				bad(f+".risk_tiers."+lvl, "tier must be 1, 2 or 3")
			}
		}
		if w.DefaultModel != "" && !models[w.DefaultModel] {
			bad(f+".default_model", "unknown model %q", w.DefaultModel)
		}
		errs = append(errs, c.checkList(f+".allow", w.Allow, models)...)
		errs = append(errs, c.checkList(f+".deny", w.Deny, models)...)
		for j, t := range w.Teams {
			tf := fmt.Sprintf("%s.teams[%d]", f, j)
			if !nameRE.MatchString(t.Name) || teams[t.Name] {
				bad(tf+".name", "%q must be a unique lower-case name", t.Name)
			}
			teams[t.Name] = true
			errs = append(errs, c.checkList(tf+".allow", t.Allow, models)...)
			errs = append(errs, c.checkList(tf+".deny", t.Deny, models)...)
		}
	}

	ids, secrets := map[string]bool{}, map[string]string{}
	for i, k := range c.Keys {
		f := fmt.Sprintf("keys[%d]", i)
		if !nameRE.MatchString(k.ID) || ids[k.ID] {
			bad(f+".id", "%q must be a unique lower-case name", k.ID)
		}
		ids[k.ID] = true
		if field, msg := secretRefProblem("key", k.SHA256, k.Env); msg != "" {
			bad(f+field, "%s", msg)
		} else if prev := sameSecret(secrets, f, k.SHA256, k.Env); prev != "" {
			bad(f, "names the same key as %s: one key is one principal", prev)
		}
		teams, ok := workspaces[k.Workspace]
		switch {
		case k.Workspace == "":
			bad(f+".workspace", "required")
		case !ok:
			bad(f+".workspace", "unknown workspace %q", k.Workspace)
		case k.Team != "" && !teams[k.Team]:
			bad(f+".team", "workspace %q has no team %q", k.Workspace, k.Team)
		}
	}
	return errs
}

// checkList validates allow/deny entries: model ids or provider:<name>.
func (c *Config) checkList(field string, list []string, models map[string]bool) []error {
	var errs []error
	for i, e := range list {
		if p, ok := strings.CutPrefix(e, "provider:"); ok {
			if !slices.ContainsFunc(c.Providers, func(pr Provider) bool { return pr.Name == p }) {
				errs = append(errs, fmt.Errorf("%s[%d]: unknown provider %q", field, i, p))
			}
			continue
		}
		if !models[e] {
			errs = append(errs, fmt.Errorf("%s[%d]: unknown model %q (use a model id or provider:<name>)", field, i, e))
		}
	}
	return errs
}

// secretRefProblem checks how the config names a secret it never holds
// (a virtual key, an admin token): exactly one of its SHA-256 digest or the
// environment variable holding it. It returns the field suffix and the
// problem, or "" for none.
func secretRefProblem(what, sha256Hex, env string) (field, problem string) {
	switch {
	case (sha256Hex == "") == (env == ""):
		return "", "set exactly one of sha256 (hex digest of the " + what + ") or env (variable holding it)"
	case sha256Hex != "":
		if b, err := hex.DecodeString(sha256Hex); err != nil || len(b) != 32 {
			return ".sha256", "must be 64 hex digits (`stellwerk keys hash` prints it)"
		}
	case !envRE.MatchString(env):
		return ".env", "must be an environment variable name"
	}
	return "", ""
}

// sameSecret reports, for the secret a key or token names (its digest, or
// the variable holding it), the field of an earlier one that names the
// same, and records this one's (seen: by secret). Two keys with one
// secret were one principal silently (the last won, with its workspace
// and budgets), two tokens one role (the first won): the config probe.
// A kept config's redacted digests (all zeros) are not secrets.
func sameSecret(seen map[string]string, field, sha256Hex, env string) string {
	k := "env:" + env
	if sha256Hex != "" {
		if strings.Trim(sha256Hex, "0") == "" {
			return ""
		}
		k = "sha256:" + strings.ToLower(sha256Hex)
	}
	if prev, ok := seen[k]; ok {
		return prev
	}
	seen[k] = field
	return ""
}
