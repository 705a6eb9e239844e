package stellwerk_test

import data.stellwerk

test_decision_has_exactly_the_contract_keys if {
	d := decide(restricted)
	object.keys(d) == {"deny", "exclude", "objective", "quality_floor", "max_cost_eur", "redact", "log_level", "tags", "residency", "downgrade", "malformed_excluded"}
	is_set(d.deny)
	is_object(d.exclude)
	is_array(d.redact)
	is_string(d.log_level)
	is_object(d.tags)
	is_string(d.residency)
	is_array(d.downgrade)
	d.malformed_excluded == set()
}

test_decision_with_an_empty_input if {
	d := stellwerk.decision with input as {}
	d.deny == set()
	d.exclude == {}
	d.objective == "balanced"
	d.max_cost_eur == null
}

test_decision_without_candidates if {
	d := stellwerk.decision with input as object.union(object.remove(base, ["candidates"]), restricted)
	d.exclude == {}
}

test_decision_several_deny_reasons if {
	d := decide(object.union(
		{"classification": {"injection": {"score": 0.9}}},
		{"classification": {"secret_types": ["aws_access_key"], "secret_count": 1}},
	))
	d.deny == {
		"injection: prompt injection suspected (score 0.90)",
		"secrets: the prompt contains credentials (aws_access_key); remove them and retry",
	}
}

test_decision_residency_beats_risk if {
	d := decide(restricted)
	d.exclude["gpt-mini"] == "residency: restricted data requires eu, model is us"
	d.exclude["mistral-small"] == "risk: high-risk request needs assurance tier >= 2, model has 1"
}

test_log_level_extension if {
	decide({}).log_level == "debug" with data.stellwerk.log_levels as {"debug"}
	decide({}).log_level == "info" with data.stellwerk.log_levels as {"debug", "info"}
	decide({}).log_level == ""
}
