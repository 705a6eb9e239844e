package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
)

// seedSpend writes three ledger rows into the SQLite store in dir.
func seedSpend(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sp, err := spend.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rows := []spend.Row{
		{Time: day.Add(time.Hour), DecisionID: "a", KeyID: "bot", Workspace: "legal", Team: "contracts", Model: "m1", Provider: "p1",
			TokensIn: 1000, TokensOut: 200, Cost: 1_200, Status: spend.Served, EndUser: "ana@example.com", Tag: "p1"},
		{Time: day.Add(26 * time.Hour), DecisionID: "b", KeyID: "bot", Workspace: "legal", Team: "contracts", Model: "m1", Provider: "p1",
			TokensIn: 10, TokensOut: 5, Cost: 35, Estimated: true, Status: spend.Interrupted, EndUser: "bob", Tag: "p1"},
		{Time: day.Add(27 * time.Hour), DecisionID: "c", KeyID: "other", Workspace: "legal", Model: "m2", Provider: "p1",
			Status: spend.Failed},
	}
	if _, err := sp.Insert(ctx, rows); err != nil {
		t.Fatal(err)
	}
}

func TestSpendCLI(t *testing.T) {
	cfg, stateDir := keysConfig(t)
	seedSpend(t, stateDir)
	rng := []string{"--config", cfg, "--since", "2025-06-01", "--until", "2025-06-03"}

	out, stderr, err := run(append([]string{"spend", "--group-by", "model", "--format", "csv"}, rng...)...)
	want := "model,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\nm1,2,1010,205,0,0.001235,1\nm2,1,0,0,0,0.000000,0\n"
	if err != nil || out != want {
		t.Errorf("csv: %v %s\n%s", err, stderr, out)
	}

	out, _, err = run(append([]string{"spend", "--group-by", "key,day", "--format", "json", "--status", "served,interrupted"}, rng...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"data": []`) { // a filter is one exact value
		t.Errorf("a list is not a status: %s", out)
	}
	out, _, err = run(append([]string{"spend", "--group-by", "key,day", "--format", "json", "--workspace", "legal"}, rng...)...)
	var rep struct {
		Data  []map[string]any `json:"data"`
		Total spend.Sums       `json:"total"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Data) != 3 || rep.Data[0]["key"] != "bot" ||
		rep.Data[0]["day"] != "2025-06-01" || rep.Data[1]["day"] != "2025-06-02" || rep.Total.Requests != 3 || rep.Total.Cost != 1_235 {
		t.Errorf("json: %v\n%s", err, out)
	}

	// End users (with their workspace) and tags, as CSV; --end-user filters.
	out, stderr, err = run(append([]string{"spend", "--group-by", "tag,end_user", "--format", "csv"}, rng...)...)
	want = "tag,workspace,end_user,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\n" +
		",legal,,1,0,0,0,0.000000,0\np1,legal,ana@example.com,1,1000,200,0,0.001200,0\np1,legal,bob,1,10,5,0,0.000035,1\n"
	if err != nil || out != want {
		t.Errorf("by tag and end user: %v %s\n%s", err, stderr, out)
	}
	out, stderr, err = run(append([]string{"spend", "--group-by", "tag", "--format", "csv", "--end-user", "bob"}, rng...)...)
	if want := "tag,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\np1,1,10,5,0,0.000035,1\n"; err != nil || out != want {
		t.Errorf("--end-user bob: %v %s\n%s", err, stderr, out)
	}

	// The table, with the total; --tz moves the second row to another day.
	out, _, err = run(append([]string{"spend", "--group-by", "day", "--tz", "America/New_York"}, append(rng, "--since", "2025-05-31T00:00:00Z")...)...)
	if err != nil || !strings.Contains(out, "2025-05-31") || !strings.Contains(out, "TOTAL") || !strings.Contains(out, "0.001235") ||
		!strings.Contains(out, "(America/New_York)") {
		t.Errorf("table: %v\n%s", err, out)
	}

	// --state-dir names a directory without a store (a typo): said so,
	// not answered with an empty report from a store made on the spot (a
	// helper's finding), and nothing is created there.
	other := filepath.Join(t.TempDir(), "s")
	_, _, err = run(append([]string{"spend", "--format", "json", "--state-dir", other}, rng...)...)
	if err == nil || !strings.Contains(err.Error(), "no state store at "+other) {
		t.Errorf("a state dir without a store: %v", err)
	}
	if _, serr := os.Stat(other); serr == nil {
		t.Errorf("%s was created", other)
	}

	// Mistakes are reported together, with exit status 2.
	_, stderr, err = run("spend", "--config", cfg, "--since", "yesterday", "--group-by", "model,cost", "--format", "xml", "extra")
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("err %v", err)
	}
	for _, s := range []string{"unexpected arguments: extra", "--format", "--since", "--group-by"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
}

// TestSpendCLIStoreDown: an unreachable PostgreSQL is an error (exit 1)
// that says so, and shows no DSN.
func TestSpendCLIStoreDown(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(cfg, []byte(`
routing: {default_model: m1}
providers: [{name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}]
models: [{id: m1, provider: p1, context_window: 1000}]
state:
  postgres: {dsn_env: STELLWERK_TEST_SPEND_DSN}
  hash_key: {env: STELLWERK_TEST_SPEND_HASH}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STELLWERK_TEST_SPEND_DSN", "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	t.Setenv("STELLWERK_TEST_SPEND_HASH", strings.Repeat("k", 32))
	_, _, err := run("spend", "--config", cfg)
	if err == nil || errors.Is(err, ErrUsage) || !errors.Is(err, store.ErrUnavailable) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err %v", err)
	}
}
