# Fixtures shared by the library's tests.
package stellwerk_test

import data.stellwerk

candidate(id, provider, residency, tier) := {
	"id": id, "provider": provider, "provider_model": id, "region": "r",
	"residency": residency, "assurance_tier": tier,
	"price": {"input_per_mtok": 1, "output_per_mtok": 2, "currency": "EUR"},
	"price_eur": {"input_per_mtok": 1, "output_per_mtok": 2},
	"estimated_cost_eur": 0.001, "context_window": 128000, "max_output_tokens": 8192,
	"capabilities": {"tools": true, "vision": false, "json_mode": true, "streaming": true},
	"healthy": true, "latency_ms": 900, "quality": 0.8,
}

candidates := [
	candidate("mistral-large", "mistral", "eu", 2),
	candidate("gpt-4o", "openai", "us", 2),
	candidate("claude", "anthropic", "global", 3),
	candidate("llama-local", "ollama", "on_prem", 3),
	candidate("gpt-mini", "openai", "us", 1),
	candidate("mistral-small", "mistral", "eu", 1),
]

all_ids := {c.id | some c in candidates}

# base is a public, low-risk request in a workspace that sets nothing but its
# name, so every default is in force.
base := {
	"request": {"path": "/v1/chat/completions", "model": "auto", "policy": {}, "policy_fingerprint": ""},
	"principal": {"authenticated": true, "workspace": "support"},
	"workspace": {"name": "support", "team": null},
	"classification": {
		"sensitivity": "public", "sensitivity_rule": "default",
		"risk": "low", "risk_rule": "default",
		"pii_types": [], "pii_counts": {}, "secret_types": [], "secret_count": 0,
		"injection": {"score": 0.02, "detected": false},
		"scan": "complete", "scan_limit": "",
	},
	"budget": {"limited": false},
	"budgets": [],
	"candidates": candidates,
}

# decide(patch) is the decision for base merged (recursively) with patch.
# time.now_ns() is the input's time, as in serve: a patch that sets
# time.unix decides at that second, whenever the tests run.
decide(patch) := d if {
	merged := object.union(base, patch)
	ns := merged.time.unix * 1000000000
	d := stellwerk.decision with input as merged with time.now_ns as ns
} else := d if {
	d := stellwerk.decision with input as object.union(base, patch)
}

restricted := {"classification": {"sensitivity": "restricted", "sensitivity_rule": "iban", "risk": "high", "risk_rule": "restricted_data"}}

confidential := {"classification": {"sensitivity": "confidential"}}

test_base_decision_is_empty if {
	d := decide({})
	d == {
		"deny": set(),
		"exclude": {},
		"objective": "balanced",
		"quality_floor": 0,
		"max_cost_eur": null,
		"redact": [],
		"log_level": "",
		"tags": {},
		"residency": "",
		"downgrade": [],
		"malformed_excluded": set(),
	}
}
