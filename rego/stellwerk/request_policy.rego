package stellwerk

# _objective: cost while a downgrade budget is in force and the workspace
# sets no downgrade price ceiling (budget.rego), else the request's
# optimize, else the objective of the request's route (its first auto
# target's, docs/routes.md), else the workspace's objective, else balanced.
_objective := "cost" if {
	_downgrade
	not _downgrade_ceiling
} else := o if {
	o := input.request.policy.optimize
	o != ""
} else := o if {
	o := input.request.route.objective
	o != ""
} else := o if {
	o := input.workspace.objective
	o != ""
} else := "balanced"

_ws_quality_floor := q if q := input.workspace.quality_floor

else := 0

# _quality_floor: a request can only raise the workspace's floor, unless the
# workspace allows loosening, when the request's value replaces it.
_quality_floor := q if {
	q := input.request.policy.min_quality
	_allow_loosening
} else := max([_ws_quality_floor, input.request.policy.min_quality]) if {
	input.request.policy.min_quality
} else := _ws_quality_floor

# _max_cost_eur: the lower of the positive ceilings of the workspace
# (max_cost_eur; 0 or missing is none) and the request (max_cost); with
# allow_loosening the request's replaces the workspace's; null when neither
# sets one.
_max_cost_eur := c if {
	c := input.request.policy.max_cost
	c > 0
	_allow_loosening
} else := min([w, c]) if {
	w := input.workspace.max_cost_eur
	w > 0
	c := input.request.policy.max_cost
	c > 0
} else := w if {
	w := input.workspace.max_cost_eur
	w > 0
} else := c if {
	c := input.request.policy.max_cost
	c > 0
} else := null
