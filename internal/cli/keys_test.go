package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/keys"
)

// keysConfig writes a config whose state is in its own directory.
func keysConfig(t *testing.T) (path, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	mk := sha256.Sum256([]byte("cli master"))
	mkFile := filepath.Join(dir, "master.key")
	if err := os.WriteFile(mkFile, []byte(base64.StdEncoding.EncodeToString(mk[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(path, []byte(`
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000}
workspaces:
  - {name: legal, teams: [{name: contracts}]}
state:
  master_keys: [{id: mk1, file: master.key}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, filepath.Join(dir, config.DefaultStateDir)
}

func TestKeysCLI(t *testing.T) {
	cfg, stateDir := keysConfig(t)
	secret, stderr, err := run("keys", "create", "--config", cfg, "--workspace", "legal", "--team", "contracts", "--id", "bot",
		"--models", "m1", "--budget", "50:month", "--budget", "5:day:downgrade", "--rpm", "60", "--meta", "ticket=OPS-1", "--expires-in", "24h")
	secret = strings.TrimSpace(secret)
	if err != nil {
		t.Fatalf("create: %v %s", err, stderr)
	}
	if _, ok := keys.ParseSecret(secret); !ok || !strings.Contains(stderr, "key bot created") || strings.Contains(stderr, secret) {
		t.Fatalf("create printed %q / %q", secret, stderr)
	}
	// The default state directory beside the config, private.
	for path, mode := range map[string]os.FileMode{stateDir: 0o700, filepath.Join(stateDir, "stellwerk.db"): 0o600, filepath.Join(stateDir, "hash.key"): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", path, st, err)
		}
	}

	out, _, err := run("keys", "show", "bot", "--config", cfg, "--json")
	var v admin.KeyView
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Team != "contracts" || v.Status != "active" ||
		len(v.Limits.Budgets) != 2 || v.Limits.Budgets[1].Action != "downgrade" || v.Metadata["ticket"] != "OPS-1" || v.ExpiresAt.IsZero() {
		t.Fatalf("show: %v %s", err, out)
	}
	if strings.Contains(out, secret[keys.DisplayPrefixLen:]) {
		t.Errorf("show prints the secret")
	}
	out, _, err = run("keys", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "bot") || !strings.Contains(out, "active") || !strings.Contains(out, secret[:keys.DisplayPrefixLen]) {
		t.Fatalf("list: %v %s", err, out)
	}

	// A server's table (another process, in real life) sees what the CLI did.
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ks, db, err := keys.OpenConfigured(context.Background(), c.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tb := keys.NewTable(ks, zap.NewNop())
	if err := tb.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ak := auth.New(c, os.Getenv).WithSource(tb)
	if p, err := ak.Authenticate("Bearer " + secret); err != nil || p.KeyID != "bot" {
		t.Fatalf("server does not accept the CLI's key: %v", err)
	}

	secret2, _, err := run("keys", "rotate", "bot", "--config", cfg)
	secret2 = strings.TrimSpace(secret2)
	if err != nil || secret2 == secret {
		t.Fatalf("rotate: %v", err)
	}
	if _, _, err := run("keys", "revoke", "bot", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if err := tb.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, secret2} {
		if _, err := ak.Authenticate("Bearer " + s); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("revoked key accepted: %v", err)
		}
	}
	out, _, _ = run("keys", "list", "--status", "revoked", "--config", cfg, "--json")
	if !strings.Contains(out, `"revoked_by": "cli:`) {
		t.Errorf("list revoked: %s", out)
	}

	// Provider keys: from stdin, listed without the secret.
	if _, stderr, err := runIn("sk-provider-secret\n", "keys", "provider", "set", "legal", "p1", "--config", cfg); err != nil {
		t.Fatalf("provider set: %v %s", err, stderr)
	}
	out, _, err = run("keys", "provider", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "legal") || !strings.Contains(out, "mk1") || strings.Contains(out, "sk-provider-secret") {
		t.Fatalf("provider list: %v %s", err, out)
	}
	if out, _, err := run("keys", "rotate-master", "--config", cfg); err != nil || !strings.Contains(out, "0 provider key(s) re-encrypted") {
		t.Errorf("rotate-master: %v %s", err, out)
	}
	if _, _, err := run("keys", "provider", "delete", "legal", "p1", "--config", cfg); err != nil {
		t.Errorf("provider delete: %v", err)
	}

	// Every change is on the audit record with who made it, and the CLI's
	// chains verify.
	st, err := audit.OpenStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	es, _, err := st.Query(context.Background(), audit.Filter{}, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		var r audit.Record
		if err := json.Unmarshal(e.Body, &r); err != nil || r.Change == nil {
			t.Fatalf("record %s: %v", e.Body, err)
		}
		if !strings.HasPrefix(r.Change.Actor, "cli") || !strings.HasPrefix(e.Writer, "cli@") {
			t.Errorf("change by %q in writer %q", r.Change.Actor, e.Writer)
		}
		got = append(got, r.Kind+" "+r.Change.Action+" "+r.Change.Target)
	}
	want := []string{"key create bot", "key rotate bot", "key revoke bot", "provider_key set legal/p1", "provider_key rotate_master ", "provider_key delete legal/p1"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("change records %q, want %q", got, want)
	}
	if out, _, err := run("audit", "verify", "--config", cfg); err != nil {
		t.Errorf("verify: %v %s", err, out)
	}
}

func TestKeysCLIUsage(t *testing.T) {
	cfg, _ := keysConfig(t)
	cases := map[string]struct {
		args  []string
		stdin string
		want  string
	}{
		"no verb":           {[]string{"keys"}, "", "keys create"},
		"unknown verb":      {[]string{"keys", "frob"}, "", `unknown keys command "frob"`},
		"show without id":   {[]string{"keys", "show", "--config", cfg}, "", "takes 1 argument"},
		"no workspace":      {[]string{"keys", "create", "--config", cfg}, "", "--workspace: required"},
		"unknown workspace": {[]string{"keys", "create", "--config", cfg, "--workspace", "nope"}, "", `unknown workspace "nope"`},
		"unknown model":     {[]string{"keys", "create", "--config", cfg, "--workspace", "legal", "--models", "m9"}, "", `--models[0]: unknown model "m9"`},
		"bad budget and expiry together": {[]string{"keys", "create", "--config", cfg, "--workspace", "legal", "--budget", "lots",
			"--expires-at", "soon", "--meta", "novalue"}, "", "not an RFC 3339 time"},
		"provider secret empty": {[]string{"keys", "provider", "set", "legal", "p1", "--config", cfg}, "  \n", "was empty"},
		"hash too many":         {[]string{"keys", "hash", "a", "b"}, "", "usage: stellwerk keys hash"},
		// A filter's typo listed nothing and exited 0 (the docs walkthrough).
		"list unknown status":             {[]string{"keys", "list", "--config", cfg, "--status", "bogus"}, "", "--status: must be active, expired or revoked"},
		"list unknown workspace":          {[]string{"keys", "list", "--config", cfg, "--workspace", "legl"}, "", `--workspace: unknown workspace "legl"`},
		"list unknown team":               {[]string{"keys", "list", "--config", cfg, "--workspace", "legal", "--team", "nope"}, "", `--team: unknown team "nope"`},
		"provider list unknown workspace": {[]string{"keys", "provider", "list", "--config", cfg, "--workspace", "legl"}, "", `--workspace: unknown workspace "legl"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := runIn(tc.stdin, tc.args...)
			if !errors.Is(err, ErrUsage) || !strings.Contains(stderr, tc.want) {
				t.Errorf("err %v, stderr %q, want %q", err, stderr, tc.want)
			}
		})
	}
	// "stellwerk <command> -h", as stellwerk's help says: the usage, exit 0.
	for _, cmd := range []string{"keys", "audit", "routes"} {
		if stdout, _, err := run(cmd, "-h"); err != nil || !strings.Contains(stdout, "stellwerk "+cmd) {
			t.Errorf("%s -h: %v %q", cmd, err, stdout)
		}
	}
	// Every flag problem at once.
	_, stderr, _ := run("keys", "create", "--config", cfg, "--workspace", "legal", "--budget", "lots", "--expires-at", "soon", "--meta", "novalue")
	for _, w := range []string{"--budget", "--expires-at", "--meta"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s not reported: %s", w, stderr)
		}
	}
	// No master key: provider keys are refused with a clear message.
	dir := t.TempDir()
	plain := filepath.Join(dir, "stellwerk.yaml")
	b, _ := os.ReadFile(cfg)
	_ = os.WriteFile(plain, []byte(strings.Replace(string(b), "  master_keys: [{id: mk1, file: master.key}]\n", "  dir: st\n", 1)), 0o600)
	if _, _, err := runIn("sk-x", "keys", "provider", "set", "legal", "p1", "--config", plain); err == nil || !strings.Contains(err.Error(), "state.master_keys") {
		t.Errorf("without master keys: %v", err)
	}
}

// TestKeysListPages: keys list reads the store a page at a time (pages of
// 3 here) and prints every key once, in the order of the ids; --json is
// the one array it always was, byte for byte; --limit stops early. It
// read all of a store's keys before printing (50,000 keys: 150 MB, the
// data-volume probe).
func TestKeysListPages(t *testing.T) {
	cfg, _ := keysConfig(t)
	if _, _, err := run("keys", "create", "--config", cfg, "--workspace", "legal", "--id", "k0"); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ks, db, err := keys.OpenConfigured(context.Background(), c.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 1; i < 8; i++ {
		if _, _, err := ks.Create(context.Background(), keys.Spec{ID: "k" + strconv.Itoa(i), Workspace: "legal"}, "t"); err != nil {
			t.Fatal(err)
		}
	}
	defer func(n int) { listPage = n }(listPage)
	listPage = 3

	all, err := ks.List(context.Background(), keys.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	views := make([]admin.KeyView, len(all))
	for i, k := range all {
		views[i] = admin.View(k, time.Now())
	}
	var want strings.Builder
	if err := writeJSONTo(&want, views); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run("keys", "list", "--config", cfg, "--json"); err != nil || out != want.String() {
		t.Errorf("--json: %v\n%s\nwant\n%s", err, out, want.String())
	}
	var got []admin.KeyView
	if out, _, err := run("keys", "list", "--config", cfg, "--json", "--limit", "5"); err != nil || json.Unmarshal([]byte(out), &got) != nil ||
		len(got) != 5 || got[0].ID != "k0" || got[4].ID != "k4" {
		t.Errorf("--json --limit 5: %v %s", err, out)
	}
	if out, _, err := run("keys", "list", "--config", cfg, "--json", "--status", "revoked"); err != nil || out != "[]\n" {
		t.Errorf("--json of none: %v %q", err, out)
	}
	out, _, err := run("keys", "list", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 9 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], "k0 ") || !strings.HasPrefix(lines[8], "k7 ") {
		t.Errorf("table: %v\n%s", err, out)
	}
	if out, _, err := run("keys", "list", "--config", cfg, "--limit", "2"); err != nil || strings.Count(out, "\n") != 3 {
		t.Errorf("--limit 2: %v\n%s", err, out)
	}
	if _, stderr, err := run("keys", "list", "--config", cfg, "--limit", "-1"); !errors.Is(err, ErrUsage) || !strings.Contains(stderr, "--limit") {
		t.Errorf("--limit -1: %v %s", err, stderr)
	}
}

// fullWriter fails every write, as stdout redirected to /dev/full does.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestKeysSecretNotWritten: a key whose secret could not be written fails
// the verb, naming the key and what to do: it exited 0 with the key made
// (or rotated, the old secret soon gone) and its secret lost (the CLI
// probe: `keys create > /dev/full`).
func TestKeysSecretNotWritten(t *testing.T) {
	cfg, _ := keysConfig(t)
	for _, args := range [][]string{
		{"keys", "create", "--config", cfg, "--workspace", "legal", "--id", "lost"},
		{"keys", "create", "--config", cfg, "--workspace", "legal", "--id", "lost-json", "--json"},
	} {
		var errb bytes.Buffer
		err := Run(context.Background(), args, strings.NewReader(""), fullWriter{}, &errb)
		if err == nil || !strings.Contains(err.Error(), "its secret could not be written") || !strings.Contains(err.Error(), "stellwerk keys rotate") {
			t.Errorf("%v: %v", args, err)
		}
	}
	var errb bytes.Buffer
	if err := Run(context.Background(), []string{"keys", "rotate", "--config", cfg, "lost"}, strings.NewReader(""), fullWriter{}, &errb); err == nil ||
		!strings.Contains(err.Error(), "key lost was rotated, but its secret could not be written") {
		t.Errorf("rotate: %v", err)
	}
}

// TestKeysHashHelp: keys hash -h prints its usage, not the digest of
// "-h" (the CLI probe); another flag is a usage error.
func TestKeysHashHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help"} {
		out, _, err := run("keys", "hash", h)
		if err != nil || !strings.HasPrefix(out, "usage: stellwerk keys hash") {
			t.Errorf("%s: %v %q", h, err, out)
		}
	}
	if _, _, err := run("keys", "hash", "--json"); !errors.Is(err, ErrUsage) {
		t.Errorf("a flag: %v", err)
	}
	if out, _, err := run("keys", "hash", "sk-test"); err != nil || strings.TrimSpace(out) != auth.Hash("sk-test") {
		t.Errorf("a key: %v %q", err, out)
	}
}

// TestExplainWithStoreKey: explain --key reads a store key (sk-sw-…) from
// the store the config names, as serve does: it took one for the anonymous
// default workspace (or refused it in keys mode), and a key it did not
// know for the default workspace too (the CLI probe).
func TestExplainWithStoreKey(t *testing.T) {
	cfg, _ := keysConfig(t)
	secret, stderr, err := run("keys", "create", "--config", cfg, "--workspace", "legal", "--id", "probe")
	if err != nil {
		t.Fatalf("create: %v %s", err, stderr)
	}
	secret = strings.TrimSpace(secret)
	req := `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`
	out, _, err := runIn(req, "explain", "--config", cfg, "--key", secret, "--json")
	if err != nil || !strings.Contains(out, `"workspace": "legal"`) {
		t.Fatalf("a store key of legal: %v\n%s", err, out)
	}
	if _, _, err := runIn(req, "explain", "--config", cfg, "--key", "sk-sw-"+strings.Repeat("0", 40), "--json"); err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("an unknown store key: %v", err)
	}
	if _, _, err := run("keys", "revoke", "--config", cfg, "probe"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runIn(req, "explain", "--config", cfg, "--key", secret, "--json"); err == nil {
		t.Error("a revoked store key was explained")
	}
}

// TestKeysJSONEverywhere: the verbs that change provider keys print an
// object with --json, as the others do; they printed text or nothing (the
// CLI probe). The secret is never in it.
func TestKeysJSONEverywhere(t *testing.T) {
	cfg, _ := keysConfig(t)
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"sk-provider-secret\n", []string{"keys", "provider", "set", "legal", "p1", "--json"}, `"provider": "p1"`},
		{"", []string{"keys", "rotate-master", "--json"}, `"master_key": "mk1"`},
		{"", []string{"keys", "provider", "delete", "legal", "p1", "--json"}, `"deleted": true`},
	} {
		out, stderr, err := runIn(c.stdin, append(c.args, "--config", cfg)...)
		if err != nil || !json.Valid([]byte(out)) || !strings.Contains(out, c.want) || strings.Contains(out+stderr, "sk-provider-secret") {
			t.Errorf("%v: %v\n%s%s", c.args, err, out, stderr)
		}
	}
}
