package cli

import (
	"encoding/json"
	"os"
	"os/user"
	"strings"
	"testing"
	"time"
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
		"revoke": {"revoke", "ci", "--reason", "leaked"},
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

// The audit log says what a CLI-made key may do, and why it was revoked.
func TestKeysCLIChangeRecords(t *testing.T) {
	cfg, _ := keysConfig(t)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	secret, stderr, err := run("keys", "create", "--config", cfg, "--workspace", "legal", "--team", "contracts", "--id", "bot",
		"--models", "m1", "--budget", "5:day", "--expires-in", "24h", "--user", "u-1")
	if err != nil {
		t.Fatalf("create: %v %s", err, stderr)
	}
	secret = strings.TrimSpace(secret)
	for name, reason := range map[string]string{"two lines": "a\nb", "too long": strings.Repeat("x", 257)} {
		if _, stderr, err := run("keys", "revoke", "bot", "--config", cfg, "--reason", reason); err != ErrUsage || !strings.Contains(stderr, "--reason") {
			t.Errorf("%s: %v %s", name, err, stderr)
		}
	}
	if _, stderr, err := run("keys", "revoke", "bot", "--config", cfg, "--reason", "OPS-7: pasted in a public issue"); err != nil {
		t.Fatalf("revoke: %v %s", err, stderr)
	}
	end := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	out, stderr, err := run("audit", "export", "--config", cfg, "--from", start, "--to", end)
	if err != nil {
		t.Fatalf("export: %v %s", err, stderr)
	}
	if strings.Contains(out, secret) || strings.Contains(out, secret[:12]) {
		t.Fatalf("the export holds the secret or its prefix")
	}
	var create, revoke map[string]string
	for _, l := range strings.Split(out, "\n") {
		var line struct{ Body string }
		var r struct {
			Change *struct {
				Action, Target string
				Detail         map[string]string
			}
		}
		if json.Unmarshal([]byte(l), &line) != nil || json.Unmarshal([]byte(line.Body), &r) != nil || r.Change == nil || r.Change.Target != "bot" {
			continue
		}
		switch r.Change.Action {
		case "create":
			create = r.Change.Detail
		case "revoke":
			revoke = r.Change.Detail
		}
	}
	if create["models"] != "m1" || create["team"] != "contracts" || create["user"] != "u-1" || create["expires_at"] == "" ||
		!strings.Contains(create["limits"], `"period":"day"`) {
		t.Errorf("create detail %v\n%s", create, out)
	}
	if revoke["reason"] != "OPS-7: pasted in a public issue" {
		t.Errorf("revoke detail %v", revoke)
	}
}

// Under sudo the actor is who ran sudo, not root (the incident probe's F10).
func TestCLIUserUnderSudo(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := cliUser(env(nil)); got != "cli:"+u.Username {
		t.Errorf("without sudo: %q", got)
	}
	want := "cli:alice (sudo)"
	if u.Username != "root" {
		want = "cli:" + u.Username + " (sudo from alice)"
	}
	if got := cliUser(env(map[string]string{"SUDO_USER": "alice"})); got != want {
		t.Errorf("under sudo: %q, want %q", got, want)
	}
	if got := cliUser(env(map[string]string{"SUDO_USER": u.Username})); got != "cli:"+u.Username {
		t.Errorf("sudo to oneself: %q", got)
	}
	// What is no one line of text is not taken (the red team).
	for _, bad := range []string{"mallory\nadmin", "eve\u202etxt", "x\u2028y", strings.Repeat("a", 65)} {
		if got := cliUser(env(map[string]string{"SUDO_USER": bad})); got != "cli:"+u.Username {
			t.Errorf("SUDO_USER %q: %q", bad, got)
		}
	}
}
