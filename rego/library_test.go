package rego

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestRegoTests runs every test_ rule of the *_test.rego files against the
// library, as `opa test rego/stellwerk` does.
func TestRegoTests(t *testing.T) {
	lib, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	tests, err := TestModules()
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) == 0 {
		t.Fatal("no *_test.rego files embedded")
	}
	parsed := map[string]*ast.Module{}
	for name, src := range mergeMaps(lib, tests) {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		parsed[name] = m
	}
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetModules(parsed).
		RaiseBuiltinErrors(true).
		RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b *tester.Result) int {
		return strings.Compare(a.Location.File+a.Name, b.Location.File+b.Name)
	})
	passed := 0
	for _, r := range results {
		switch {
		case r.Error != nil:
			t.Errorf("%s %s: error: %v", r.Location.File, r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s %s: FAIL (%s)", r.Location.File, r.Name, r.FailedAt)
		case r.Skip:
			t.Logf("%s %s: SKIP", r.Location.File, r.Name)
		default:
			passed++
			t.Logf("%s %s: PASS (%s)", r.Location.File, r.Name, r.Duration)
		}
	}
	if passed == 0 {
		t.Error("no Rego test passed")
	}
	t.Logf("%d of %d Rego tests passed", passed, len(results))
}

// TestRegoFormatted keeps every module as `opa fmt` writes it.
func TestRegoFormatted(t *testing.T) {
	lib, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	tests, err := TestModules()
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range mergeMaps(lib, tests) {
		out, err := format.SourceWithOpts(name, []byte(src), format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(out) != src {
			t.Errorf("%s is not formatted (opa fmt -w rego/stellwerk)", name)
		}
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func TestModulesSplit(t *testing.T) {
	lib, err := Modules()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"decision", "residency", "risk", "secrets", "injection", "access", "request_policy", "budget"} {
		if _, ok := lib["stellwerk/"+want+".rego"]; !ok {
			t.Errorf("Modules() lacks stellwerk/%s.rego", want)
		}
	}
	for name := range lib {
		if strings.HasSuffix(name, "_test.rego") {
			t.Errorf("Modules() returned test file %s", name)
		}
	}
	tests, err := TestModules()
	if err != nil {
		t.Fatal(err)
	}
	for name := range tests {
		if !strings.HasSuffix(name, "_test.rego") {
			t.Errorf("TestModules() returned %s", name)
		}
	}
}

// decide evaluates the shipped library (without the test modules, so
// without the example custom rules) for one input.
func decide(t *testing.T, pq rego.PreparedEvalQuery, input map[string]any) map[string]any {
	t.Helper()
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(v))
	if err != nil {
		t.Fatalf("eval: %v", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		t.Fatalf("data.stellwerk.decision is undefined or ambiguous: %v", rs)
	}
	d, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		t.Fatalf("decision is %T, not an object", rs[0].Expressions[0].Value)
	}
	checkShape(t, d)
	return d
}

// checkShape asserts the decision document of docs/policy.md.
func checkShape(t *testing.T, d map[string]any) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(d))
	want := []string{"deny", "downgrade", "exclude", "log_level", "malformed_excluded", "max_cost_eur", "objective", "quality_floor", "redact", "residency", "tags"}
	if !slices.Equal(keys, want) {
		t.Fatalf("decision keys %v, want %v", keys, want)
	}
	strs := func(key string) {
		arr, ok := d[key].([]any)
		if !ok {
			t.Errorf("%s is %T, want an array", key, d[key])
		}
		for _, x := range arr {
			if _, ok := x.(string); !ok {
				t.Errorf("%s has %v (%T), want strings", key, x, x)
			}
		}
	}
	strs("deny")
	strs("redact")
	strs("downgrade")
	for _, key := range []string{"exclude", "tags"} {
		obj, ok := d[key].(map[string]any)
		if !ok {
			t.Errorf("%s is %T, want an object", key, d[key])
		}
		for k, v := range obj {
			if _, ok := v.(string); !ok {
				t.Errorf("%s[%q] is %T, want a string", key, k, v)
			}
		}
	}
	if o, _ := d["objective"].(string); !slices.Contains([]string{"cost", "latency", "accuracy", "balanced"}, o) {
		t.Errorf("objective %v", d["objective"])
	}
	if l, _ := d["log_level"].(string); !slices.Contains([]string{"", "debug", "info", "warn"}, l) {
		t.Errorf("log_level %v", d["log_level"])
	}
	if _, ok := d["quality_floor"].(interface{ String() string }); !ok { // json.Number
		t.Errorf("quality_floor is %T, want a number", d["quality_floor"])
	}
	if m := d["max_cost_eur"]; m != nil {
		if _, ok := m.(interface{ String() string }); !ok {
			t.Errorf("max_cost_eur is %T, want a number or null", m)
		}
	}
}

// minimalInput is a request whose workspace object sets nothing but its
// name: every default of the library applies.
func minimalInput(workspace, policy, classification map[string]any) map[string]any {
	ws := map[string]any{"name": "support"}
	maps.Copy(ws, workspace)
	cls := map[string]any{"sensitivity": "public", "risk": "low"}
	maps.Copy(cls, classification)
	if policy == nil {
		policy = map[string]any{}
	}
	return map[string]any{
		"request":        map[string]any{"model": "auto", "policy": policy},
		"workspace":      ws,
		"classification": cls,
		"candidates": []any{
			map[string]any{"id": "mistral-large", "provider": "mistral", "residency": "eu", "assurance_tier": 2},
			map[string]any{"id": "gpt-4o", "provider": "openai", "residency": "us", "assurance_tier": 2},
			map[string]any{"id": "claude", "provider": "anthropic", "residency": "global", "assurance_tier": 3},
			map[string]any{"id": "llama", "provider": "ollama", "residency": "on_prem", "assurance_tier": 3},
			map[string]any{"id": "gpt-mini", "provider": "openai", "residency": "us", "assurance_tier": 1},
		},
	}
}

func TestDecision(t *testing.T) {
	pq := prepareLibrary(t)
	tests := map[string]struct {
		input       map[string]any
		deny        []string
		exclude     map[string]any
		objective   string
		maxCost     any
		logLevel    string
		checkExtras func(t *testing.T, d map[string]any)
	}{
		"complete restricted IBAN request": {
			input:     benchInputSmall(),
			deny:      []string{},
			objective: "cost",
			maxCost:   "0.05",
			exclude: map[string]any{
				"gpt-4o":   "residency: restricted data requires eu, model is us",
				"claude":   "residency: restricted data requires eu, model is global",
				"gpt-mini": "residency: restricted data requires eu, model is us",
			},
		},
		"secrets are denied by default": {
			input:     minimalInput(nil, nil, map[string]any{"secret_count": 2, "secret_types": []any{"github_token", "aws_access_key"}}),
			deny:      []string{"secrets: the prompt contains credentials (aws_access_key, github_token); remove them and retry"},
			exclude:   map[string]any{},
			objective: "balanced",
		},
		"request residency any does not loosen workspace eu": {
			input:     minimalInput(map[string]any{"residency": "eu"}, map[string]any{"residency": "any"}, nil),
			deny:      []string{},
			objective: "balanced",
			exclude: map[string]any{
				"gpt-4o":   "residency: workspace support requires eu, model is us",
				"claude":   "residency: workspace support requires eu, model is global",
				"gpt-mini": "residency: workspace support requires eu, model is us",
			},
		},
		"request residency any loosens workspace eu with allow_loosening": {
			input:     minimalInput(map[string]any{"residency": "eu", "allow_loosening": true}, map[string]any{"residency": "any"}, nil),
			deny:      []string{},
			objective: "balanced",
			exclude:   map[string]any{},
		},
		"workspace without optional fields, high risk, injection": {
			input:     minimalInput(nil, nil, map[string]any{"risk": "high", "injection": map[string]any{"score": 0.5}}),
			deny:      []string{"injection: prompt injection suspected (score 0.50)"},
			objective: "balanced",
			logLevel:  "warn",
			exclude:   map[string]any{"gpt-mini": "risk: high-risk request needs assurance tier >= 2, model has 1"},
			checkExtras: func(t *testing.T, d map[string]any) {
				if d["tags"].(map[string]any)["injection_suspected"] != "true" {
					t.Errorf("tags %v", d["tags"])
				}
			},
		},
		"exceeded downgrade budget with a price ceiling": {
			input:     downgradeInput(map[string]any{"output_per_mtok": 1.5}),
			deny:      []string{},
			objective: "balanced",
			exclude: map[string]any{
				"mistral-large": "budget: team-day exceeded; downgraded to models priced at most 1.5 EUR per million output tokens",
				"gpt-4o":        "budget: team-day exceeded; downgraded to models priced at most 1.5 EUR per million output tokens",
				"claude":        "budget: team-day exceeded; downgraded to models priced at most 1.5 EUR per million output tokens",
			},
			checkExtras: func(t *testing.T, d map[string]any) {
				if !slices.Equal(d["downgrade"].([]any), []any{"team-day"}) {
					t.Errorf("downgrade %v", d["downgrade"])
				}
			},
		},
		"exceeded downgrade budget without a ceiling": {
			input:     downgradeInput(nil),
			deny:      []string{},
			objective: "cost",
			exclude:   map[string]any{},
		},
		"no workspace, classification or candidates at all": {
			input:     map[string]any{"request": map[string]any{"policy": map[string]any{}}},
			deny:      []string{},
			objective: "balanced",
			exclude:   map[string]any{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := decide(t, pq, tc.input)
			deny := []string{}
			for _, x := range d["deny"].([]any) {
				deny = append(deny, x.(string))
			}
			if !slices.Equal(deny, tc.deny) {
				t.Errorf("deny = %q, want %q", deny, tc.deny)
			}
			if !maps.Equal(d["exclude"].(map[string]any), tc.exclude) {
				t.Errorf("exclude = %v, want %v", d["exclude"], tc.exclude)
			}
			if d["objective"] != tc.objective {
				t.Errorf("objective = %v, want %v", d["objective"], tc.objective)
			}
			if got := d["max_cost_eur"]; (got == nil) != (tc.maxCost == nil) || (got != nil && got.(interface{ String() string }).String() != tc.maxCost) {
				t.Errorf("max_cost_eur = %v, want %v", got, tc.maxCost)
			}
			if d["log_level"] != tc.logLevel {
				t.Errorf("log_level = %q, want %q", d["log_level"], tc.logLevel)
			}
			// The residency field names the requirement exactly when it
			// excluded a model.
			wantRes := ""
			for _, r := range tc.exclude {
				if rest, ok := strings.CutPrefix(r.(string), "residency: "); ok {
					wantRes = strings.Fields(rest[strings.Index(rest, "requires ")+len("requires "):])[0]
					wantRes = strings.TrimSuffix(wantRes, ",")
				}
			}
			if d["residency"] != wantRes {
				t.Errorf("residency = %q, want %q", d["residency"], wantRes)
			}
			if tc.checkExtras != nil {
				tc.checkExtras(t, d)
			}
		})
	}
}

// downgradeInput is a request of a team over its downgrade budget, in a
// workspace with the given downgrade_max_price (nil: none); the candidates
// have EUR prices.
func downgradeInput(ceiling map[string]any) map[string]any {
	ws := map[string]any{}
	if ceiling != nil {
		ws["downgrade_max_price"] = ceiling
	}
	in := minimalInput(ws, nil, nil)
	prices := map[string][2]float64{"mistral-large": {2, 6}, "gpt-4o": {2.5, 10}, "claude": {3, 15}, "llama": {0, 0}, "gpt-mini": {0.15, 0.6}}
	for _, c := range in["candidates"].([]any) {
		c := c.(map[string]any)
		p := prices[c["id"].(string)]
		c["price_eur"] = map[string]any{"input_per_mtok": p[0], "output_per_mtok": p[1]}
	}
	in["budgets"] = []any{map[string]any{
		"name": "team-day", "scope": "team", "subject": "support/cx", "period": "day", "limit_eur": 10.0,
		"used_eur": 10.25, "reserved_eur": 0.0, "ratio": 1.025, "warn": true, "exceeded": true, "action": "downgrade",
	}}
	return in
}

// benchInputSmall is the complete example input of docs/policy.md (an IBAN
// in a support ticket: restricted, high risk) with five candidates.
func benchInputSmall() map[string]any {
	in := benchInput(true)
	in["request"].(map[string]any)["policy"] = map[string]any{"residency": "eu", "optimize": "cost", "max_cost": 0.05}
	in["workspace"].(map[string]any)["team"] = map[string]any{"name": "cx", "allow": []any{}, "deny": []any{}}
	in["candidates"] = minimalInput(nil, nil, nil)["candidates"]
	return in
}
