package stellwerk_test

import data.stellwerk

# budget_state(name, action, warn, exceeded) is one entry of input.budgets.
budget_state(name, action, warn, exceeded) := {
	"name": name, "scope": "team", "subject": "support/cx", "period": "day",
	"limit_eur": 10, "used_eur": 9.5, "reserved_eur": 1, "ratio": 1.05,
	"warn": warn, "exceeded": exceeded, "action": action,
}

priced(id, residency, input_price, output_price) := object.union(candidate(id, "p", residency, 2), {"price_eur": {"input_per_mtok": input_price, "output_per_mtok": output_price}})

# Three price levels; "mid" costs exactly the ceilings used below.
priced_candidates := [
	priced("big", "eu", 5, 15),
	priced("mid", "eu", 0.5, 1.5),
	priced("small", "eu", 0.1, 0.4),
	priced("big-us", "us", 5, 15),
]

exceeded_downgrade := {"budgets": [budget_state("team-day", "downgrade", true, true)], "candidates": priced_candidates}

with_ceiling(patch, price) := object.union(patch, {"workspace": {"objective": "accuracy", "downgrade_max_price": price}})

test_no_budgets_no_downgrade if {
	d := decide({"candidates": priced_candidates})
	d.downgrade == []
	d.exclude == {}
	d.objective == "balanced"
}

test_exceeded_block_budget_is_left_to_the_ledger if {
	d := decide(with_ceiling({"budgets": [budget_state("hard", "block", true, true)], "candidates": priced_candidates}, {"output_per_mtok": 1.5}))
	d.downgrade == []
	d.exclude == {}
	d.objective == "accuracy"
}

test_warning_does_not_downgrade_by_default if {
	d := decide({"budgets": [budget_state("team-day", "downgrade", true, false)], "candidates": priced_candidates})
	d.downgrade == []
	d.objective == "balanced"
}

test_exceeded_without_ceiling_optimises_cost if {
	d := decide(object.union(exceeded_downgrade, {
		"workspace": {"objective": "accuracy"},
		"request": {"policy": {"optimize": "latency"}},
	}))
	d.downgrade == ["team-day"]
	d.objective == "cost"
	d.exclude == {}
}

test_exceeded_with_output_ceiling_excludes_dearer_models if {
	d := decide(with_ceiling(exceeded_downgrade, {"input_per_mtok": 0, "output_per_mtok": 1.5}))
	d.downgrade == ["team-day"]
	d.objective == "accuracy"
	d.exclude == {
		"big": "budget: team-day exceeded; downgraded to models priced at most 1.5 EUR per million output tokens",
		"big-us": "budget: team-day exceeded; downgraded to models priced at most 1.5 EUR per million output tokens",
	}
}

test_exceeded_with_both_ceilings if {
	d := decide(with_ceiling(exceeded_downgrade, {"input_per_mtok": 0.2, "output_per_mtok": 20}))
	reason := "budget: team-day exceeded; downgraded to models priced at most 0.2 EUR per million input tokens and 20 EUR per million output tokens"
	d.exclude == {"big": reason, "mid": reason, "big-us": reason}
}

test_exceeded_with_input_ceiling if {
	d := decide(with_ceiling(exceeded_downgrade, {"input_per_mtok": 0.5}))
	reason := "budget: team-day exceeded; downgraded to models priced at most 0.5 EUR per million input tokens"
	d.exclude == {"big": reason, "big-us": reason}
}

test_downgrade_from_warn if {
	patch := with_ceiling(
		{"budgets": [budget_state("team-day", "downgrade", true, false)], "candidates": priced_candidates},
		{"output_per_mtok": 0.4},
	)
	d := decide(object.union(patch, {"workspace": {"downgrade_from": "warn"}}))
	d.downgrade == ["team-day"]
	reason := "budget: team-day past its warning threshold; downgraded to models priced at most 0.4 EUR per million output tokens"
	d.exclude == {"big": reason, "mid": reason, "big-us": reason}
}

test_several_budgets_named_sorted if {
	d := decide(with_ceiling(
		{
			"budgets": [
				budget_state("z-key", "downgrade", true, true),
				budget_state("hard", "block", true, true),
				budget_state("a-team", "downgrade", true, true),
				budget_state("calm", "downgrade", false, false),
			],
			"candidates": priced_candidates,
		},
		{"output_per_mtok": 1.5},
	))
	d.downgrade == ["a-team", "z-key"]
	d.exclude.big == "budget: a-team, z-key exceeded; downgraded to models priced at most 1.5 EUR per million output tokens"
}

test_residency_reason_beats_budget if {
	d := decide(object.union(with_ceiling(exceeded_downgrade, {"output_per_mtok": 1.5}), {"workspace": {"residency": "eu"}}))
	d.exclude["big-us"] == "residency: workspace support requires eu, model is us"
	startswith(d.exclude.big, "budget: team-day exceeded")
}

test_no_budgets_field if {
	d := stellwerk.decision with input as object.remove(exceeded_downgrade, ["budgets"])
	d.downgrade == []
}
