package stellwerk_test

import data.stellwerk

ops_candidates := [
	object.union(candidate("fast", "mistral", "eu", 2), {"healthy": true, "latency_ms": 300}),
	object.union(candidate("sick", "mistral", "eu", 2), {"healthy": false, "latency_ms": 300}),
	object.union(candidate("slow-and-sick", "openai", "us", 1), {"healthy": false, "latency_ms": 9000}),
	object.union(candidate("slow", "ollama", "on_prem", 3), {"healthy": true, "latency_ms": 9000}),
]

ops := object.union(object.remove(base, ["candidates"]), {
	"workspace": {"name": "ops"},
	"request": {"metadata": {"cost_center": "cc-17"}},
	"classification": {"risk": "high"},
	"candidates": ops_candidates,
})

test_custom_excluded_is_merged if {
	d := stellwerk.decision with input as ops
	d.exclude == {
		"sick": "ops: provider unhealthy",
		"slow": "ops: latency above 2000 ms",
		# the library's risk rule outranks the custom reasons
		"slow-and-sick": "risk: high-risk request needs assurance tier >= 2, model has 1",
	}
	d.tags == {"cost_center": "cc-17"}
	d.log_level == "info"
}

test_custom_reasons_are_joined if {
	d := stellwerk.decision with input as object.union(ops, {"classification": {"risk": "low"}})
	d.exclude["slow-and-sick"] == "ops: latency above 2000 ms; ops: provider unhealthy"
}

test_custom_deny if {
	d := stellwerk.decision with input as object.union(base, {"workspace": {"name": "finance"}, "time": {"weekday": "Sunday"}})
	d.deny == {"finance: no chat requests on weekends"}
}

test_custom_warn_outranks_info if {
	d := stellwerk.decision with input as object.union(ops, {"classification": {"injection": {"score": 0.9}}, "workspace": {"injection": "flag"}})
	d.log_level == "warn"
	d.tags == {"cost_center": "cc-17", "injection_suspected": "true"}
}

test_custom_deny_injection_in_embeddings if {
	q := object.union(base, {"workspace": {"name": "search"}, "request": {"api": "embeddings"}, "classification": {"injection": {"score": 0.8}}})
	d := stellwerk.decision with input as q
	d.deny == {"injection: suspected text is not embedded"}
	e := stellwerk.decision with input as object.union(q, {"workspace": {"name": "other"}})
	e.deny == set()
}
