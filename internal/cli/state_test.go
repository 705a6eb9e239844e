package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// TestStateCopy moves one host's SQLite state into PostgreSQL (a real
// server) with `stellwerk state copy`: the virtual key answers there, the
// workspace's provider key decrypts, the audit chain verifies and the spend
// report is the same. A destination that would break the keys, one that is
// not empty and a source with an unwritten audit spool are refused before
// anything is written.
func TestStateCopy(t *testing.T) {
	ctx := context.Background()
	srcPath, stateDir := keysConfig(t)
	secret, stderr, err := run("keys", "create", "--config", srcPath, "--workspace", "legal", "--id", "bot", "--rpm", "60")
	if err != nil {
		t.Fatalf("create: %v %s", err, stderr)
	}
	secret = strings.TrimSpace(secret)
	if _, stderr, err := runIn("sk-provider-legal\n", "keys", "provider", "set", "legal", "p1", "--config", srcPath); err != nil {
		t.Fatalf("provider set: %v %s", err, stderr)
	}
	src, err := config.Load(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	fillSpendAndAudit(t, src, 3000, 20)
	wantSpend, _, err := run("spend", "--config", srcPath, "--since", "30d", "--group-by", "workspace,model", "--format", "csv")
	if err != nil || !strings.Contains(wantSpend, "legal") {
		t.Fatalf("spend before: %v %s", err, wantSpend)
	}
	wantVerify, _, err := run("audit", "verify", "--config", srcPath)
	if err != nil || !strings.Contains(wantVerify, "ok: 23 records in 3 chain(s) verified") { // the CLI's two changes, each its own writer
		t.Fatalf("verify before: %v %s", err, wantVerify)
	}

	dir := filepath.Dir(srcPath)
	dsnFile := filepath.Join(dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte(testsrv.PostgresDSN(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("another hash key"))
	otherFile := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherFile, []byte(base64.StdEncoding.EncodeToString(other[:])), 0o600); err != nil {
		t.Fatal(err)
	}
	dstConfig := func(name, state string) string {
		p := filepath.Join(dir, name)
		body := `
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000}
workspaces:
  - {name: legal, teams: [{name: contracts}]}
audit: {signing_key: {file: ` + filepath.Join(stateDir, audit.KeyFile) + `}}
state:
  postgres: {dsn_file: pg.dsn}
` + state
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodPath := dstConfig("fleet.yaml", "  hash_key: {file: "+filepath.Join(stateDir, keys.HashKeyFile)+"}\n  master_keys: [{id: mk1, file: master.key}]\n")

	for _, c := range []struct{ name, state, want string }{
		{"another hash key", "  hash_key: {file: other.key}\n  master_keys: [{id: mk1, file: master.key}]\n", "every key would answer 401"},
		{"no master keys", "  hash_key: {file: " + filepath.Join(stateDir, keys.HashKeyFile) + "}\n", "no state.master_keys"},
		{"another master key", "  hash_key: {file: " + filepath.Join(stateDir, keys.HashKeyFile) + "}\n  master_keys: [{id: mk1, file: other.key}]\n", "provider key legal/p1"},
	} {
		_, _, err := run("state", "copy", "--from", srcPath, "--config", dstConfig("bad.yaml", c.state))
		if err == nil || !strings.Contains(err.Error(), "refused, nothing copied") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal naming %q", c.name, err, c.want)
		}
	}
	if out, _, err := run("keys", "list", "--config", goodPath); err != nil || strings.Contains(out, "bot") {
		t.Fatalf("the refusals wrote keys: %v %s", err, out)
	}

	out, stderr, err := run("state", "copy", "--from", srcPath, "--config", goodPath)
	if err != nil {
		t.Fatalf("copy: %v\n%s%s", err, out, stderr)
	}
	for _, want := range []string{"virtual_keys         1", "provider_keys        1", "spend_requests       3000", "audit_entries        23"} {
		if !strings.Contains(out, want) {
			t.Errorf("copy printed no %q:\n%s", want, out)
		}
	}
	if strings.Contains(stderr, "signed by key") {
		t.Errorf("the destination signs with the source's key, yet: %s", stderr)
	}

	// The key answers from PostgreSQL, and the provider key decrypts.
	dst, err := config.Load(goodPath)
	if err != nil {
		t.Fatal(err)
	}
	ks, db, err := keys.OpenConfigured(ctx, dst.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Dialect != store.Postgres {
		t.Fatalf("destination is %s", db.Dialect)
	}
	tbl := keys.NewTable(ks, zap.NewNop())
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p, ok, err := tbl.Lookup(secret); err != nil || !ok || p.KeyID != "bot" || p.Workspace != "legal" {
		t.Fatalf("the key in PostgreSQL: %+v %v %v", p, ok, err)
	}
	var got string
	if err := ks.EachProviderSecret(ctx, func(s keys.ProviderSecret) error { got = string(s.Secret); return nil }); err != nil || got != "sk-provider-legal" {
		t.Fatalf("provider key: %v (decrypted %d bytes)", err, len(got))
	}
	if out, _, err := run("audit", "verify", "--config", goodPath); err != nil || out != wantVerify {
		t.Fatalf("verify on PostgreSQL: %v\n%s\nwant\n%s", err, out, wantVerify)
	}
	if out, _, err := run("spend", "--config", goodPath, "--since", "30d", "--group-by", "workspace,model", "--format", "csv"); err != nil || out != wantSpend {
		t.Fatalf("spend on PostgreSQL: %v\n%s\nwant\n%s", err, out, wantSpend)
	}

	// Once is enough: a second copy would double nothing, it is refused.
	if _, _, err := run("state", "copy", "--from", srcPath, "--config", goodPath); err == nil || !strings.Contains(err.Error(), "the destination is not empty: audit_") {
		t.Fatalf("second copy: %v", err)
	}

	// Records waiting in the audit spool would be left behind.
	spool := filepath.Join(stateDir, "audit-spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(spool, "audit-w.spool"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run("state", "copy", "--from", srcPath, "--config", goodPath); err == nil || !strings.Contains(err.Error(), "audit spool") {
		t.Fatalf("with a spool: %v", err)
	}

	// Usage mistakes.
	for _, args := range [][]string{{"state"}, {"state", "copy"}, {"state", "copy", "--from", srcPath, "extra"}} {
		if _, _, err := run(args...); err != ErrUsage {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, _, err := run("state", "copy", "--from", goodPath, "--config", goodPath); err == nil || !strings.Contains(err.Error(), "PostgreSQL already") {
		t.Errorf("from PostgreSQL: %v", err)
	}
	if _, _, err := run("state", "copy", "--from", srcPath, "--config", srcPath); err == nil || !strings.Contains(err.Error(), "no state.postgres") {
		t.Errorf("into SQLite: %v", err)
	}
}

// fillSpendAndAudit writes spend rows and audit records into the store cfg
// names, as a server would have.
func fillSpendAndAudit(t *testing.T, cfg *config.Config, rows, records int) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sp, err := spend.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	batch := make([]spend.Row, rows)
	for i := range batch {
		batch[i] = spend.Row{Time: now.Add(-time.Duration(i) * time.Minute), DecisionID: fmt.Sprintf("d%05d", i), KeyID: "bot",
			Workspace: []string{"legal", "default"}[i%2], Model: []string{"m1", "m2", "m3"}[i%3], Provider: "p1",
			TokensIn: int64(100 + i), TokensOut: int64(i % 50), Cost: ledger.MicroEUR(1 + i*7), Status: "ok"}
	}
	if _, err := sp.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	signer, _, err := audit.LoadSigner(cfg.Audit, cfg.State.Dir, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, signer, audit.OptionsFrom(cfg.Audit, cfg.State.Dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range records {
		l.Record(&audit.Record{Kind: audit.KindDecision, ID: fmt.Sprintf("d%05d", i), Workspace: "legal", Chosen: "m1", Status: 200})
	}
	l.Record(&audit.Record{Kind: audit.KindKey, ID: "chg-1", Workspace: "legal", Change: &audit.Change{Actor: "cli:ops", Action: "create", Target: "bot"}})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSeededTables: the tables a fresh schema writes rows into are the
// ones state copy replaces; any other table with rows would make every
// destination look not empty.
func TestSeededTables(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range stateComponents {
		if err := db.Migrate(ctx, c.name, c.ms); err != nil {
			t.Fatal(err)
		}
	}
	tables, err := db.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seeded := map[string]bool{}
	for _, tb := range tables {
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 && tb != "schema_migrations" {
			seeded[tb] = true
		}
	}
	if fmt.Sprint(seeded) != fmt.Sprint(seededTables) {
		t.Fatalf("tables with rows in a new store: %v, state copy replaces %v", seeded, seededTables)
	}
}

// TestReplayChecksPolicyDigest: a record names its policy by the whole
// digest of its sources too; replay refuses kept sources that do not hash
// to it (48 bits of the short version can be matched by other sources, the
// audit probe's point), and loads the ones that do.
func TestReplayChecksPolicyDigest(t *testing.T) {
	ctx := context.Background()
	cfgPath, _ := keysConfig(t)
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
	fst, err := flowstore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cfgYAML, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	catYAML, err := yaml.Marshal(struct {
		Providers []config.Provider `yaml:"providers"`
		Models    []config.Model    `yaml:"models"`
	}{cfg.Providers, cfg.Models})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := policy.Load(ctx, policy.Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := eng.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	v := audit.Versions{Policy: eng.Version, Config: audit.ContentHash(cfgYAML), Catalog: audit.ContentHash(catYAML), PolicySHA256: eng.Digest}
	for _, put := range []struct {
		kind, hash string
		body       []byte
	}{{"config", v.Config, cfgYAML}, {"catalog", v.Catalog, catYAML}, {"policy", v.Policy, bundle}} {
		if err := st.PutVersion(ctx, put.kind, put.hash, put.body); err != nil {
			t.Fatal(err)
		}
	}
	rp := &replayer{ctx: ctx, st: st, routes: fst, cfgPath: cfgPath, kept: map[audit.Versions]*keptRouter{}}
	if k := rp.recorded(v); k.err != nil || len(eng.Digest) != 64 || eng.Digest[:12] != eng.Version {
		t.Fatalf("the kept versions: %v (digest %q, version %q)", k.err, eng.Digest, eng.Version)
	}
	other := v
	other.PolicySHA256 = strings.Repeat("0", 64)
	if k := rp.recorded(other); k.err == nil || !strings.Contains(k.err.Error(), "does not hash to the record's policy_sha256") {
		t.Fatalf("sources another digest names: %v", k.err)
	}
	older := v
	older.PolicySHA256 = "" // a record from before the digest was kept
	if k := rp.recorded(older); k.err != nil {
		t.Fatalf("a record without the digest: %v", k.err)
	}
}
