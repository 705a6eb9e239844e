package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/audit/audittest"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/store"
)

// TestAuditRecords: through Envoy, a JSON answer and a stream (official
// Python SDK), a failover, a request denied by policy and one over budget
// each leave exactly one decision record with what the client got; the
// CLI verifies the chain after a clean shutdown, and finds a record
// changed in the SQLite file.
func TestAuditRecords(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		// 0.02 EUR a day: a request for the dearest model that may write
		// 4,096 tokens (0.049 EUR) does not fit; the others, capped at 100
		// tokens, do. (An auto request that may write that much is served:
		// a fallback it cannot afford is left out of its plan.)
		c.Currency.USDToEUR = 1
		c.Budgets.Limits = []config.BudgetRule{{Name: "daily", Scope: "global", AmountEUR: 0.02, Period: "day"}}
	})
	primary := s.Providers["primary"]
	type want struct {
		status   int
		code     string
		served   string
		attempts int
		charged  bool
		minTook  int64 // ms
	}
	wants := map[string]want{}
	const capped = `{"max_tokens":100}`

	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 300 * time.Millisecond})
	r := viaPython(t, s, "plain", capped)
	if r.Error != nil || r.Decision == "" {
		t.Fatalf("json: %+v", r)
	}
	primary.SetBehavior(mockllm.Behavior{})
	wants[r.Decision] = want{status: 200, served: "primary-mini", attempts: 1, charged: true, minTook: 300}

	r = viaPython(t, s, "stream", capped)
	if r.Error != nil || r.Decision == "" {
		t.Fatalf("stream: %+v", r)
	}
	wants[r.Decision] = want{status: 200, served: "primary-mini", attempts: 1, charged: true}

	primary.SetBehavior(mockllm.Behavior{Status: 503})
	r = viaPython(t, s, "plain", capped)
	if r.Error != nil || r.Decision == "" || r.Model != "claude-haiku" {
		t.Fatalf("failover: %+v", r)
	}
	wants[r.Decision] = want{status: 200, served: "claude-haiku", attempts: 2, charged: true}
	// Every attempt fails: stellwerk's 503 names no model as served (it
	// named the last one tried, found by a helper); the attempts do.
	for _, name := range []string{"claude", "eu"} {
		s.Providers[name].SetBehavior(mockllm.Behavior{Status: 503})
	}
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`, nil)
	if resp.StatusCode != 503 || resp.Header.Get(header.DecisionID) == "" || resp.Header.Get(header.PolicyVersion) == "" {
		t.Fatalf("every attempt failed: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	wants[resp.Header.Get(header.DecisionID)] = want{status: 503, code: "no_eligible_model", attempts: 3}
	resetAll(s)

	resp, b = post(t, s.URL+"/v1/chat/completions",
		`{"model":"auto","messages":[{"role":"user","content":"my key is AKIAIOSFODNN7EXAMPLE, why does S3 refuse it?"}]}`, nil)
	if resp.StatusCode != 403 || resp.Header.Get(header.DecisionID) == "" {
		t.Fatalf("policy: %d %s", resp.StatusCode, b)
	}
	wants[resp.Header.Get(header.DecisionID)] = want{status: 403, code: "policy_denied"}

	resp, b = post(t, s.URL+"/v1/chat/completions",
		`{"model":"eu-large","max_tokens":4096,"messages":[{"role":"user","content":"write a long story"}]}`, nil)
	if resp.StatusCode != 429 || resp.Header.Get(header.DecisionID) == "" {
		t.Fatalf("budget: %d %s", resp.StatusCode, b)
	}
	wants[resp.Header.Get(header.DecisionID)] = want{status: 429, code: "budget_exceeded", served: "", attempts: 0}

	var decisions []string // every decision, for replay
	for id := range wants {
		decisions = append(decisions, id)
	}

	// The records reach the store within a batch interval or so.
	var page admin.AuditPage
	deadline := time.Now().Add(10 * time.Second)
	for {
		page = auditPage(t, s, "kind=decision&limit=1000")
		if len(page.Records) >= len(wants) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(page.Records) != len(wants) {
		t.Fatalf("%d decision records, want %d (one per request)", len(page.Records), len(wants))
	}
	var failoverID string
	seeds := map[string]int{}
	for _, m := range s.Config.Models {
		seeds[m.ID] = m.LatencyMS
	}
	learnedInTable := 0 // records whose table holds a learned latency their replay inputs leave to it
	for _, v := range page.Records {
		w, ok := wants[v.ID]
		if !ok {
			t.Errorf("a record of an unknown request %s", v.ID)
			continue
		}
		delete(wants, v.ID)
		var rec audit.Record
		mustJSON(t, v.Record, &rec)
		var withReplay struct {
			Replay struct {
				LatencyMS   map[string]int `json:"latency_ms"`
				LatencyFrom string         `json:"latency_from"`
			} `json:"replay"`
		}
		mustJSON(t, v.Record, &withReplay)
		replay := withReplay.Replay
		if len(rec.Candidates) > 0 && rec.Replay != nil && (replay.LatencyFrom != "candidates" || replay.LatencyMS != nil) {
			t.Errorf("%s: a record with its candidate table repeats its latencies in the replay inputs: %+v", v.ID, replay)
		}
		for _, c := range rec.Candidates {
			if replay.LatencyFrom != "" && c.LatencyMS != seeds[c.Model] {
				learnedInTable++
				break
			}
		}
		// took_ms is the whole request, the provider's time and stellwerk's.
		if rec.TookMS < w.minTook || rec.TookMS*1000+1000 < rec.OverheadUS {
			t.Errorf("%s: took %d ms (at least %d), router overhead %d µs", v.ID, rec.TookMS, w.minTook, rec.OverheadUS)
		}
		if rec.Status != w.status || rec.ErrorCode != w.code || rec.Served != w.served || len(rec.Attempts) != w.attempts {
			t.Errorf("%s: status %d %q served %q attempts %+v; want %+v", v.ID, rec.Status, rec.ErrorCode, rec.Served, rec.Attempts, w)
		}
		if rec.Request == nil || !strings.HasPrefix(rec.Request.Fingerprint, "sha256:") || rec.Versions.Config == "" ||
			rec.Versions.Catalog == "" || rec.Versions.Policy == "" || rec.Classification == nil ||
			(w.code != "policy_denied" && (len(rec.Candidates) != 3 || rec.Chosen == "")) {
			t.Errorf("%s: record %s", v.ID, v.Record)
		}
		if w.charged && (rec.Usage == nil || rec.Cost == nil || rec.Cost.EUR <= 0 || rec.Usage.CompletionTokens <= 0) {
			t.Errorf("%s: usage %+v cost %+v", v.ID, rec.Usage, rec.Cost)
		}
		if !w.charged && rec.Cost != nil && rec.Cost.EUR != 0 {
			t.Errorf("%s: a refused request costs nothing: %+v", v.ID, rec.Cost)
		}
		if w.code == "policy_denied" && len(rec.Deny) == 0 {
			t.Errorf("%s: the deny reasons are missing: %s", v.ID, v.Record)
		}
		if w.attempts == 2 {
			failoverID = v.ID
			if a := rec.Attempts; a[0].Provider != "primary" || a[0].Status != 503 || a[0].Outcome != "failed" || a[1].Outcome != "served" ||
				rec.Chosen != "primary-mini" {
				t.Errorf("failover attempts %+v chosen %s", a, rec.Chosen)
			}
		}
	}
	if len(wants) != 0 {
		t.Errorf("requests without a record: %v", wants)
	}
	if learnedInTable == 0 {
		t.Error("no record leaves a learned latency to its candidate table: the replays below would not read one back")
	}
	pk := adminJSON(t, s, "/audit/pubkey")
	if pk["key_id"] == "" || pk["algorithm"] != "ed25519" {
		t.Errorf("pubkey %v", pk)
	}

	// Changes: a key created, rotated and revoked through the admin API,
	// and a config reload, each on the record with who made it.
	for _, c := range []struct{ path, body string }{
		{"/admin/keys", `{"id":"audit-bot","workspace":"default"}`},
		{"/admin/keys/audit-bot/rotate", `{}`},
		{"/admin/keys/audit-bot/revoke", ``},
	} {
		if resp, b := adminDo(t, s, "POST", c.path, c.body); resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, b)
		}
	}
	cfg := *s.Config
	cfg.Models = slices.Clone(cfg.Models)
	cfg.Models[2].Price.OutputPerMTok = 13
	s.WriteConfig(&cfg)
	changes := map[string][]string{} // kind → actions
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		clear(changes)
		for _, v := range auditPage(t, s, "limit=1000").Records {
			var rec audit.Record
			mustJSON(t, v.Record, &rec)
			if rec.Change == nil {
				continue
			}
			changes[rec.Kind] = append(changes[rec.Kind], rec.Change.Actor+" "+rec.Change.Action+" "+rec.Change.Target)
			if rec.Kind == audit.KindConfig && rec.Change.Action == "reload" &&
				(rec.Change.Before == rec.Change.After || rec.Change.Detail["catalog_after"] == "") {
				t.Errorf("reload record %s", v.Record)
			}
		}
		if len(changes[audit.KindConfig]) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	wantChanges := map[string][]string{
		audit.KindKey:    {"admin:harness create audit-bot", "admin:harness rotate audit-bot", "admin:harness revoke audit-bot"},
		audit.KindConfig: {"config-file load ", "config-file reload "},
		audit.KindPolicy: {"policy-dir load "},
	}
	if !reflect.DeepEqual(changes, wantChanges) {
		t.Errorf("change records %q, want %q", changes, wantChanges)
	}

	// A clean shutdown signs the chain's end; the CLI verifies it.
	s.Stop("stellwerk")
	cfgPath := filepath.Join(s.Dir, "stellwerk.yaml")
	rep, code := verifyCLI(t, cfgPath)
	if code != 0 || !rep.OK() || rep.Records < 5 {
		t.Fatalf("verify: exit %d %+v", code, rep)
	}
	if w := rep.Writers; len(w) != 1 || !w[0].Closed {
		t.Errorf("writers %+v: want one, closed by its shutdown checkpoint", w)
	}
	// What an auditor keeps outside the store: each writer's latest
	// checkpoint.
	witness := filepath.Join(t.TempDir(), "witness.jsonl")
	if out, err := exec.Command(harness.Binary(t), "audit", "witness", "--config", cfgPath, "--out", witness).CombinedOutput(); err != nil {
		t.Fatalf("audit witness: %v %s", err, out)
	}
	if rep, code := verifyCLI(t, cfgPath, "--witness", witness); code != 0 || !rep.OK() {
		t.Fatalf("verify --witness: exit %d %+v", code, rep.Problems)
	}

	// Every decision replays to the same explanation with the versions
	// it was decided with, though the config has changed since; today's
	// config (a dearer model) is shown beside it.
	for _, id := range decisions {
		out, code := replayCLI(t, cfgPath, id, "--with-current")
		if code != 0 || !out.Identical || out.Current == nil {
			t.Errorf("replay %s: exit %d %+v", id, code, out)
		}
	}
	text, err := exec.Command(harness.Binary(t), "replay", failoverID, "--config", cfgPath, "--with-current").Output()
	t.Logf("stellwerk replay %s --with-current:\n%s", failoverID, text)
	if err != nil || !strings.Contains(string(text), "identical: the same explanation, byte for byte") {
		t.Errorf("replay text: %v", err)
	}
	// What became of it is said beside the decision (the audit probe read
	// only the chosen model of a request another model served).
	if !regexp.MustCompile(`outcome     200, served by \S+ after 2 attempts`).Match(text) {
		t.Errorf("replay text names no outcome")
	}
	out, err := exec.Command(harness.Binary(t), "replay", "--config", cfgPath, "--from", "2026-01-01", "--to", "2100-01-01", "--json").Output()
	var im struct{ Decisions, Replayed, NotReplayable int }
	if err != nil || json.Unmarshal(out, &im) != nil || im.Decisions != len(decisions) || im.Replayed != len(decisions) {
		t.Errorf("replay over a period: %v %s", err, out)
	}

	// Impact analysis: a policy change that excludes primary-mini would
	// change exactly the decisions that chose it.
	chose := 0
	for _, v := range page.Records {
		var rec audit.Record
		mustJSON(t, v.Record, &rec)
		if rec.Chosen == "primary-mini" {
			chose++
		}
	}
	polDir := filepath.Join(s.Dir, "what-if-policy")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rule := "package stellwerk\n\nexcluded contains [c.id, \"what-if: primary-mini retired\"] if {\n\tsome c in input.candidates\n\tc.id == \"primary-mini\"\n}\n"
	if err := os.WriteFile(filepath.Join(polDir, "retire.rego"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	whatIf := *s.Config
	whatIf.Policy.Dir = polDir
	wb, err := yaml.Marshal(&whatIf)
	if err != nil {
		t.Fatal(err)
	}
	whatIfPath := filepath.Join(s.Dir, "what-if.yaml")
	if err := os.WriteFile(whatIfPath, wb, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(harness.Binary(t), "replay", "--config", whatIfPath, "--from", "2026-01-01", "--to", "2100-01-01").CombinedOutput()
	t.Logf("stellwerk replay --from --to with primary-mini retired:\n%s", out)
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d would be decided differently", chose)) || chose == 0 {
		t.Errorf("what-if: %v (%d decisions chose primary-mini)", err, chose)
	}

	// Change what the failover's record says was served, in the file.
	db, err := store.OpenSQLite(context.Background(), filepath.Join(s.Dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if n := audittest.EditBody(t, db, "claude-haiku", "eu-large", `decision_id = $1`, failoverID); n != 1 {
		t.Fatalf("tamper: %d records edited", n)
	}
	db.Close()
	rep, code = verifyCLI(t, cfgPath)
	if code != 1 || len(rep.Problems) != 1 || rep.Problems[0].Kind != "modified" {
		t.Fatalf("verify after tampering: exit %d %+v", code, rep.Problems)
	}

	// The shutdown checkpoint deleted: the chain looks like a crashed
	// writer's, its tail unsigned; the witness still knows it was signed.
	db, err = store.OpenSQLite(context.Background(), filepath.Join(s.Dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(context.Background(), `DELETE FROM audit_checkpoints WHERE reason = 'shutdown'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep, code = verifyCLI(t, cfgPath, "--witness", witness)
	missing := slices.ContainsFunc(rep.Problems, func(p audit.Problem) bool {
		return p.Kind == audit.ProblemDeleted && strings.Contains(p.Detail, "which the witness holds, is missing")
	})
	if code != 1 || !missing {
		t.Fatalf("verify --witness after the shutdown checkpoint went: exit %d %+v", code, rep.Problems)
	}
}

// auditPage is one page of GET /admin/audit.
func auditPage(t *testing.T, s *harness.Stack, query string) admin.AuditPage {
	t.Helper()
	resp, err := s.AdminGet("/admin/audit?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p admin.AuditPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/admin/audit: %d %v", resp.StatusCode, err)
	}
	return p
}

// replayed is what stellwerk replay --json prints.
type replayed struct {
	Identical     bool            `json:"identical"`
	NotReplayable string          `json:"not_replayable"`
	Recorded      json.RawMessage `json:"recorded"`
	Replayed      json.RawMessage `json:"replayed"`
	Current       json.RawMessage `json:"current"`
}

// replayCLI runs stellwerk replay --json on a stack's store.
func replayCLI(t *testing.T, cfgPath, id string, flags ...string) (replayed, int) {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), append([]string{"replay", id, "--config", cfgPath, "--json"}, flags...)...).Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var r replayed
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("replay output %q: %v", out, err)
	}
	return r, code
}

// verifyCLI runs stellwerk audit verify --json on a stack's store.
func verifyCLI(t *testing.T, cfgPath string, flags ...string) (*audit.Report, int) {
	t.Helper()
	out, err := exec.Command(harness.Binary(t), append([]string{"audit", "verify", "--config", cfgPath, "--json"}, flags...)...).Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("verify output %q: %v", out, err)
	}
	return &rep, code
}

// TestReplayRefusedBeforePolicy: a request refused before the policy ran
// (a route that does not exist) is on the record without a policy
// version, so its recorded decision cannot be replayed; replay says so in
// those words, and --with-current still decides it with today's policy
// and config beside the record, as the what-if over a period did when it
// offered the record as an example.
func TestReplayRefusedBeforePolicy(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, routeOptions())
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"route:nope","messages":[{"role":"user","content":"hi"}]}`, nil)
	id := resp.Header.Get(header.DecisionID)
	if resp.StatusCode != 404 || id == "" {
		t.Fatalf("route:nope: %d %s", resp.StatusCode, b)
	}
	for deadline := time.Now().Add(10 * time.Second); len(auditPage(t, s, "kind=decision&decision_id="+id).Records) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no record of %s", id)
		}
	}
	cfgPath := filepath.Join(s.Dir, "stellwerk.yaml")
	out, code := replayCLI(t, cfgPath, id, "--with-current")
	var cur struct{ Error string }
	if code != 1 || !strings.Contains(out.NotReplayable, "no policy version: the request was refused before the policy ran") ||
		json.Unmarshal(out.Current, &cur) != nil || cur.Error != "route_not_found" {
		t.Errorf("replay --with-current: exit %d, not replayable %q, today %s", code, out.NotReplayable, out.Current)
	}
	text, _ := exec.Command(harness.Binary(t), "replay", id, "--config", cfgPath, "--with-current").Output()
	t.Logf("stellwerk replay %s --with-current:\n%s", id, text)
	if !strings.Contains(string(text), "today       refused: route_not_found") {
		t.Errorf("the text has no line for today's decision")
	}
}

// TestAuditRedactsParameters: personal data and secrets in the request's
// user and metadata are redacted in the audit record's replay inputs, as
// in its content (found by a helper: an export held a metadata IBAN and a
// user AWS key verbatim); the decision still replays identically.
func TestAuditRedactsParameters(t *testing.T) {
	t.Parallel()
	s := threeRegions(t, nil)
	const iban, mail = "DE89370400440532013000", "anna.schmidt@example.de"
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","user":"`+mail+`","metadata":{"note":"pay `+iban+` today","plan":"gold"},`+
		`"messages":[{"role":"user","content":"Say hello."}]}`, nil)
	id := resp.Header.Get(header.DecisionID)
	if resp.StatusCode != 200 || id == "" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var page admin.AuditPage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page = auditPage(t, s, "kind=decision&decision_id="+id)
		if len(page.Records) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(page.Records) != 1 {
		t.Fatalf("%d records", len(page.Records))
	}
	rec := string(page.Records[0].Record)
	if strings.Contains(rec, iban) || strings.Contains(rec, mail) {
		t.Errorf("the record keeps a value: %s", rec)
	}
	if u := gjson.Get(rec, "replay.user").Str; u != "[EMAIL]" {
		t.Errorf("replay.user %q", u)
	}
	if n := gjson.Get(rec, "replay.metadata"); n.Get("note").Str != "pay [IBAN] today" || n.Get("plan").Str != "gold" {
		t.Errorf("replay.metadata %s", n.Raw)
	}
	s.Stop("stellwerk")
	if out, code := replayCLI(t, filepath.Join(s.Dir, "stellwerk.yaml"), id); code != 0 || !out.Identical {
		t.Errorf("replay: exit %d %+v", code, out)
	}
}

// TestLostSigningKeyRefusesStart: a state restored without its audit
// signing key does not start with a new key in silence — every old
// checkpoint would then fail verify as bad_signature (the operator
// probe). It names the key the log holds and what to do; the key restored,
// it starts, and the log verifies.
func TestLostSigningKeyRefusesStart(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	s.Stop("stellwerk")
	keyFile := filepath.Join(s.Dir, config.DefaultStateDir, audit.KeyFile)
	kept, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, harness.Binary(t), "serve", "--config", filepath.Join(s.Dir, "stellwerk.yaml")).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "state.dir has no "+audit.KeyFile) || !strings.Contains(string(out), "restore it") {
		t.Fatalf("serve without the signing key: %v (timed out: %v)\n%s", err, ctx.Err() != nil, out)
	}
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Fatalf("a key was generated all the same: %v", err)
	}
	if err := os.WriteFile(keyFile, kept, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	s.Stop("stellwerk")
	if out, err := exec.Command(harness.Binary(t), "audit", "verify", "--config", filepath.Join(s.Dir, "stellwerk.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("verify after the key came back: %v\n%s", err, out)
	}
}
