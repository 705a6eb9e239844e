package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

func TestRoutesCLI(t *testing.T) {
	cfg, _ := keysConfig(t)
	dir := filepath.Join(filepath.Dir(cfg), "routes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "support.yaml")
	write(file, `route: support
nodes:
  - {id: plan, if: 'metadata.?plan.orValue("") == "paid"', then: strong, else: limit}
  - id: limit
    rate_limit: {requests_per_minute: 100}
    next: cheap
    fallback: busy
  - {id: strong, model: m1}
  - {id: cheap, model: auto, objective: cost}
  - {id: busy, end: {status: 429, message: busy}}
`)
	samples := filepath.Join(dir, "..", "samples.json")
	write(samples, `[
  {"name": "paid", "body": {"model": "route:support", "messages": [{"role": "user", "content": "hi"}], "metadata": {"plan": "paid"}},
   "expect": {"model": "m1"}},
  {"name": "free over the limit", "body": {"model": "route:support", "messages": [{"role": "user", "content": "hi"}]},
   "limits": {"limit": "over"}, "expect": {"end": 429}}
]`)

	// test runs a draft file without a store.
	out, stderr, err := run("routes", "test", file, "--samples", samples, "--config", cfg)
	if err != nil || !strings.Contains(out, "path: support: plan → strong") || !strings.Contains(out, "outcome: model m1") ||
		!strings.Contains(out, "path: support: plan → limit (limit reached) → busy") || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("test: %v %s\n%s", err, stderr, out)
	}
	// Every sample of a sticky split on one subject (a service key's
	// user): a warning, not a failure.
	ab := filepath.Join(dir, "..", "ab.yaml")
	write(ab, "route: ab\nnodes:\n  - id: ab\n    split:\n      sticky: user\n      arms:\n"+
		"        - {name: a, weight: 1, next: m}\n        - {name: b, weight: 1, next: m}\n  - {id: m, model: m1}\n")
	abSamples := filepath.Join(dir, "..", "ab-samples.json")
	write(abSamples, `[
  {"name": "ana", "body": {"model": "route:ab", "user": "ana", "messages": [{"role": "user", "content": "hi"}]}, "principal": {"key": "app", "user": "svc"}},
  {"name": "ben", "body": {"model": "route:ab", "user": "ben", "messages": [{"role": "user", "content": "hi"}]}, "principal": {"key": "app", "user": "svc"}}
]`)
	out, stderr, err = run("routes", "test", ab, "--samples", abSamples, "--config", cfg)
	if err != nil || !strings.Contains(out, `warning: split ab: all 2 samples that cross it have one sticky subject, the key's user "svc"`) ||
		!strings.Contains(out, "use sticky: request.user") || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("sticky warning: %v %s\n%s", err, stderr, out)
	}
	// A failing expectation fails the command.
	write(samples, `[{"name": "wrong", "body": {"model": "route:support", "messages": [{"role": "user", "content": "hi"}]}, "expect": {"model": "m1"}}]`)
	out, _, err = run("routes", "test", file, "--samples", samples, "--config", cfg)
	if err == nil || !strings.Contains(out, `mismatch: model "auto", expected "m1"`) {
		t.Fatalf("failing test: %v\n%s", err, out)
	}

	// deploy FILE stores and deploys v1.
	out, stderr, err = run("routes", "deploy", file, "--message", "first", "--config", cfg)
	if err != nil || !strings.Contains(out, "support@1 is live (was nothing)") {
		t.Fatalf("deploy: %v %s %s", err, stderr, out)
	}
	write(file, strings.Replace(mustReadFile(t, file), "requests_per_minute: 100", "requests_per_minute: 50", 1))
	// diff: the live version against the edited file.
	out, _, err = run("routes", "diff", "support", "--config", cfg)
	if err != nil || !strings.Contains(out, "--- support@1") || !strings.Contains(out, "-    rate_limit: {requests_per_minute: 100}") ||
		!strings.Contains(out, "+    rate_limit: {requests_per_minute: 50}") || !strings.Contains(out, "@@ -2,7 +2,7 @@") {
		t.Fatalf("diff: %v\n%s", err, out)
	}
	if _, _, err := run("routes", "create", file, "--message", "halve the free tier", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run("routes", "deploy", "support@2", "--config", cfg); err != nil || !strings.Contains(out, "support@2 is live (was support@1)") {
		t.Fatalf("deploy v2: %v %s", err, out)
	}
	out, _, err = run("routes", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "support") || !strings.Contains(out, "ROUTE") {
		t.Fatalf("list: %v %s", err, out)
	}
	if out, _, err := run("routes", "rollback", "support", "--config", cfg); err != nil || !strings.Contains(out, "support@1 is live (was support@2)") {
		t.Fatalf("rollback: %v %s", err, out)
	}
	out, _, err = run("routes", "show", "support", "--config", cfg)
	if err != nil || !strings.Contains(out, "# support@1 (live)") || !strings.Contains(out, "requests_per_minute: 100") {
		t.Fatalf("show: %v %s", err, out)
	}
	out, _, err = run("routes", "show", "support@2", "--json", "--config", cfg)
	var v struct {
		Version int64
		Message string
		Live    bool
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Version != 2 || v.Live || v.Message != "halve the free tier" {
		t.Fatalf("show --json: %v %s", err, out)
	}
	// sync: the file is v2's text, new to the file record: deployed.
	out, _, err = run("routes", "sync", "--config", cfg)
	if err != nil || !strings.Contains(out, "support@2, live") {
		t.Fatalf("sync: %v %s", err, out)
	}
	// Errors: a missing route, a bad reference, a document that does not load.
	if _, _, err := run("routes", "show", "nope", "--config", cfg); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Errorf("show unknown: %v", err)
	}
	if _, _, err := run("routes", "deploy", "support@x", "--config", cfg); err == nil {
		t.Error("bad version accepted")
	}
	write(file, "route: support\nnodes:\n  - {id: a, model: m9}\n")
	if _, _, err := run("routes", "create", file, "--config", cfg); err == nil || !strings.Contains(err.Error(), `support.yaml:3:20: route support, node a: model: unknown model "m9"`) {
		t.Errorf("create broken: %v", err)
	}
	// A comparison that never holds: refused from a file as a new version,
	// but a file the server syncs keeps loading as it did (with a warning).
	write(file, "route: support\nnodes:\n  - {id: c, if: 'classification.risk in [\"low\", \"none\"]', then: a, else: a}\n  - {id: a, model: m1}\n")
	never := `support.yaml:3:49: route support, node c: if: classification.risk is never "none": the comparison never holds for it (its values: low, medium, high)`
	if _, _, err := run("routes", "create", file, "--config", cfg); err == nil || !strings.Contains(err.Error(), never) {
		t.Errorf("create with a value that never occurs: %v", err)
	}
	if out, _, err := run("routes", "sync", "--config", cfg); err != nil || !strings.Contains(out, "support@3, live") || !strings.Contains(out, "warning: ") || !strings.Contains(out, never) {
		t.Errorf("sync of a file with a value that never occurs: %v %s", err, out)
	}
	if _, stderr, err := run("routes", "deploy", "support@3", "--config", cfg); err != nil || !strings.Contains(stderr, "warning: support@3:3:49:") {
		t.Errorf("deploy of the stored version: %v %s", err, stderr)
	}
	if _, _, err := run("routes", "frobnicate"); err == nil {
		t.Error("unknown verb accepted")
	}
	// The config loses m1: list names every version that no longer loads.
	write(cfg, strings.ReplaceAll(mustReadFile(t, cfg), "m1", "m0"))
	out, _, err = run("routes", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, `support@1 does not load under this config (`) || !strings.Contains(out, `unknown model "m1"`) {
		t.Errorf("list with broken versions: %v\n%s", err, out)
	}
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExplainRoutesOfAStore: explain decides a route:<name> request with
// the routes of the store --state-dir (or the config's state.dir) names,
// and writes nothing: where no store exists, no route does, and no store
// is created to find that out.
func TestExplainRoutesOfAStore(t *testing.T) {
	cfg, stateDir := keysConfig(t)
	req := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(req, []byte(`{"model":"route:support","messages":[{"role":"user","content":"hi"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := run("explain", "--config", cfg, req)
	if err != nil || !strings.Contains(out, "404 route_not_found") {
		t.Fatalf("no store: %v\n%s", err, out)
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Fatalf("explain created the state directory %s (%v)", stateDir, err)
	}
	file := filepath.Join(t.TempDir(), "support.yaml")
	if err := os.WriteFile(file, []byte("route: support\nnodes:\n  - {id: only, model: m1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	if out, stderr, err := run("routes", "deploy", file, "--config", cfg, "--state-dir", elsewhere); err != nil {
		t.Fatalf("deploy: %v %s %s", err, stderr, out)
	}
	out, _, err = run("explain", "--config", cfg, "--state-dir", elsewhere, req)
	if err != nil || !strings.Contains(out, "support@1") {
		t.Fatalf("explain --state-dir: %v\n%s", err, out)
	}
}

// TestRoutesReadNoStore: the verbs that read versions refuse a state
// directory without a store, as keys and audit do, and make none there: a
// mistyped --state-dir listed no route, exit 0, and left an empty store
// behind (the CLI probe).
func TestRoutesReadNoStore(t *testing.T) {
	cfg, _ := keysConfig(t)
	typo := filepath.Join(t.TempDir(), "sate")
	for _, args := range [][]string{{"routes", "list"}, {"routes", "show", "support"}} {
		_, _, err := run(append(args, "--config", cfg, "--state-dir", typo)...)
		if err == nil || !strings.Contains(err.Error(), "no state store at") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := os.Stat(typo); err == nil {
		t.Error("a store was made in the mistyped directory")
	}
}

// TestConfigCheckDeployedRoutes: a config that takes out a model a
// deployed route serves is an error of config check, naming the route,
// its version and the model (a running serve refuses it; the policy
// rollout probe's check said ok), and --state-dir names the store.
func TestConfigCheckDeployedRoutes(t *testing.T) {
	cfg, stateDir := keysConfig(t)
	yaml := mustReadFile(t, cfg)
	withM2 := strings.Replace(yaml, "  - {id: m1, provider: p1, context_window: 1000}\n",
		"  - {id: m1, provider: p1, context_window: 1000}\n  - {id: m2, provider: p1, context_window: 1000}\n", 1)
	if err := os.WriteFile(cfg, []byte(withM2), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "support.yaml")
	if err := os.WriteFile(file, []byte("route: support\nnodes:\n  - {id: strong, model: m2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := run("routes", "deploy", file, "--config", cfg); err != nil {
		t.Fatalf("deploy: %v %s %s", err, stderr, out)
	}
	if out, _, err := run("config", "check", cfg); err != nil || strings.Contains(out, "deployed route") {
		t.Fatalf("check with m2: %v\n%s", err, out)
	}
	// The same config moved elsewhere (its default state beside it is
	// empty), with m2 gone, checked against the store.
	other := filepath.Join(t.TempDir(), "stellwerk.yaml")
	withoutM2 := strings.Replace(mustReadFile(t, cfg), "  - {id: m2, provider: p1, context_window: 1000}\n", "", 1)
	withoutM2 = strings.Replace(withoutM2, "file: master.key", "file: "+filepath.Join(filepath.Dir(cfg), "master.key"), 1)
	if err := os.WriteFile(other, []byte(withoutM2), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run("config", "check", other); err != nil {
		t.Fatalf("a config without a store: %v\n%s", err, out)
	}
	out, _, err := run("config", "check", other, "--state-dir", stateDir)
	if err == nil || !strings.Contains(out, "error: deployed route does not load") || !strings.Contains(out, "support@1") ||
		!strings.Contains(out, `unknown model "m2"`) || !strings.Contains(out, "routing.aliases") || strings.Contains(out, ": ok (") {
		t.Fatalf("check without m2: %v\n%s", err, out)
	}
}

// TestRoutesRollbackToThePreviousLive: `routes rollback NAME` goes to the
// version live before the current one, skipping those that no longer load
// and saying so; with support@4 live and support@3 broken it failed on
// support@3 (`support@3:…: unknown model`, exit 1: the routes probe), and
// after a deploy of support@2 from support@4 it went to support@1.
func TestRoutesRollbackToThePreviousLive(t *testing.T) {
	cfg, _ := keysConfig(t)
	m1 := "  - {id: m1, provider: p1, context_window: 1000}\n"
	withM2 := strings.Replace(mustReadFile(t, cfg), m1, m1+"  - {id: m2, provider: p1, context_window: 1000}\n", 1)
	if err := os.WriteFile(cfg, []byte(withM2), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "support.yaml")
	for i, model := range []string{"m1", "m1", "m2", "m1"} {
		doc := fmt.Sprintf("route: support\n# v%d\nnodes:\n  - {id: only, model: %s}\n", i+1, model)
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := run("routes", "create", file, "--config", cfg); err != nil {
			t.Fatalf("create v%d: %v %s", i+1, err, stderr)
		}
	}
	for _, v := range []string{"support@1", "support@3", "support@4"} {
		if _, stderr, err := run("routes", "deploy", v, "--config", cfg); err != nil {
			t.Fatalf("deploy %s: %v %s", v, err, stderr)
		}
	}
	// m2 leaves the config: support@3 no longer loads.
	if err := os.WriteFile(cfg, []byte(strings.Replace(withM2, "  - {id: m2, provider: p1, context_window: 1000}\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := run("routes", "rollback", "support", "--config", cfg)
	if err != nil || !strings.Contains(out, `skipped support@3: it does not load under this config: support@3:4:23: route support, node only: model: unknown model "m2"`) ||
		!strings.Contains(out, "rolling back to support@1: support@1 is the most recent version live before support@4 that loads (skipped support@3: does not load)") ||
		!strings.Contains(out, "support@1 is live (was support@4)") {
		t.Fatalf("rollback past a broken version: %v %s\n%s", err, stderr, out)
	}
	for _, v := range []string{"support@4", "support@2"} {
		if _, stderr, err := run("routes", "deploy", v, "--config", cfg); err != nil {
			t.Fatalf("deploy %s: %v %s", v, err, stderr)
		}
	}
	out, _, err = run("routes", "rollback", "support", "--json", "--config", cfg)
	var d struct {
		From, To int64
		Reason   string
	}
	if err != nil || json.Unmarshal([]byte(out), &d) != nil || d.From != 2 || d.To != 4 || d.Reason != "support@4 was live before support@2" {
		t.Fatalf("rollback after a deploy of an older version: %v %s", err, out)
	}
	// A version named goes there, as before.
	if out, _, err := run("routes", "rollback", "support", "--to", "1", "--config", cfg); err != nil || !strings.Contains(out, "support@1 is live (was support@4)") ||
		strings.Contains(out, "rolling back") {
		t.Fatalf("rollback --to 1: %v %s", err, out)
	}
}

// TestRoutesSyncRecordsBefore: a route file's change deployed by a sync is
// on the audit record with the version it replaced as before, as a deploy
// is: it had only after, while the route's deploy history had from and to
// (the routes probe).
func TestRoutesSyncRecordsBefore(t *testing.T) {
	cfg, _ := keysConfig(t)
	dir := filepath.Join(filepath.Dir(cfg), "routes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		doc := fmt.Sprintf("route: support\n# v%d\nnodes:\n  - {id: only, model: m1}\n", i+1)
		if err := os.WriteFile(filepath.Join(dir, "support.yaml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, stderr, err := run("routes", "sync", "--config", cfg); err != nil {
			t.Fatalf("sync v%d: %v %s %s", i+1, err, stderr, out)
		}
	}
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), c.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
		got = append(got, fmt.Sprintf("%s %s %s %q→%q", r.Kind, r.Change.Action, r.Change.Target, r.Change.Before, r.Change.After))
	}
	want := []string{`route file support ""→"support@1"`, `route file support "support@1"→"support@2"`}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("change records %q, want %q", got, want)
	}
}

// TestConfigCheckBrokenRouteFile: config check's warning about a route
// file that does not load says what its route then serves: it said "its
// route keeps its live version" also when the live version was the same
// text and failed the same way (the routes probe).
func TestConfigCheckBrokenRouteFile(t *testing.T) {
	cfg, _ := keysConfig(t)
	m1 := "  - {id: m1, provider: p1, context_window: 1000}\n"
	m2 := "  - {id: m2, provider: p1, context_window: 1000}\n"
	withM2 := strings.Replace(mustReadFile(t, cfg), m1, m1+m2, 1)
	if err := os.WriteFile(cfg, []byte(withM2), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(cfg), "routes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, model string) {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte("route: "+name+"\nnodes:\n  - {id: only, model: "+model+"}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("support", "m2") // live as it is
	write("billing", "m1") // live, then its file breaks
	write("legacy", "m2")  // live, then its file changes and still fails
	if out, stderr, err := run("routes", "sync", "--config", cfg); err != nil {
		t.Fatalf("sync: %v %s %s", err, stderr, out)
	}
	write("billing", "m2")
	write("draft", "m2") // never synced: no live version
	if err := os.WriteFile(filepath.Join(dir, "legacy.yaml"), []byte("route: legacy\n# edited\nnodes:\n  - {id: only, model: m2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(withM2, m2, "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The live versions that do not load are errors of their own (a
	// running serve refuses the config: TestConfigCheckDeployedRoutes).
	out, _, err := run("config", "check", cfg)
	if err == nil {
		t.Fatalf("config check passed with live versions that do not load:\n%s", out)
	}
	for _, want := range []string{
		`warning: route file does not load, nor does its route's live version support@1 (the same text; the error below): ` +
			filepath.Join(dir, "support.yaml") + `:3:23: route support, node only: model: unknown model "m2"`,
		`warning: route file does not load (its route keeps its live version billing@1): ` + filepath.Join(dir, "billing.yaml") + ":3:23:",
		`warning: route file does not load, nor does its route's live version legacy@1 (another text, which fails too; the error below)`,
		`warning: route file does not load (route draft has no live version: requests to it get 404 or 503): ` + filepath.Join(dir, "draft.yaml") + ":3:23:",
		`error: deployed route does not load under this config (a running serve refuses it; one started with it answers the route 503 route_unavailable): legacy@1:3:23`,
		`error: deployed route does not load under this config (a running serve refuses it; one started with it answers the route 503 route_unavailable): support@1:3:23`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "support@1 (another text") {
		t.Errorf("the same text taken for another:\n%s", out)
	}
}

// TestRoutesChangeMessage: `routes rollback --message` is accepted (it was
// "flag provided but not defined: -message") and a deploy's and a
// rollback's message is on their change records, so the audit trail says
// why a version went live (the experimentation probe).
func TestRoutesChangeMessage(t *testing.T) {
	cfg, _ := keysConfig(t)
	dir := t.TempDir()
	for i := range 2 {
		file := filepath.Join(dir, fmt.Sprintf("v%d.yaml", i+1))
		doc := fmt.Sprintf("route: support\n# v%d\nnodes:\n  - {id: only, model: m1}\n", i+1)
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, stderr, err := run("routes", "deploy", file, "--message", fmt.Sprintf("ramp step %d", i+1), "--config", cfg); err != nil {
			t.Fatalf("deploy v%d: %v %s %s", i+1, err, stderr, out)
		}
	}
	long := strings.Repeat("é", 600) // 1,200 bytes: cut to 1,024 at a rune boundary
	if out, stderr, err := run("routes", "rollback", "support", "--message", "challenger regressed", "--config", cfg); err != nil ||
		!strings.Contains(out, "support@1 is live (was support@2)") {
		t.Fatalf("rollback --message: %v %s %s", err, stderr, out)
	}
	if out, stderr, err := run("routes", "deploy", "support@2", "--message", long, "--config", cfg); err != nil {
		t.Fatalf("deploy support@2: %v %s %s", err, stderr, out)
	}
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), c.State, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := audit.OpenStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	es, _, err := st.Query(context.Background(), audit.Filter{Kind: audit.KindRoute}, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		var r audit.Record
		if err := json.Unmarshal(e.Body, &r); err != nil || r.Change == nil {
			t.Fatalf("record %s: %v", e.Body, err)
		}
		m := r.Change.Detail["message"]
		if len(m) > 100 {
			if len(m) != 1024 || m != long[:1024] {
				t.Errorf("long message kept as %d bytes", len(m))
			}
			m = "long"
		}
		got = append(got, fmt.Sprintf("%s %q→%q %s", r.Change.Action, r.Change.Before, r.Change.After, m))
	}
	want := []string{`create ""→"support@1" ramp step 1`, `deploy ""→"support@1" ramp step 1`,
		`create ""→"support@2" ramp step 2`, `deploy "support@1"→"support@2" ramp step 2`,
		`rollback "support@2"→"support@1" challenger regressed`, `deploy "support@1"→"support@2" long`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("change records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
