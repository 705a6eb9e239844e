package rego

import (
	"context"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// benchCandidates is a 60-model catalog: five providers in every residency
// and assurance tier, as a large deployment would configure.
func benchCandidates() []any {
	providers := []struct{ name, residency string }{
		{"mistral", "eu"}, {"openai", "us"}, {"anthropic", "global"},
		{"azure-eu", "eu"}, {"ollama", "on_prem"}, {"bedrock", "us"},
	}
	out := make([]any, 0, 60)
	for i := range 60 {
		p := providers[i%len(providers)]
		out = append(out, map[string]any{
			"id": fmt.Sprintf("%s-model-%02d", p.name, i), "provider": p.name,
			"provider_model": fmt.Sprintf("m-%d", i), "region": "r-1", "residency": p.residency,
			"assurance_tier":     1 + i%3,
			"price":              map[string]any{"input_per_mtok": 2.0, "output_per_mtok": 6.0, "currency": "EUR"},
			"price_eur":          map[string]any{"input_per_mtok": 2.0, "output_per_mtok": 6.0},
			"estimated_cost_eur": 0.00562, "context_window": 128000, "max_output_tokens": 8192,
			"capabilities": map[string]any{"tools": true, "vision": false, "json_mode": true, "streaming": true},
			"healthy":      true, "latency_ms": 900, "quality": 0.81,
		})
	}
	return out
}

// benchInput is a complete input document; restricted selects an IBAN,
// high-risk request in a workspace with team and request lists, so that most
// models are excluded, or else a plain public one where few are.
func benchInput(restricted bool) map[string]any {
	cls := map[string]any{
		"task": "summarization", "task_confidence": 0.93, "complexity": "low", "language": "en",
		"pii_types": []any{}, "pii_counts": map[string]any{}, "secret_types": []any{}, "secret_count": 0,
		"injection":   map[string]any{"score": 0.02, "detected": false},
		"sensitivity": "public", "sensitivity_rule": "default", "risk": "low", "risk_rule": "default",
		"input_tokens": 412,
	}
	policy := map[string]any{}
	if restricted {
		cls["pii_types"] = []any{"iban"}
		cls["pii_counts"] = map[string]any{"iban": 1}
		cls["sensitivity"], cls["sensitivity_rule"] = "restricted", "iban"
		cls["risk"], cls["risk_rule"] = "high", "restricted_data"
		policy = map[string]any{"residency": "eu", "optimize": "cost", "max_cost": 0.05, "deny": []any{"provider:bedrock"}}
	}
	return map[string]any{
		"request": map[string]any{
			"path": "/v1/chat/completions", "model": "auto", "stream": false, "max_tokens": 800,
			"tools": false, "response_format": "", "metadata": map[string]any{"ticket": "SUP-1234"},
			"user": "end-user-42", "headers": map[string]any{"user-agent": "OpenAI/Python 3.54.0", "x-request-id": "9b0c"},
			"policy": policy, "policy_fingerprint": "5f1c0e9a3b7d2c41",
		},
		"principal": map[string]any{
			"authenticated": true, "key_id": "support-bot", "workspace": "support", "team": "cx",
			"user": "alice", "roles": []any{"developer"},
		},
		"workspace": map[string]any{
			"name": "support", "residency": "any", "sensitive_residency": "eu", "objective": "balanced",
			"quality_floor": 0.0, "max_cost_eur": 0, "secrets": "deny", "injection": "deny",
			"injection_threshold": 0.5, "risk_tiers": map[string]any{"low": 1, "medium": 1, "high": 2},
			"allow": []any{}, "deny": []any{}, "allow_loosening": false,
			"downgrade_from": "exceeded", "downgrade_max_price": map[string]any{"input_per_mtok": 0, "output_per_mtok": 0},
			"team": map[string]any{"name": "cx", "allow": []any{}, "deny": []any{"openai-model-01"}},
		},
		"classification": cls,
		"budget":         map[string]any{"limited": false},
		"budgets":        []any{},
		"time":           map[string]any{"unix": 1795000000, "rfc3339": "2026-11-21T12:00:00Z", "weekday": "Saturday", "hour": 12},
		"candidates":     benchCandidates(),
	}
}

// prepareLibrary prepares data.stellwerk.decision over the shipped modules,
// as the policy engine does once per policy version.
func prepareLibrary(tb testing.TB) rego.PreparedEvalQuery {
	tb.Helper()
	mods, err := Modules()
	if err != nil {
		tb.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query("data.stellwerk.decision")}
	for name, src := range mods {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			tb.Fatal(err)
		}
		opts = append(opts, rego.ParsedModule(m))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return pq
}

func BenchmarkDecision(b *testing.B) {
	pq := prepareLibrary(b)
	for name, restricted := range map[string]bool{"restricted": true, "plain": false} {
		in, err := ast.InterfaceToValue(benchInput(restricted))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				rs, err := pq.Eval(ctx, rego.EvalParsedInput(in))
				if err != nil || len(rs) != 1 {
					b.Fatal(err, len(rs))
				}
			}
		})
	}
}
