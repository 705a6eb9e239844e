package policy

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/ledger"
)

// TestMemoKeysOnWhatTheLibraryReads: the shipped library reads no value
// that changes with every request, so its decisions are memoised, and the
// key holds no per-request candidate value.
func TestMemoKeysOnWhatTheLibraryReads(t *testing.T) {
	e, err := Load(context.Background(), Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.memo == nil {
		t.Fatal("the shipped library is not memoised")
	}
	if e.memo.cands != 0 {
		t.Errorf("the key holds per-request candidate fields: %b", e.memo.cands)
	}
	for _, unread := range []string{"time", "principal", "budget"} {
		if e.memo.root.get(unread) != nil {
			t.Errorf("input.%s is read", unread)
		}
	}
	// Of the budgets, only names and flags: spend and ratio change with
	// every request and would make every request an evaluation.
	b := e.memo.root.get("budgets")
	if b == nil || b.all || b.any == nil || b.any.all {
		t.Fatalf("input.budgets read as %+v", b)
	}
	if got := b.any.names; !slices.Equal(got, []string{"action", "exceeded", "name", "warn"}) {
		t.Errorf("input.budgets[_] fields read: %v", got)
	}
}

// TestDecideSeesBudgets: the memo keys on the budgets' state, so the
// request after a downgrade budget is exceeded is decided anew, and the
// requests before it (spend growing) share one decision.
func TestDecideSeesBudgets(t *testing.T) {
	ctx := context.Background()
	e, err := Load(ctx, Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	c, cat := production(t)
	ct := NewCatalogTerms(cat)
	in := shippedRequest(c, false)
	in.Workspace = c.Workspaces[0] // default: objective balanced
	in.Candidates = newLiveState(cat, "openai").candidates("summarization", 500, 512)
	var objectives []string
	for i, used := range []float64{2, 4, 6, 8, 10, 12} {
		in.Budgets = []ledger.BudgetState{{Name: "team-day", Scope: ledger.ScopeTeam, Subject: "support/cx", Period: ledger.PeriodDay,
			Limit: ledger.FromEUR(10), Used: ledger.FromEUR(used), Ratio: used / 10, Warn: used >= 8, Exceeded: used >= 10, Downgrade: true}}
		before := len(e.memo.cur)
		d, err := e.Decide(ctx, in, ct)
		if err != nil {
			t.Fatal(err)
		}
		if evaluated := len(e.memo.cur) > before; evaluated != (i == 0 || i == 3 || i == 4) {
			t.Errorf("used %v EUR: evaluated %v", used, evaluated)
		}
		objectives = append(objectives, d.Objective)
		if want := used >= 10; (len(d.Downgrade) == 1) != want {
			t.Errorf("used %v EUR: downgrade %v", used, d.Downgrade)
		}
	}
	if want := []string{"balanced", "balanced", "balanced", "balanced", "cost", "cost"}; !slices.Equal(objectives, want) {
		t.Errorf("objectives %v, want %v", objectives, want)
	}
}

// TestDecideMatchesEval: whatever the memo answers is what an evaluation
// answers, for a policy that also reads candidates' health, the time and
// the request's metadata, over requests and live state that change.
func TestDecideMatchesEval(t *testing.T) {
	dir := t.TempDir()
	mod := `package stellwerk

excluded contains [input.candidates[i].id, "ops: provider unhealthy"] if {
	input.workspace.name == "support"
	input.candidates[i].healthy == false
}

deny contains "weekend" if {
	input.request.metadata.team == "finance"
	input.time.weekday == "Sunday"
}
`
	if err := os.WriteFile(filepath.Join(dir, "ops.rego"), []byte(mod), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := NewManager(ctx, Source{Library: true, Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	e := m.Current()
	if e.memo == nil || e.memo.cands != readsHealthy {
		t.Fatalf("memo %+v: want health in the key", e.memo)
	}
	c, cat := production(t)
	ct := NewCatalogTerms(cat)
	st := newLiveState(cat, "openai")
	sunday := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	hits := 0
	for i := range 200 {
		in := shippedRequest(c, i%2 == 1)
		in.Request.Metadata = map[string]string{"team": []string{"finance", "support"}[i%3%2]}
		in.Now = sunday.Add(time.Duration(i%5) * 11 * time.Hour)
		in.Classification.Injection.Score = float64(i%4) / 4
		in.Classification.InputTokens = 100 + i
		in.Budgets = []ledger.BudgetState{{Name: "ws-day", Scope: ledger.ScopeWorkspace, Subject: "support", Period: ledger.PeriodDay,
			Limit: ledger.FromEUR(10), Used: ledger.MicroEUR(i * 60_000), Ratio: float64(i) * 0.006, Warn: i >= 133, Exceeded: i >= 167, Downgrade: true}}
		if i == 100 {
			st.health.Failed(health.Target{Provider: "anthropic"}, "503", time.Hour)
		}
		st.step()
		in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, 512)
		before := len(e.memo.cur) + len(e.memo.prev)
		got, err := e.Decide(ctx, in, ct)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.memo.cur)+len(e.memo.prev) == before {
			hits++
		}
		v, release := in.Value(ct)
		want, err := e.Eval(ctx, v)
		release()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d: memo %+v\nevaluation %+v", i, got, want)
		}
	}
	if hits < 100 {
		t.Errorf("%d of 200 requests answered from the memo", hits)
	}
}

// TestWorkspaceTermMatches: an input with its workspace part built once
// (NewWorkspaceTerm, as the router keeps it per config) is the same input
// and has the same memo key as one that builds it, for every workspace and
// team of the shipped config, under two policies that read different parts
// of it (the library, and a policy that reads only its name); the part's key is recomputed when the policy changes.
func TestWorkspaceTermMatches(t *testing.T) {
	if partNames[workspacePart] != "workspace" {
		t.Fatalf("workspacePart is %q", partNames[workspacePart])
	}
	dir := t.TempDir()
	mod := `package stellwerk

# A whole policy of its own that reads only the workspace's name.
decision := {
	"deny": [],
	"exclude": {},
	"objective": "cost",
	"quality_floor": floor,
	"max_cost_eur": 0,
	"redact": [],
	"log_level": "info",
	"tags": {},
	"residency": "",
	"downgrade": [],
}

floor := 0.9 if input.workspace.name == "legal"

else := 0.5
`
	if err := os.WriteFile(filepath.Join(dir, "ws.rego"), []byte(mod), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lib, err := Load(ctx, Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	nameOnly, err := Load(ctx, Source{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if lib.memo == nil || nameOnly.memo == nil || len(nameOnly.memo.root.get("workspace").names) != 1 {
		t.Fatal("both policies must be memoised, the second reading only the workspace's name")
	}
	c, cat := production(t)
	ct := NewCatalogTerms(cat)
	checked := 0
	for _, w := range c.Workspaces {
		teams := []*config.Team{nil}
		for i := range w.Teams {
			teams = append(teams, &w.Teams[i])
		}
		for _, team := range teams {
			wt := NewWorkspaceTerm(w, team)
			for _, e := range []*Engine{nameOnly, lib, nameOnly} {
				plain := shippedRequest(c, false)
				plain.Workspace, plain.Team = w, team
				plain.Candidates = newLiveState(cat, "openai").candidates("summarization", 500, 512)
				kept := *plain
				kept.WorkspaceTerm = wt
				var p1, p2 inputParts
				if k1, k2 := e.memo.key(nil, plain, ct, &p1, false), e.memo.key(nil, &kept, ct, &p2, false); string(k1) != string(k2) {
					t.Errorf("%s/%v: memo keys differ", w.Name, team)
				}
				v1, r1 := plain.Value(ct)
				v2, r2 := kept.Value(ct)
				if v1.Compare(v2) != 0 {
					t.Errorf("%s/%v: inputs differ", w.Name, team)
				}
				r1()
				r2()
				d1, err1 := e.Decide(ctx, plain, ct)
				d2, err2 := e.Decide(ctx, &kept, ct)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(d1, d2) {
					t.Errorf("%s/%v: decisions %+v %v, %+v %v", w.Name, team, d1, err1, d2, err2)
				}
				checked++
			}
		}
	}
	if checked < 9 {
		t.Errorf("only %d workspace and team combinations checked", checked)
	}
}

// TestMemoKeyByField: a key that builds only the members the policy reads
// of the request and its classification is the key of the whole parts,
// under the library and under a policy that reads other members (headers,
// the route, PII counts, terms), for varied classifications, with and
// without a route, and without a classification.
func TestMemoKeyByField(t *testing.T) {
	if partNames[requestPart] != "request" || partNames[classificationPart] != "classification" {
		t.Fatalf("part indexes: %v", partNames)
	}
	dir := t.TempDir()
	mod := `package stellwerk

deny contains "team" if input.request.headers["x-team"] == "blocked"

deny contains "route" if input.request.route.name == "closed"

deny contains "pii" if input.classification.pii_counts[_] > 5

deny contains "term" if input.classification.terms.project_x.count > 0

deny contains "fields" if {
	input.request.path == "/v1/x"
	input.request.model == "m"
	input.request.response_format == "json_object"
	input.request.user == "u"
	input.request.stream
	input.request.tools
}
`
	if err := os.WriteFile(filepath.Join(dir, "more.rego"), []byte(mod), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lib, err := Load(ctx, Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	more, err := Load(ctx, Source{Library: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if more.memo == nil || more.memo.parts[requestPart].get("headers") == nil || more.memo.parts[classificationPart].get("pii_counts") == nil {
		t.Fatal("the second policy must be memoised and read headers and PII counts")
	}
	c, cat := production(t)
	ct := NewCatalogTerms(cat)
	results := append(corpus(t)[:200], nil)
	for _, e := range []*Engine{lib, more} {
		for i, r := range results {
			in := shippedRequest(c, i%2 == 1)
			in.Classification = r
			if i%5 == 0 {
				in.Request.Path, in.Request.Model, in.Request.ResponseFormat, in.Request.User = "/v1/x", "m\"é", "json_object", "u"
				in.Request.Stream, in.Request.Tools = i%2 == 0, i%3 == 0
			}
			if i%3 == 0 {
				in.Request.Headers = map[string]string{"x-team": []string{"blocked", "open"}[i%2]}
				in.Request.Route = &RouteFacts{Name: []string{"closed", "open"}[i%2], Version: 3, Path: []string{"a"}, Targets: []string{"gpt-4o"}}
			}
			var lazy inputParts
			got := e.memo.key(nil, in, ct, &lazy, false)
			if lazy[requestPart] != nil || lazy[classificationPart] != nil {
				t.Fatal("the key built a whole part")
			}
			var whole inputParts
			whole.get(in, requestPart)
			whole.get(in, classificationPart)
			if want := e.memo.key(nil, in, ct, &whole, false); !slices.Equal(got, want) {
				t.Fatalf("input %d: key by field %q\nwhole parts %q", i, got, want)
			}
		}
	}
}

// TestClassificationFieldBytes: every member of input.classification the
// key writes without building its term writes the bytes the term's
// encoding does, through every shape of path (read whole, by a variable,
// by names, a leaf), for results with and without findings, unusual
// numbers and strings.
func TestClassificationFieldBytes(t *testing.T) {
	named := func(names ...string) *paths {
		p := &paths{}
		for _, n := range names {
			p.child(n)
		}
		p.finish()
		return p
	}
	shapes := map[string]*paths{
		"whole": {all: true}, "leaf": named(), "any": {any: &paths{all: true}},
		"score": named("score"), "detected": named("detected"), "both": named("score", "detected", "unknown"),
		"kinds": named("file", "image", "unknown"), "kind any": {any: &paths{}},
	}
	results := []*classify.Result{nil, unclassified,
		{Task: "code", TaskConfidence: 0.8125, Complexity: "high", Language: "de", Sensitivity: "confidential", SensitivityRule: "r",
			Risk: "high", RiskRule: "injection ≥ 0.5", Scan: classify.ScanComplete, InputTokens: 1234567,
			Injection: classify.Injection{Score: 0.456, Detected: true}},
		{Task: `"quoted"\n`, TaskConfidence: 1e21, InputTokens: -1, Injection: classify.Injection{Score: 1e-7}, ScanLimit: "64KB"},
		{TaskConfidence: math.NaN(), Injection: classify.Injection{Score: math.Inf(1)}},
		{TaskConfidence: math.Copysign(0, -1), Secrets: []classify.Finding{{Type: "aws"}, {Type: "aws"}, {Type: "github"}},
			PIICounts: map[string]int{"email": 2, "iban": 1}},
		{Unread: map[string]int{"file": 2, "image": 1}},
	}
	direct := 0
	for _, name := range classificationKeys {
		for shape, p := range shapes {
			for i, c := range results {
				got, ok := appendClassificationField([]byte("prefix"), p, c, name)
				if !ok {
					if string(got) != "prefix" {
						t.Fatalf("%s/%s/%d: declined but wrote %q", name, shape, i, got)
					}
					continue
				}
				direct++
				want := encode(append([]byte("prefix"), '+'), p, classificationField(c, name).Value)
				if !slices.Equal(got, want) {
					t.Errorf("%s through %s, result %d:\n got %q\nwant %q", name, shape, i, got, want)
				}
			}
		}
	}
	if direct < 300 {
		t.Errorf("only %d members written directly", direct)
	}
}
