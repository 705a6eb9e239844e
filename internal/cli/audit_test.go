package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/audit/audittest"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// TestAuditCLI: records written by a server's log (here, in the test)
// verify from the CLI with the generated key; an export verifies offline
// with the printed public key; an edit in the store makes verify fail
// naming the writer and seq.
func TestAuditCLI(t *testing.T) {
	cfgPath, stateDir := keysConfig(t)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// As serve does: the store first, then the key (a key without its
	// store is a failed restore: store.StateFiles).
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	signer, generated, err := audit.LoadSigner(cfg.Audit, cfg.State.Dir, os.Getenv)
	if err != nil || !generated {
		t.Fatalf("signer: %v %v", generated, err)
	}
	if st, err := os.Stat(filepath.Join(stateDir, audit.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v %v", st, err)
	}
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, signer, audit.OptionsFrom(cfg.Audit, cfg.State.Dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	for i := range 20 {
		ws := []string{"legal", "default"}[i%2]
		key := "key-ok"
		if i%4 == 0 {
			key = "key-leaked"
		}
		l.Record(&audit.Record{Kind: audit.KindDecision, ID: "d" + string(rune('a'+i)), Workspace: ws, Principal: &audit.Principal{KeyID: key},
			Chosen: "m1", Status: 200})
	}
	l.Record(&audit.Record{Kind: audit.KindKey, ID: "chg-1", Workspace: "legal", Change: &audit.Change{Actor: "cli:ops", Action: "create", Target: "bot"}})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	out, _, err := run("audit", "verify", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "ok: 21 records in 1 chain(s) verified") || !strings.Contains(out, "closed") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	// A writer the log does not have verifies nothing: no "ok" (the CLI
	// probe: a mistyped --writer passed).
	if out, _, err := run("audit", "verify", "--config", cfgPath, "--writer", "nosuch"); err == nil || !strings.Contains(err.Error(), `no writer "nosuch"`) {
		t.Errorf("verify --writer nosuch: %v\n%s", err, out)
	}
	pub, stderr, err := run("audit", "pubkey", "--config", cfgPath)
	if err != nil || !strings.HasPrefix(pub, "-----BEGIN PUBLIC KEY-----") || !strings.Contains(stderr, signer.Public().ID) {
		t.Fatalf("pubkey: %v %s %s", err, pub, stderr)
	}
	dir := t.TempDir()
	pubFile, exportFile := filepath.Join(dir, "audit.pub"), filepath.Join(dir, "export.jsonl")
	_ = os.WriteFile(pubFile, []byte(pub), 0o600)
	_, stderr, err = run("audit", "export", "--config", cfgPath, "--from", start.Format(time.RFC3339), "--to", time.Now().Add(time.Minute).Format(time.RFC3339),
		"--workspace", "legal", "--out", exportFile)
	if err != nil || !strings.Contains(stderr, "11 record(s) exported") {
		t.Fatalf("export: %v %s", err, stderr)
	}
	// Offline: no config, the key given.
	out, _, err = run("audit", "verify", "--file", exportFile, "--pubkey", pubFile)
	if err != nil || !strings.Contains(out, "ok: 11 records") {
		t.Fatalf("verify --file: %v\n%s", err, out)
	}
	out, _, err = run("audit", "verify", "--file", exportFile, "--pubkey", pubFile, "--json")
	if err != nil || !strings.Contains(out, `"problems": []`) {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}

	// One key's records (a leaked key's) over the last hour: the others
	// are links, and the file verifies whole; one byte changed does not.
	keyFile := filepath.Join(dir, "key.jsonl")
	_, stderr, err = run("audit", "export", "--config", cfgPath, "--from", "1h", "--to", "now", "--key", "key-leaked", "--out", keyFile)
	if err != nil || !strings.Contains(stderr, "5 record(s) exported") {
		t.Fatalf("export --key: %v %s", err, stderr)
	}
	out, _, err = run("audit", "verify", "--file", keyFile, "--pubkey", pubFile)
	if err != nil || !strings.Contains(out, "ok: 5 records") || !strings.Contains(out, "16 links") {
		t.Fatalf("verify --file of one key: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(keyFile)
	if strings.Count(string(b), `"type":"record"`) != 5 || strings.Contains(string(b), "key-ok") {
		t.Errorf("export --key holds other records:\n%s", b)
	}
	i := strings.Index(string(b), `\"chosen\":\"m1\"`)
	if i < 0 {
		t.Fatalf("no record body in\n%s", b)
	}
	b[i+len(`\"chosen\":\"m`)] = '2'
	_ = os.WriteFile(keyFile, b, 0o600)
	out, _, err = run("audit", "verify", "--file", keyFile, "--pubkey", pubFile)
	if !errors.Is(err, errProblems) || !strings.Contains(out, "modified") {
		t.Fatalf("a changed byte in a key's export: %v\n%s", err, out)
	}

	if audittest.EditBody(t, db, `"m1"`, `"m2"`, `seq = 4`) != 1 {
		t.Fatal("record 4 not edited")
	}
	out, _, err = run("audit", "verify", "--config", cfgPath)
	if !errors.Is(err, errProblems) || !strings.Contains(out, "PROBLEM "+l.Writer()+" seq 4: modified") {
		t.Fatalf("tampered: %v\n%s", err, out)
	}

	for name, args := range map[string][]string{
		"export without range": {"audit", "export", "--config", cfgPath},
		"bad format":           {"audit", "export", "--from", "2026-01-01", "--to", "2026-02-01", "--format", "xml"},
		"file without key":     {"audit", "verify", "--file", exportFile},
		"bad time":             {"audit", "verify", "--from", "yesterday"},
		"unknown verb":         {"audit", "frob"},
	} {
		if _, _, err := run(args...); !errors.Is(err, ErrUsage) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestOutputToReplacesWhole: a verb writing to --out replaces the file
// only once everything was written: a failure (or Ctrl-C) leaves the file
// it was replacing as it was and no partial file beside it; an export cut
// short had emptied a good export, and a cut export could verify (the CLI
// probe).
func TestOutputToReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(path, []byte("the good export\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, finish, err := outputTo(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "half of a new one")
	if err := finish(errors.New("the store went away")); err == nil {
		t.Error("the failure was not returned")
	}
	if b, _ := os.ReadFile(path); string(b) != "the good export\n" {
		t.Errorf("after a failed write the file holds %q", b)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("%d files in the directory, want the export alone", len(es))
	}
	w, finish, err = outputTo(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "a whole new one\n")
	if err := finish(nil); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if b, _ := os.ReadFile(path); string(b) != "a whole new one\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after a whole write: %q, mode %v", b, fi.Mode().Perm())
	}
}

// TestParseWhenAsSpend: audit export's and replay's --from/--to read times
// as spend's --since/--until do: now and durations ago too (the CLI probe).
func TestParseWhenAsSpend(t *testing.T) {
	now := time.Now()
	for s, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "now": 0} {
		got, err := parseWhen(s)
		if err != nil || now.Sub(got)-want > time.Minute || want-now.Sub(got) > time.Minute {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	if got, err := parseWhen("2025-06-01"); err != nil || !got.Equal(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a date: %v %v", got, err)
	}
	if _, err := parseWhen("yesterday"); err == nil {
		t.Error("yesterday")
	}
}
