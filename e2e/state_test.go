package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/testsrv"
	"gopkg.in/yaml.v3"
)

// TestStateCopyToPostgres grows one host into a fleet's state: a key
// created and used on the embedded store, stellwerk stopped, `stellwerk
// state copy` into a real PostgreSQL, stellwerk started on it. The same
// key is served through Envoy, the copied audit log verifies and goes on
// with the new request, a replay of the request decided on SQLite works
// from PostgreSQL, and the spend recorded before is there.
func TestStateCopyToPostgres(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Mutate:      func(c *config.Config) { c.Auth.Mode = "keys" },
		ReadyStatus: 401,
	})
	bin := harness.Binary(t)
	oldPath := filepath.Join(s.Dir, "stellwerk.yaml")
	cli := func(args ...string) string {
		t.Helper()
		var stderr strings.Builder
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("stellwerk %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	secret := strings.TrimSpace(cli("keys", "create", "--config", oldPath, "--workspace", "default", "--id", "grow"))
	auth := map[string]string{"Authorization": "Bearer " + secret}
	chat := `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`
	var firstID string
	waitFor(t, "the new key", func() bool {
		resp, _ := post(t, s.URL+"/v1/chat/completions", chat, auth)
		firstID = resp.Header.Get(header.DecisionID)
		return resp.StatusCode == 200
	})
	s.Stop("stellwerk") // the audit log and the spend ledger flush
	before := cli("audit", "verify", "--config", oldPath)
	spendBefore := cli("spend", "--config", oldPath, "--group-by", "key,model", "--format", "csv")
	if !strings.Contains(spendBefore, "grow,") {
		t.Fatalf("spend on SQLite:\n%s", spendBefore)
	}

	dsnFile := filepath.Join(s.Dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte(testsrv.PostgresDSN(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *s.Config
	stateDir := filepath.Join(s.Dir, config.DefaultStateDir)
	cfg.State.Postgres = &config.StatePostgres{DSNFile: dsnFile}
	cfg.State.HashKey = config.SecretSource{File: filepath.Join(stateDir, keys.HashKeyFile)}
	cfg.Audit.SigningKey = config.SecretSource{File: filepath.Join(stateDir, audit.KeyFile)}
	newPath := filepath.Join(s.Dir, "fleet.yaml")
	if yb, err := yaml.Marshal(&cfg); err != nil || os.WriteFile(newPath, yb, 0o600) != nil {
		t.Fatal(err)
	}
	out := cli("state", "copy", "--from", oldPath, "--config", newPath)
	if !regexp.MustCompile(`virtual_keys +1\n`).MatchString(out) || !strings.Contains(out, "copied ") {
		t.Fatalf("copy:\n%s", out)
	}
	if got := cli("audit", "verify", "--config", newPath); got != before {
		t.Fatalf("verify on PostgreSQL:\n%s\nwant, as on SQLite:\n%s", got, before)
	}

	s.WriteConfig(&cfg)
	s.Restart()
	resp, b := post(t, s.URL+"/v1/chat/completions", chat, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("the copied key through Envoy: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, s.URL+"/v1/chat/completions", chat, map[string]string{"Authorization": "Bearer " + secret[:len(secret)-1] + "x"})
	if resp.StatusCode != 401 {
		t.Fatalf("another secret: %d %s", resp.StatusCode, b)
	}
	s.Stop("stellwerk")
	after := cli("audit", "verify", "--config", newPath)
	if !strings.Contains(after, "ok: ") || after == before {
		t.Fatalf("verify after serving from PostgreSQL:\n%s", after)
	}
	if !strings.Contains(cli("replay", firstID, "--config", newPath), firstID) {
		t.Fatal("replay of the request decided on SQLite")
	}
	spendAfter := cli("spend", "--config", newPath, "--group-by", "key,model", "--format", "csv")
	if spendAfter == spendBefore || !strings.Contains(spendAfter, "grow,") {
		t.Fatalf("spend on PostgreSQL:\n%s\nbefore:\n%s", spendAfter, spendBefore)
	}
}

// TestStateDirIsOneServers: a second stellwerk on a serving one's state.dir
// is refused before it opens anything, and so is a copy of that state into
// PostgreSQL. Two servers on one directory each enforced the in-memory
// budgets alone (43 % past a budget) and the last to save the totals
// erased the other's; a copy under traffic left the last rows behind (the
// operator probe).
func TestStateDirIsOneServers(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	bin := harness.Binary(t)
	path := filepath.Join(s.Dir, "stellwerk.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "serve", "--config", path, "--admin", "127.0.0.1:0",
		"--grpc", "unix://"+filepath.Join(s.Dir, "second.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another stellwerk (pid ") {
		t.Fatalf("a second serve on the state.dir: %v\n%s", err, out)
	}

	dsnFile := filepath.Join(s.Dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://nobody@127.0.0.1:1/none"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *s.Config
	cfg.State.Postgres = &config.StatePostgres{DSNFile: dsnFile}
	cfg.State.HashKey = config.SecretSource{File: filepath.Join(s.Dir, config.DefaultStateDir, keys.HashKeyFile)}
	fleet := filepath.Join(s.Dir, "fleet.yaml")
	if yb, err := yaml.Marshal(&cfg); err != nil || os.WriteFile(fleet, yb, 0o600) != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "state", "copy", "--from", path, "--config", fleet).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused, nothing copied") || !strings.Contains(string(out), "in use by another stellwerk") {
		t.Fatalf("a copy of a serving state: %v\n%s", err, out)
	}
	// The first one serves on.
	if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}
