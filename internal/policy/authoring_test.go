package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
)

// policyDir writes modules (file name → source) into a new directory.
func policyDir(t *testing.T, modules map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range modules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sampleRequest is SampleInput's request by user at now, with metadata.
func sampleRequest(user string, metadata map[string]string, now time.Time) (*Input, *CatalogTerms) {
	cat := sampleCatalog()
	in := &Input{
		Request:        RequestFacts{Path: "/v1/chat/completions", API: "chat", Model: "auto", User: user, Metadata: metadata, Headers: map[string]string{}},
		Principal:      auth.Principal{Workspace: auth.DefaultWorkspace, Roles: []string{}},
		Workspace:      defaultWorkspace(),
		Classification: &classify.Result{Task: "chat", Complexity: "low", Language: "en", Sensitivity: "public", Risk: "low", PIICounts: map[string]int{}, Scan: classify.ScanComplete},
		Now:            now,
	}
	for _, m := range cat.Models() {
		in.Candidates = append(in.Candidates, Candidate{Model: m, Quality: 0.5, Healthy: true, LatencyMS: m.LatencyMS})
	}
	return in, NewCatalogTerms(cat)
}

// A built-in that fails in a rule fails the decision (a 500, never a silent
// allow): the rule is not quietly undefined.
func TestBuiltinErrorFailsClosed(t *testing.T) {
	ctx := context.Background()
	dir := policyDir(t, map[string]string{"cap.rego": `package stellwerk

deny contains "over the cost centre's cap" if {
	cap := to_number(input.request.metadata.max_eur)
	some c in input.candidates
	c.estimated_cost_eur > cap
}
`})
	e, err := Load(ctx, Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	in, ct := sampleRequest("", map[string]string{"max_eur": "-1"}, time.Unix(0, 0))
	if d, err := e.Decide(ctx, in, ct); err != nil || len(d.Deny) != 1 {
		t.Fatalf("a number: %+v %v, want the deny", d.Deny, err)
	}
	in, ct = sampleRequest("", map[string]string{"max_eur": "abc"}, time.Unix(0, 0))
	if d, err := e.Decide(ctx, in, ct); err == nil || !strings.Contains(err.Error(), "to_number") {
		t.Fatalf("not a number: %+v %v, want an evaluation error", d, err)
	}
}

// A policy may not call the network or read the process's environment:
// a compile error naming the built-in, in serve, config check and policy
// test alike.
func TestUnsafeBuiltinsRefused(t *testing.T) {
	for name, call := range map[string]string{
		"http.send":          `http.send({"method": "GET", "url": "http://127.0.0.1:1/"}).status_code == 200`,
		"net.lookup_ip_addr": `count(net.lookup_ip_addr("example.com")) > 0`,
		"opa.runtime":        `opa.runtime().env.OPENAI_API_KEY != ""`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"net.rego": "package stellwerk\n\ndeny contains \"x\" if " + call + "\n"})
			_, err := Load(context.Background(), Source{Library: true, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), name+": a policy may not call it") || !strings.Contains(err.Error(), "net.rego:3") {
				t.Fatalf("%v, want a compile error naming %s at net.rego:3", err, name)
			}
			if _, err := RunTests(context.Background(), Source{Library: true, Dir: dir}); err == nil {
				t.Fatal("policy test ran it")
			}
		})
	}
}

// time.now_ns() reads the request's time, so a replay decides as the
// request was decided.
func TestNowIsTheRequestsTime(t *testing.T) {
	ctx := context.Background()
	freeze := time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC)
	dir := policyDir(t, map[string]string{"freeze.rego": `package stellwerk

deny contains "change freeze" if {
	time.now_ns() >= ` + strconv.FormatInt(freeze.UnixNano(), 10) + `
}
`})
	e, err := Load(ctx, Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		deny int
	}{{freeze.Add(-time.Hour), 0}, {freeze.Add(time.Hour), 1}, {freeze.Add(-time.Minute), 0}} {
		in, ct := sampleRequest("", map[string]string{}, tc.at)
		if d, err := e.Decide(ctx, in, ct); err != nil || len(d.Deny) != tc.deny {
			t.Errorf("at %s: deny %v (%v), want %d reasons", tc.at, d.Deny, err, tc.deny)
		}
	}
}

// TestNowInTestsIsTheInputsTime: under policy test the library's decide()
// decides at the input's time, as serve does; time.now_ns() read the wall
// clock, so a test of a time rule passed or failed by the hour (the
// policy-author probe).
func TestNowInTestsIsTheInputsTime(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"now.rego": "package stellwerk\n\ntags[\"now\"] := sprintf(\"%d\", [time.now_ns()])\n",
		"now_test.rego": `package stellwerk_test

test_now_is_the_input_time if {
	d := decide({"time": {"unix": 1795000000, "rfc3339": "2026-11-18T07:06:40Z", "weekday": "Wednesday", "hour": 7}})
	d.tags.now == "1795000000000000000"
}

test_now_without_a_time_is_the_clock if {
	to_number(decide({}).tags.now) > 1795000000000000000
}
`})
	results, err := RunTests(context.Background(), Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range results {
		if strings.HasPrefix(r.File, "dir/") {
			n++
			if !r.Passed {
				t.Errorf("%s: %s", r.Name, r.Error)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d tests of the dir ran, want 2", n)
	}
}

// An organisation-wide rule (no global models, for everyone) changes
// decisions the library's tests pin; those tests still check the library
// alone, the dir's tests check everything loaded, and may use the
// library's fixtures.
func TestOrganisationRuleKeepsLibraryTests(t *testing.T) {
	ctx := context.Background()
	dir := policyDir(t, map[string]string{
		"noglobal.rego": `package stellwerk

excluded contains [c.id, "platform: no global models"] if {
	some c in input.candidates
	c.residency == "global"
}
`,
		"noglobal_test.rego": `package stellwerk_test

import data.stellwerk

test_global_excluded if {
	d := stellwerk.decision with input as base
	d.exclude.claude == "platform: no global models"
}

test_eu_kept if {
	d := stellwerk.decision with input as base
	not d.exclude["mistral-large"]
}
`,
	})
	results, err := RunTests(ctx, Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var mine, lib int
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s (%s): %s", r.Name, r.File, r.Error)
		}
		if strings.HasPrefix(r.File, "dir/") {
			mine++
		} else {
			lib++
		}
	}
	if mine != 2 || lib < 50 {
		t.Errorf("%d tests of the dir, %d of the library; want 2 and all of the library's", mine, lib)
	}
	if _, err := NewManager(ctx, Source{Library: true, Dir: dir}, zap.NewNop()); err != nil {
		t.Fatalf("serve refuses it: %v", err)
	}
	// The dir's own test still gates: a wrong expectation is refused.
	dir = policyDir(t, map[string]string{
		"noglobal_test.rego": `package stellwerk_test

import data.stellwerk

test_wrong if {
	d := stellwerk.decision with input as base
	d.exclude.claude == "platform: no global models"
}
`})
	if _, err := NewManager(ctx, Source{Library: true, Dir: dir}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "test_wrong") {
		t.Fatalf("%v, want the dir's failing test", err)
	}
}

// A rule with the name of one of the library's own (an internal "_" rule,
// or decision) would become part of it: refused with file:line, in serve
// and in policy test. A helper's _allow_loosening, true for a ticket
// prefix the client chose, loosened a workspace's EU residency.
func TestLibraryRuleNameRefused(t *testing.T) {
	dir := policyDir(t, map[string]string{"ticket.rego": "package stellwerk\n\n_allow_loosening if startswith(input.request.metadata.ticket, \"SANDBOX-\")\n"})
	_, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "ticket.rego:3") || !strings.Contains(err.Error(), "_allow_loosening is the library's own rule") {
		t.Fatalf("%v", err)
	}
	if _, err := RunTests(context.Background(), Source{Library: true, Dir: dir}); err == nil || !strings.Contains(err.Error(), "_allow_loosening is the library's own rule") {
		t.Fatalf("policy test: %v", err)
	}
	// The extension points are the author's to extend.
	dir = policyDir(t, map[string]string{"ok.rego": "package stellwerk\n\ndeny contains \"no\" if input.request.metadata.ticket == \"X\"\n\n_mine if true\n"})
	if _, err := Load(context.Background(), Source{Library: true, Dir: dir}); err != nil {
		t.Fatalf("an extension point and a helper of the author's own: %v", err)
	}
}

// policy test refuses what serve would: a decision of the wrong shape (a
// computed value; a constant one is refused at compile,
// TestConstantOfTheWrongTypeRefused).
func TestPolicyTestChecksTheShape(t *testing.T) {
	dir := policyDir(t, map[string]string{"shape.rego": "package stellwerk\n\ntags[\"priority\"] := count(input.candidates) if input.principal.workspace == \"default\"\n"})
	if _, err := RunTests(context.Background(), Source{Library: true, Dir: dir}); err == nil || !strings.Contains(err.Error(), "must be a string") {
		t.Fatalf("%v, want the shape error", err)
	}
}

// A rule named after a decision field the library computes would have no
// effect: refused with file:line and where the value is set instead.
func TestComputedFieldRuleRefused(t *testing.T) {
	dir := policyDir(t, map[string]string{"cheap.rego": "package stellwerk\n\nobjective := \"cost\" if input.classification.complexity == \"low\"\n\nmax_cost_eur := 0.01\n"})
	_, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "cheap.rego:3") || !strings.Contains(err.Error(), "objective has no effect") ||
		!strings.Contains(err.Error(), "cheap.rego:5") || !strings.Contains(err.Error(), "request's max_cost") {
		t.Fatalf("%v", err)
	}
	// Without the library the names are the module's own.
	dir = policyDir(t, map[string]string{"own.rego": `package stellwerk

objective := "cost"

decision := {"deny": [], "exclude": {}, "objective": objective, "quality_floor": 0, "max_cost_eur": null, "redact": [], "log_level": "", "tags": {}}
`})
	if _, err := Load(context.Background(), Source{Dir: dir}); err != nil {
		t.Fatalf("without the library: %v", err)
	}
}

// An OPA bundle's data file in the policy dir is not read: said so, where
// the author looks (policy test, config check, serve's log).
func TestDataFilesWarned(t *testing.T) {
	dir := policyDir(t, map[string]string{"block.rego": "package stellwerk\n\ndeny contains \"blocked\" if input.request.user in data.acme.blocked\n"})
	if err := os.Mkdir(filepath.Join(dir, "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acme", "data.json"), []byte(`{"blocked":["mallory"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w, err := Unreachable(Source{Library: true, Dir: dir})
	if err != nil || len(w) != 1 || len(e.Warnings) != 1 || !strings.Contains(w[0], "dir/acme/data.json: data files are not read") {
		t.Fatalf("warnings %q %q (%v)", e.Warnings, w, err)
	}
}

// TestShapeErrorNamesTheAuthorsRule: an extension point of the wrong shape
// fails to compile in the library's code that reads it; the error names
// the author's rule, its line and the shape it must hold (it named only
// library/stellwerk/decision.rego, a helper's finding).
func TestShapeErrorNamesTheAuthorsRule(t *testing.T) {
	for name, rule := range map[string]string{
		"bare ids":        `excluded contains "gpt-4o-mini" if true`,
		"reason not text": "excluded contains [c.id, 7] if {\n\tsome c in input.candidates\n}",
	} {
		t.Run(name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"team.rego": "package stellwerk\n\n" + rule + "\n"})
			_, err := Load(context.Background(), Source{Library: true, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), "excluded at dir/team.rego:3 must hold [model id, reason] pairs of two strings") {
				t.Fatalf("%v", err)
			}
		})
	}
}

// TestExcludedFailsClosed (a helper's findings): an entry of excluded that
// is not a pair fails the decision (policy_error) even beside a well-typed
// rule, which stops OPA's type check from refusing it at load; and an
// exclusion with an empty reason still excludes. Both had left the model
// eligible.
func TestExcludedFailsClosed(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"good.rego": "package stellwerk\n\nexcluded contains [\"sample-eu\", \"finance: no eu\"] if input.workspace.name == \"finance\"\n",
		"bad.rego":  "package stellwerk\n\nexcluded contains \"sample-us\" if input.request.metadata.ticket == \"S-9\"\n",
		"empty.rego": "package stellwerk\n\nexcluded contains [c.id, object.get(input.request.metadata, \"why\", \"\")] if {\n" +
			"\tinput.request.metadata.ticket == \"E-1\"\n\tsome c in input.candidates\n}\n" +
			"deny contains object.get(input.request.metadata, \"why\", \"\") if input.request.metadata.ticket == \"D-1\"\n",
	})
	e, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatalf("nothing fires on the sample input, so it loads: %v", err)
	}
	eval := func(ticket string) (Decision, error) {
		v, release := sampleInput(map[string]string{"ticket": ticket})
		defer release()
		return e.Eval(context.Background(), v)
	}
	var shape *ShapeError
	if _, err := eval("S-9"); !errors.As(err, &shape) || !strings.Contains(err.Error(), `these are not: ["sample-us"]`) {
		t.Errorf("a bare id beside a well-typed rule: %v", err)
	}
	d, err := eval("E-1")
	if err != nil || d.Exclude["sample-us"] != NoReason || d.Exclude["sample-eu"] != NoReason {
		t.Errorf("empty reasons: %v %v", d.Exclude, err)
	}
	if d, err := eval("T-1"); err != nil || len(d.Exclude) != 0 {
		t.Errorf("neither fires: %v %v", d.Exclude, err)
	}
	// A denial with an empty reason says so (the client read "denied by
	// policy: ", the policy-author probe).
	if d, err := eval("D-1"); err != nil || len(d.Deny) != 1 || d.Deny[0] != NoDenyReason {
		t.Errorf("an empty deny reason: %q %v", d.Deny, err)
	}
}

// TestUnknownInputPathsWarned (a helper's finding): a misspelled input
// path loads and reads as undefined, so its deny never fires, or a negated
// one refuses everything. Each is warned with its line and the path meant;
// paths the input has (open maps such as metadata included) are not.
func TestUnknownInputPathsWarned(t *testing.T) {
	dir := policyDir(t, map[string]string{"team.rego": `package stellwerk

deny contains "no ticket" if not input.request.metdata.ticket

deny contains "iban" if "iban" in input.classification.pii_type

deny contains "ok" if {
	input.request.metadata.anything == "x"
	input.request.headers["x-client-app"] == "y"
	input.workspace.team.name == "cx"
	input.request.route.targets[0] == "m"
	input.request.policy.min_quality > 0.5
	input.classification.pii_counts.iban > 0
	some c in input.candidates
	c.residency == "us"
	input.candidates[0].price_eur.input_per_mtok > 1
	input.budgets[_].exceeded
}

deny contains "price" if input.candidates[0].price_eur.input > 1
`})
	e, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(e.Warnings, "\n")
	for _, want := range []string{
		"dir/team.rego:3: input.request.metdata is not in the input (docs/policy.md): Rego reads it as undefined, so a rule on it never applies (and a negated one always does); did you mean input.request.metadata?",
		"dir/team.rego:5: input.classification.pii_type is not in the input",
		"did you mean input.classification.pii_types?",
		"dir/team.rego:20: input.candidates[_].price_eur.input is not in the input",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "is not in the input"); n != 3 {
		t.Errorf("%d paths warned, want 3:\n%s", n, got)
	}
}

// TestUnknownLogLevelWarned: log_levels contains a level the decision does
// not know is warned about at load (it had no effect, silently: the
// policy-author probe); known levels are not.
func TestUnknownLogLevelWarned(t *testing.T) {
	dir := policyDir(t, map[string]string{"ops.rego": "package stellwerk\n\nlog_levels contains \"warning\" if input.workspace.name == \"ops\"\n\nlog_levels contains \"warn\" if input.workspace.name == \"fin\"\n"})
	e, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(e.Warnings, "\n")
	if !strings.Contains(got, `dir/ops.rego:3: log_levels contains "warning", which is none of debug, info, warn: it has no effect`) || strings.Contains(got, `"warn",`) {
		t.Errorf("warnings:\n%s", got)
	}
}

// TestFailureSummaryQuotesNoValue: the latest evaluation failure, which
// /policy shows to every admin role, names the error's kind and place but
// not its message, which quotes the client's values (the verification
// helper saw an email and an IBAN there).
func TestFailureSummaryQuotesNoValue(t *testing.T) {
	dir := policyDir(t, map[string]string{"team.rego": "package stellwerk\n\ndeny contains \"big\" if to_number(input.request.metadata.ticket) > 9000\n"})
	e, err := Load(context.Background(), Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	in, ct := sampleFacts(map[string]string{"ticket": "anna.schmidt@example.com DE89370400440532013000"})
	if _, err := e.Decide(context.Background(), in, ct); err == nil || !strings.Contains(err.Error(), "anna.schmidt") {
		t.Fatalf("the evaluation's own error (for the log): %v", err)
	}
	n, last := e.Failures()
	if n != 1 || last == nil || strings.Contains(last.Error, "anna") || strings.Contains(last.Error, "DE89") ||
		!strings.Contains(last.Error, "eval_builtin_error at dir/team.rego:3") {
		t.Errorf("%d failures, the latest %+v", n, last)
	}
}

// TestConstantOfTheWrongTypeRefused: an extension point's rule that gives a
// constant the library cannot read — deny contains 42, a tag's value 5 —
// is refused at load with its file and line; it passed every check and
// failed each request it fired on (the policy-author probe). Computed
// values are the shape check's, at decision time.
func TestConstantOfTheWrongTypeRefused(t *testing.T) {
	for name, c := range map[string]struct{ rule, want string }{
		"deny":       {`deny contains 42 if input.workspace.name == "finance"`, "dir/team.rego:3: rego_compile_error: deny must hold strings (the reasons); this rule gives 42"},
		"log_levels": {`log_levels contains true if input.workspace.name == "finance"`, "log_levels must hold"},
		"tags":       {`tags["cost_center"] := 5 if input.workspace.name == "finance"`, "tags must hold string keys and values (tags[key] := value); this rule gives 5"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"team.rego": "package stellwerk\n\n" + c.rule + "\n"})
			if _, err := Load(context.Background(), Source{Library: true, Dir: dir}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want %q", err, c.want)
			}
		})
	}
	dir := policyDir(t, map[string]string{"team.rego": "package stellwerk\n\ndeny contains msg if {\n\tinput.workspace.name == \"finance\"\n\tmsg := sprintf(\"no %s\", [input.workspace.name])\n}\n\ntags[\"team\"] := input.workspace.name\n"})
	if _, err := Load(context.Background(), Source{Library: true, Dir: dir}); err != nil {
		t.Fatalf("computed values refused: %v", err)
	}
}
