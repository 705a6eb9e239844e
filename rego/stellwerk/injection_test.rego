package stellwerk_test

injected := {"classification": {"injection": {"score": 0.934, "detected": true}}}

test_injection_default_deny if {
	d := decide(injected)
	d.deny == {"injection: prompt injection suspected (score 0.93)"}
	d.tags == {"injection_suspected": "true"}
	d.log_level == "warn"
}

test_injection_score_formatting if {
	decide({"classification": {"injection": {"score": 1}}}).deny == {"injection: prompt injection suspected (score 1.00)"}
	decide({"classification": {"injection": {"score": 0.5}}}).deny == {"injection: prompt injection suspected (score 0.50)"}
	decide({"classification": {"injection": {"score": 0.996}}}).deny == {"injection: prompt injection suspected (score 1.00)"}
}

test_injection_below_threshold if {
	d := decide({"classification": {"injection": {"score": 0.49}}})
	d.deny == set()
	d.tags == {}
	d.log_level == ""
}

test_injection_workspace_threshold if {
	decide(object.union(injected, {"workspace": {"injection_threshold": 0.95}})).deny == set()
	decide({"classification": {"injection": {"score": 0.3}}, "workspace": {"injection_threshold": 0.3}}).deny == {"injection: prompt injection suspected (score 0.30)"}
}

test_injection_unknown_mode_denies if {
	count(decide(object.union(injected, {"workspace": {"injection": "off"}})).deny) == 1
}

test_injection_restrict if {
	d := decide(object.union(injected, {"workspace": {"injection": "restrict"}}))
	d.deny == set()
	d.exclude == {
		"mistral-large": "injection: suspected prompt injection may only go to assurance tier >= 3",
		"gpt-4o": "injection: suspected prompt injection may only go to assurance tier >= 3",
		"gpt-mini": "injection: suspected prompt injection may only go to assurance tier >= 3",
		"mistral-small": "injection: suspected prompt injection may only go to assurance tier >= 3",
	}
	d.tags == {"injection_suspected": "true"}
	d.log_level == "warn"
}

test_injection_restrict_min_tier if {
	d := decide(object.union(injected, {"workspace": {"injection": "restrict", "injection_min_tier": 2}}))
	d.exclude == {
		"gpt-mini": "injection: suspected prompt injection may only go to assurance tier >= 2",
		"mistral-small": "injection: suspected prompt injection may only go to assurance tier >= 2",
	}
}

test_injection_flag if {
	d := decide(object.union(injected, {"workspace": {"injection": "flag"}}))
	d.deny == set()
	d.exclude == {}
	d.tags == {"injection_suspected": "true"}
	d.log_level == "warn"
}

test_injection_reason_wins_over_residency_and_risk if {
	d := decide(object.union(restricted, object.union(injected, {"workspace": {"injection": "restrict"}})))
	d.exclude["gpt-mini"] == "injection: suspected prompt injection may only go to assurance tier >= 3"
	d.exclude.claude == "residency: restricted data requires eu, model is global"
}

embedded := object.union(injected, {"request": {"api": "embeddings"}})

test_injection_in_embeddings_input_is_flagged if {
	d := decide(embedded)
	d.deny == set()
	d.tags == {"injection_suspected": "true"}
	d.log_level == "warn"
	r := decide(object.union(embedded, {"workspace": {"injection": "restrict"}}))
	r.exclude == {}
	r.deny == set()
}

test_injection_enforced_on_every_prompt_api if {
	every api in ["chat", "completions", "responses", "messages"] {
		decide(object.union(injected, {"request": {"api": api}})).deny == {"injection: prompt injection suspected (score 0.93)"}
	}
}
