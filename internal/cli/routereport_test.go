package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// TestRoutesReport: `routes report` prints, per version and arm of a split
// route, what the audit log holds; a chain's fallback counts as the arm's
// fallback, by the stored version's document. The probe wrote a script
// over the JSONL export for this.
func TestRoutesReport(t *testing.T) {
	cfgPath, _ := keysConfig(t)
	m1 := "  - {id: m1, provider: p1, context_window: 1000}\n"
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(mustReadFile(t, cfgPath), m1, m1+"  - {id: m2, provider: p1, context_window: 1000}\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(file, []byte(`route: exp
nodes:
  - id: rollout
    split:
      arms:
        - {name: control, weight: 50, next: strong}
        - {name: challenger, weight: 50, next: challenger}
  - {id: strong, model: m1}
  - {id: other, model: m2}
  - {id: challenger, chain: [other, strong]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := run("routes", "deploy", file, "--config", cfgPath); err != nil {
		t.Fatalf("deploy: %v %s %s", err, stderr, out)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.State, os.Getenv)
	if err != nil {
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
	now := time.Now()
	rec := func(i int, arm, served string, status int, took int64, eur float64, age time.Duration) {
		path := map[string][]string{"control": {"rollout", "strong"}, "challenger": {"rollout", "challenger"}}[arm]
		r := &audit.Record{Kind: audit.KindDecision, ID: fmt.Sprintf("d%d", i), Time: now.Add(-age), Workspace: "default",
			Chosen: served, Served: served, Status: status, TookMS: took, Route: &audit.Route{Name: "exp", Version: 1, Path: path, Arm: "rollout/" + arm}}
		if eur > 0 {
			r.Cost = &audit.Cost{EUR: eur}
		}
		l.Record(r)
	}
	for i := range 10 {
		rec(i, "control", "m1", 200, int64(100+i), 0.002, time.Minute)
	}
	rec(10, "challenger", "m2", 200, 50, 0.001, time.Minute)
	rec(11, "challenger", "m2", 200, 60, 0.001, time.Minute)
	rec(12, "challenger", "m1", 200, 70, 0.002, time.Minute) // the chain's fallback
	rec(13, "challenger", "", 502, 900, 0, time.Minute)
	rec(14, "challenger", "m2", 200, 55, 0.001, 10*24*time.Hour) // before --since 7d
	l.Record(&audit.Record{Kind: audit.KindDecision, ID: "auto", Workspace: "default", Chosen: "m1", Served: "m1", Status: 200})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	out, stderr, err := run("routes", "report", "exp", "--config", cfgPath)
	if err != nil {
		t.Fatalf("report: %v %s %s", err, stderr, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "route exp, since ") || !strings.Contains(lines[0], ": 14 requests of 15 decisions") {
		t.Fatalf("report:\n%s", out)
	}
	for i, want := range [][]string{
		{"VERSION", "ARM", "REQUESTS", "ERRORS", "ERROR", "RATE", "(95%", "CI)", "OWN", "FALLBACK", "P50", "MS", "P95", "MS", "µEUR/REQ", "TOTAL", "EUR"},
		{"1", "rollout/challenger", "4", "1", "25.0%", "(4.6–69.9)", "2", "1", "60", "900", "1000.0", "0.004000"},
		{"1", "rollout/control", "10", "0", "0.0%", "(0.0–27.8)", "10", "0", "104", "109", "2000.0", "0.020000"},
	} {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q\nwant %q", i+2, got, want)
		}
	}
	out, _, err = run("routes", "report", "exp", "--since", "30d", "--format", "json", "--config", cfgPath)
	var rep audit.RouteReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Arms) != 2 || rep.Arms[0].Requests != 5 || rep.Arms[0].ServedOwn != 3 {
		t.Fatalf("report --since 30d --format json: %v\n%s", err, out)
	}
	if _, stderr, err := run("routes", "report", "exp", "--format", "csv", "--since", "yesterday-ish", "--config", cfgPath); err == nil ||
		!strings.Contains(stderr, "--format") || !strings.Contains(stderr, "--since") {
		t.Errorf("bad flags: %v %s", err, stderr)
	}
}
