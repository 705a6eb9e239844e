package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(path, []byte(minimal+"state:\n  hash_key: {file: secrets/hash}\n  master_keys: [{id: mk2, env: MK2}, {id: mk1, file: /run/mk1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Dir != filepath.Join(dir, "state") || c.State.HashKey.File != filepath.Join(dir, "secrets", "hash") ||
		c.State.MasterKeys[1].File != "/run/mk1" || c.State.RefreshInterval != DefaultRefreshInterval || c.State.Postgres != nil {
		t.Errorf("state %+v", c.State)
	}
	y, _ := c.YAML()
	if strings.Contains(string(y), "secrets/hash") || strings.Contains(string(y), "/run/mk1") || !strings.Contains(string(y), "env: MK2") {
		t.Errorf("/config shows secret file paths:\n%s", y)
	}
}

func TestStateErrors(t *testing.T) {
	cases := map[string]struct{ state, want string }{
		"dsn in neither":       {"postgres: {}\n  hash_key: {env: H}", "state.postgres: set exactly one of dsn_env"},
		"dsn in both":          {"postgres: {dsn_env: A, dsn_file: /x}\n  hash_key: {env: H}", "state.postgres: set exactly one"},
		"postgres no hash key": {"postgres: {dsn_env: PG_DSN}", "state.hash_key: required"},
		"bad env name":         {"postgres: {dsn_env: 'postgres://u:p@h/db'}\n  hash_key: {env: H}", "state.postgres.dsn_env: \"postgres://u:p@h/db\" is not an environment variable name"},
		"hash key both":        {"hash_key: {env: H, file: /f}", "state.hash_key: set env or file, not both"},
		"master key no source": {"master_keys: [{id: mk1}]", "state.master_keys[0]: required"},
		"master key dup":       {"master_keys: [{id: mk1, env: A}, {id: mk1, env: B}]", "state.master_keys[1].id"},
		"refresh too slow":     {"refresh_interval: 2s", "state.refresh_interval: must be between 0"},
		"unknown field":        {"dsn: postgres://x", `unknown field "dsn"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(minimal + "state:\n  " + tc.state + "\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Decode(strings.NewReader(minimal + "state:\n  postgres: {dsn_env: PG_DSN}\n  hash_key: {env: H}\n")); err != nil {
		t.Errorf("valid postgres state: %v", err)
	}
	// keys mode no longer needs keys in this file: the store may hold them.
	if _, err := Decode(strings.NewReader(minimal + "auth: {mode: keys}\n")); err != nil {
		t.Errorf("keys mode without config keys: %v", err)
	}
}

func TestLimitsCheck(t *testing.T) {
	l := Limits{Budgets: []Budget{{AmountEUR: 0, Period: "year", Action: "shout", WarnAt: 1.5}, {AmountEUR: 4e-7, Period: "day", WarnAt: 1}},
		RateLimit: RateLimit{TokensPerDay: -1}}
	errs := l.Check("x")
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"x.budgets[0].amount_eur", "x.budgets[0].period", "x.budgets[0].action", "x.budgets[0].warn_at", "x.rate_limit.tokens_per_day",
		// Below a micro-euro the ledger would hold no budget at all.
		"x.budgets[1].amount_eur: must be at least 1e-06"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s not reported:\n%s", want, got)
		}
	}
	if strings.Contains(got, "budgets[1].warn_at") {
		t.Errorf("warn_at 1 (warn when used up) refused:\n%s", got)
	}
	if !(Limits{}).IsZero() || (Limits{RateLimit: RateLimit{RequestsPerMinute: 1}}).IsZero() {
		t.Error("IsZero")
	}
}
