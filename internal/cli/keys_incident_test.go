package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// configWithKey adds a key of stellwerk.yaml to keysConfig's config.
func configWithKey(t *testing.T) string {
	t.Helper()
	cfg, _ := keysConfig(t)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, []byte("keys:\n  - {id: ci, sha256: "+strings.Repeat("a", 64)+", workspace: legal, team: contracts}\n")...)
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Every per-key verb on a key of stellwerk.yaml says it is the config's
// and how to end it, not "no such key" (the incident probe's F7).
func TestKeysCLIConfigKey(t *testing.T) {
	cfg := configWithKey(t)
	if _, stderr, err := run("keys", "create", "--config", cfg, "--workspace", "legal", "--id", "app"); err != nil {
		t.Fatalf("create: %v %s", err, stderr)
	}
	for name, args := range map[string][]string{
		"show":   {"show", "ci"},
		"revoke": {"revoke", "ci"},
		"rotate": {"rotate", "ci"},
		"limits": {"limits", "ci", "--rpm", "1"},
		"models": {"models", "ci", "--models", "m1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := run(append([]string{"keys"}, append(args, "--config", cfg)...)...)
			if err == nil || !strings.Contains(err.Error(), "stellwerk.yaml") || !strings.Contains(err.Error(), "every replica") ||
				strings.Contains(err.Error(), "no such key") {
				t.Fatalf("%v", err)
			}
		})
	}
	if _, _, err := run("keys", "revoke", "nope", "--config", cfg); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("unknown key: %v", err)
	}

	// list: the config's key in the table, marked, never its digest; the
	// JSON array stays the store's, and stderr names the config's.
	out, _, err := run("keys", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "app") || strings.Contains(out, strings.Repeat("a", 64)) {
		t.Fatalf("list: %v %s", err, out)
	}
	var ci string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "ci ") {
			ci = l
		}
	}
	if f := strings.Fields(ci); len(f) != 8 || f[2] != "legal" || f[3] != "contracts" || f[5] != "config" || f[7] != "stellwerk.yaml" {
		t.Fatalf("list's config key row %q in\n%s", ci, out)
	}
	if out, _, _ := run("keys", "list", "--config", cfg, "--status", "revoked"); strings.Contains(out, "ci ") {
		t.Errorf("a config key listed as revoked:\n%s", out)
	}
	out, stderr, err := run("keys", "list", "--config", cfg, "--json")
	var arr []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &arr) != nil || len(arr) != 1 || !strings.Contains(stderr, "ci") {
		t.Fatalf("list --json: %v %s / %s", err, out, stderr)
	}
}
