package stellwerk_test

import data.stellwerk

test_risk_low_default_tier_1_excludes_nothing if {
	decide({}).exclude == {}
}

test_risk_medium_default_tier_1 if {
	decide({"classification": {"risk": "medium"}}).exclude == {}
}

test_risk_high_default_tier_2 if {
	d := decide({"classification": {"risk": "high"}})
	d.exclude == {
		"gpt-mini": "risk: high-risk request needs assurance tier >= 2, model has 1",
		"mistral-small": "risk: high-risk request needs assurance tier >= 2, model has 1",
	}
}

test_risk_workspace_tiers if {
	d := decide({"classification": {"risk": "medium"}, "workspace": {"risk_tiers": {"low": 1, "medium": 3, "high": 3}}})
	d.exclude == {
		"gpt-mini": "risk: medium-risk request needs assurance tier >= 3, model has 1",
		"mistral-small": "risk: medium-risk request needs assurance tier >= 3, model has 1",
		"mistral-large": "risk: medium-risk request needs assurance tier >= 3, model has 2",
		"gpt-4o": "risk: medium-risk request needs assurance tier >= 3, model has 2",
	}
}

test_risk_workspace_tiers_missing_level_uses_default if {
	d := decide({"classification": {"risk": "high"}, "workspace": {"risk_tiers": {"low": 1}}})
	count(d.exclude) == 2
}

test_risk_workspace_can_relax_high if {
	decide({"classification": {"risk": "high"}, "workspace": {"risk_tiers": {"high": 1}}}).exclude == {}
}

test_risk_max_risk_denies_riskier_request if {
	d := decide({"classification": {"risk": "high", "risk_rule": "restricted_data"}, "request": {"policy": {"max_risk": "medium"}}})
	d.deny == {"risk: request policy max_risk is medium but the request is classified high (rule restricted_data)"}
}

test_risk_max_risk_low_medium if {
	d := decide({"classification": {"risk": "medium", "risk_rule": "code"}, "request": {"policy": {"max_risk": "low"}}})
	d.deny == {"risk: request policy max_risk is low but the request is classified medium (rule code)"}
}

test_risk_max_risk_equal_or_higher_allows if {
	decide({"classification": {"risk": "medium"}, "request": {"policy": {"max_risk": "medium"}}}).deny == set()
	decide({"classification": {"risk": "low"}, "request": {"policy": {"max_risk": "high"}}}).deny == set()
}

test_risk_missing_or_null_risk_is_low if {
	no_risk := object.union(object.remove(base, ["classification"]), {
		"classification": object.remove(base.classification, ["risk", "risk_rule"]),
		"request": {"policy": {"max_risk": "low"}},
	})
	d := stellwerk.decision with input as no_risk
	d.deny == set()
	d.exclude == {}
	decide({"classification": {"risk": null}, "request": {"policy": {"max_risk": "low"}}}).deny == set()
}

test_risk_unknown_level_counts_as_high if {
	d := decide({"classification": {"risk": "extreme", "risk_rule": "r"}, "request": {"policy": {"max_risk": "medium"}}})
	d.deny == {"risk: request policy max_risk is medium but the request is classified high (rule r)"}
	count(d.exclude) == 2
}

test_risk_missing_rule_name if {
	d := decide({"classification": {"risk": "high", "risk_rule": ""}, "request": {"policy": {"max_risk": "low"}}})
	d.deny == {"risk: request policy max_risk is low but the request is classified high (rule unknown)"}
}
