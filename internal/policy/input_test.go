package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// contractInput is a complete input: a team over its downgrade budget and
// near its block budget, in a workspace with a downgrade price ceiling.
func contractInput() *Input {
	ws := defaultWorkspace()
	ws.DowngradeMaxPrice = config.DowngradePrice{OutputPerMTok: 1.5}
	in := &Input{
		Request: RequestFacts{Path: "/v1/chat/completions", API: "chat", Model: "auto", MaxTokens: 800, Metadata: map[string]string{"ticket": "SUP-1234"},
			Headers: map[string]string{"user-agent": "OpenAI/Python 1.54.0"}, Policy: reqpolicy.Policy{Set: true, Optimize: "cost", Fingerprint: "5f1c0e9a3b7d2c41"}},
		Principal: auth.Principal{Authenticated: true, KeyID: "support-bot", Workspace: "default", Team: "cx", Roles: []string{"developer"}},
		Workspace: ws,
		Team:      &config.Team{Name: "cx", Allow: []string{}, Deny: []string{}},
		Classification: &classify.Result{Task: "summarization", TaskConfidence: 0.93, Complexity: "low", Language: "en",
			Sensitivity: "public", SensitivityRule: "default", Risk: "low", RiskRule: "default", PIICounts: map[string]int{}, InputTokens: 412,
			Scan: classify.ScanComplete, Terms: []classify.TermCount{{Name: "project_zephyr", Count: 2}}},
		Budgets: []ledger.BudgetState{
			{Name: "default-month", Scope: ledger.ScopeWorkspace, Subject: "default", Period: ledger.PeriodMonth, Limit: ledger.FromEUR(500),
				Used: ledger.FromEUR(412.5), Reserved: ledger.FromEUR(1.25), Ratio: 0.8275, Warn: true},
			{Name: "cx-day", Scope: ledger.ScopeTeam, Subject: "default/cx", Period: ledger.PeriodDay, Limit: ledger.FromEUR(10),
				Used: ledger.FromEUR(10.5), Ratio: 1.05, Warn: true, Exceeded: true, Downgrade: true},
		},
		Now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
	}
	for _, m := range contractCatalog().Models() {
		in.Candidates = append(in.Candidates, Candidate{Model: m, EstimatedCostEUR: 0.001, Quality: 0.8, Healthy: true, LatencyMS: 900})
	}
	return in
}

// contractCatalog has a model priced in EUR and one in USD (converted at
// 0.92: price_eur is rounded to a billionth, 2.3 and not 2.3000000000000003).
func contractCatalog() *catalog.Catalog {
	c := &config.Config{
		Routing:   config.Routing{DefaultModel: "mistral-small"},
		Currency:  config.Currency{USDToEUR: 0.92},
		Providers: []config.Provider{{Name: "mistral", BaseURL: "http://127.0.0.1:1/v1", Residency: "eu"}, {Name: "openai", BaseURL: "http://127.0.0.1:2/v1", Residency: "us"}},
		Models: []config.Model{
			{ID: "mistral-small", Provider: "mistral", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.2, OutputPerMTok: 0.6, Currency: "EUR"}},
			{ID: "gpt-4o", Provider: "openai", ContextWindow: 128000, Price: config.Price{InputPerMTok: 2.5, OutputPerMTok: 10}},
		},
	}
	c.ApplyDefaults()
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		panic(err)
	}
	return cat
}

func inputJSON(t *testing.T, in *Input) map[string]any {
	t.Helper()
	v, release := in.Value(NewCatalogTerms(contractCatalog()))
	defer release()
	j, err := ast.JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestInputContract: the input document as built, in full
// (testdata/input.golden.json; go test -run TestInputContract -update
// rewrites it, and the diff is the contract change to review).
func TestInputContract(t *testing.T) {
	doc := inputJSON(t, contractInput())
	got, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "input.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the input document changed (go test ./internal/policy -run TestInputContract -update, then review the diff):\n%s", got)
	}
}

// TestInputBudgets: without budgets the input says so and shares its
// budget parts; with them, budget.limited is set.
func TestInputBudgets(t *testing.T) {
	in := contractInput()
	doc := inputJSON(t, in)
	if doc["budget"].(map[string]any)["limited"] != true || len(doc["budgets"].([]any)) != 2 {
		t.Errorf("with budgets: budget %v, budgets %v", doc["budget"], doc["budgets"])
	}
	in.Budgets = nil
	doc = inputJSON(t, in)
	if doc["budget"].(map[string]any)["limited"] != false || len(doc["budgets"].([]any)) != 0 {
		t.Errorf("without budgets: budget %v, budgets %v", doc["budget"], doc["budgets"])
	}
	var parts inputParts
	if i := slices.Index(partNames[:], "budgets"); parts.get(in, i) != noBudgets {
		t.Error("an input without budgets builds its own empty array")
	}
}

// TestInputDocumented: the example input of docs/policy.md has the fields
// stellwerk builds, at the top level and in the workspace, a budget and a
// candidate.
func TestInputDocumented(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	md, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "docs", "policy.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## The input document.*?```json\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("docs/policy.md has no example input")
	}
	var documented map[string]any
	if err := json.Unmarshal(m[1], &documented); err != nil {
		t.Fatalf("docs/policy.md example input: %v", err)
	}
	built := inputJSON(t, contractInput())
	for _, path := range [][]string{{}, {"workspace"}, {"budgets", "0"}, {"candidates", "0"}, {"candidates", "0", "price_eur"}} {
		d, b := dig(documented, path), dig(built, path)
		if d == nil || b == nil {
			t.Errorf("%v: documented %v, built %v", path, d != nil, b != nil)
			continue
		}
		if dk, bk := slices.Sorted(maps.Keys(d)), slices.Sorted(maps.Keys(b)); !slices.Equal(dk, bk) {
			t.Errorf("%v: documented fields %v, built %v", path, dk, bk)
		}
	}
}

func dig(v any, path []string) map[string]any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			if len(x) == 0 {
				return nil
			}
			v = x[0]
		}
	}
	o, _ := v.(map[string]any)
	return o
}
