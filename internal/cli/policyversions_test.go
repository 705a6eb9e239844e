package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestPolicyShowAndDiff: the policy versions the audit store keeps are
// read back with the CLI, on both backends (only a SQL client could read
// them: the probe).
func TestPolicyShowAndDiff(t *testing.T) {
	for name, cfgPath := range map[string]func(t *testing.T) string{
		"sqlite":     func(t *testing.T) string { p, _ := keysConfig(t); return p },
		"postgresql": func(t *testing.T) string { return postgresConfig(t, testsrv.PostgresDSN(t)) },
	} {
		t.Run(name, func(t *testing.T) { policyShowAndDiff(t, cfgPath(t)) })
	}
}

func policyShowAndDiff(t *testing.T, cfgPath string) {
	ctx := context.Background()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What serve keeps for each version put in force (keeper.keepPolicy).
	keep := func() string {
		e, err := policy.Load(ctx, policy.Source{Library: true, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutVersion(ctx, audit.VersionPolicy, e.Version, b); err != nil {
			t.Fatal(err)
		}
		return e.Version
	}
	residency := "package stellwerk\n\nexcluded contains [m.id, \"not in the EU\"] if {\n\tsome m in input.candidates\n\tm.residency != \"eu\"\n}\n"
	write("residency.rego", residency)
	write("blocklist.rego", "package stellwerk\n\ndeny contains \"no\" if input.request.user == \"x\"\n")
	v1 := keep()
	write("residency.rego", strings.Replace(residency, `"eu"`, `"on_prem"`, 1))
	if err := os.Remove(filepath.Join(dir, "blocklist.rego")); err != nil {
		t.Fatal(err)
	}
	v2 := keep()
	if err := st.PutVersion(ctx, audit.VersionConfig, "sha256:0123", []byte("routing: {}\n")); err != nil {
		t.Fatal(err)
	}

	out, stderr, err := run("policy", "show", "--config", cfgPath, "--list", v1)
	if err != nil || !strings.Contains(out, "dir/blocklist.rego\ndir/residency.rego\n") || !strings.Contains(out, "library/stellwerk/") {
		t.Errorf("show --list: %v %s\n%s", err, stderr, out)
	}
	if out, stderr, err := run("policy", "show", "--config", cfgPath, v2, "residency.rego"); err != nil || out != strings.Replace(residency, `"eu"`, `"on_prem"`, 1) {
		t.Errorf("show VERSION MODULE: %v %s\n%q", err, stderr, out)
	}
	if out, _, err := run("policy", "show", "--config", cfgPath, v1); err != nil || !strings.Contains(out, "==> dir/residency.rego <==\n"+residency) {
		t.Errorf("show VERSION: %v\n%s", err, out)
	}
	out, stderr, err = run("policy", "diff", "--config", cfgPath, v1, v2)
	for _, want := range []string{
		"--- " + v1 + "/dir/blocklist.rego\n+++ /dev/null\n",
		"-deny contains \"no\" if input.request.user == \"x\"\n",
		"--- " + v1 + "/dir/residency.rego\n+++ " + v2 + "/dir/residency.rego\n",
		"-\tm.residency != \"eu\"\n+\tm.residency != \"on_prem\"\n",
	} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("diff lacks %q: %v %s\n%s", want, err, stderr, out)
		}
	}
	if strings.Contains(out, "library/") {
		t.Errorf("diff shows unchanged library modules:\n%s", out)
	}
	if out, _, err := run("policy", "diff", "--config", cfgPath, v2, v2); err != nil || out != "" {
		t.Errorf("diff of a version with itself: %v %q", err, out)
	}
	for args, want := range map[string]string{
		"show 000000000000":                   "keeps no policy version 000000000000",
		"show sha256:0123":                    "sha256:0123 is a config version, not a policy version",
		"show " + v1 + " nosuch.rego":         "has no module nosuch.rego",
		"diff " + v1 + " 000000000000":        "keeps no policy version 000000000000",
		"show --state-dir /nonexistent " + v1: "no state store",
	} {
		a := append([]string{"policy"}, strings.Fields(args)...)
		if strings.Contains(args, "/nonexistent") && cfg.State.Postgres != nil {
			continue // PostgreSQL has no state dir to miss
		}
		if _, _, err := run(append(a, "--config", cfgPath)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy %s: %v, want %q", args, err, want)
		}
	}
	if _, _, err := run("policy", "diff", "--config", cfgPath, v1); err != ErrUsage {
		t.Errorf("diff with one version: %v, want a usage error", err)
	}
}
