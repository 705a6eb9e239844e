package stellwerk

# Downgrade budgets. A budget with action downgrade never refuses a request:
# while one that applies is in force, the request is restricted to cheaper
# models instead. In force: once the budget is exceeded, or, when the
# workspace sets downgrade_from: warn, from its warn_at share.
#
# Cheaper: with the workspace's downgrade_max_price (EUR per million input
# and/or output tokens), every model priced above it is excluded, naming the
# budget, and the objective stays the workspace's; without one, the
# objective becomes cost (request_policy.rego), so the cheapest model that
# meets the quality floor and the request's needs is chosen.
#
# Only the budgets' names and flags are read, never used_eur, reserved_eur
# or ratio: those change with every request, and reading them would put
# them in the decision memo's key (docs/policy.md, Performance).

_downgrade_from_warn if input.workspace.downgrade_from == "warn"

# _downgrading is the set of the names of the downgrade budgets in force.
_downgrading contains input.budgets[i].name if {
	input.budgets[i].action == "downgrade"
	input.budgets[i].exceeded == true
}

_downgrading contains input.budgets[i].name if {
	_downgrade_from_warn
	input.budgets[i].action == "downgrade"
	input.budgets[i].warn == true
}

_downgrade if count(_downgrading) > 0

# _downgrade_budgets is the decision's downgrade key: the budgets in force,
# sorted; the explanation names them.
_downgrade_budgets := sort(_downgrading)

# The workspace's price ceiling while a downgrade is in force; a side that
# is 0 or missing has none.
_downgrade_max_in := p if {
	p := input.workspace.downgrade_max_price.input_per_mtok
	p > 0
}

_downgrade_max_out := p if {
	p := input.workspace.downgrade_max_price.output_per_mtok
	p > 0
}

_downgrade_ceiling if _downgrade_max_in

_downgrade_ceiling if _downgrade_max_out

_downgrade_state := "exceeded" if {
	input.budgets[i].action == "downgrade"
	input.budgets[i].exceeded == true
} else := "past its warning threshold"

_downgrade_limit := sprintf("%v EUR per million input tokens and %v EUR per million output tokens", [_downgrade_max_in, _downgrade_max_out]) if {
	_downgrade_max_in
	_downgrade_max_out
} else := sprintf("%v EUR per million input tokens", [_downgrade_max_in]) if {
	_downgrade_max_in
} else := sprintf("%v EUR per million output tokens", [_downgrade_max_out])

# _downgrade_reason is formatted once per request, not once per model.
_downgrade_reason := sprintf("budget: %s %s; downgraded to models priced at most %s", [
	concat(", ", _downgrade_budgets),
	_downgrade_state,
	_downgrade_limit,
])

# Models priced above the ceiling (in EUR: price_eur), on either side.
_too_dear contains input.candidates[i].id if {
	_downgrade
	p := _downgrade_max_in
	input.candidates[i].price_eur.input_per_mtok > p
}

_too_dear contains input.candidates[i].id if {
	_downgrade
	p := _downgrade_max_out
	input.candidates[i].price_eur.output_per_mtok > p
}

# Guarded: a request without a downgrade in force builds no comprehension.
_budget_exclude := {id: _downgrade_reason | some id in _too_dear} if _downgrade

else := {}
