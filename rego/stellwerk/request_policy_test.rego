package stellwerk_test

test_objective_default if {
	decide({}).objective == "balanced"
}

test_objective_workspace if {
	decide({"workspace": {"objective": "latency"}}).objective == "latency"
}

test_objective_request_wins if {
	decide({"workspace": {"objective": "latency"}, "request": {"policy": {"optimize": "cost"}}}).objective == "cost"
}

test_objective_route_over_workspace if {
	decide({"workspace": {"objective": "latency"}, "request": {"route": {"name": "support", "objective": "accuracy"}}}).objective == "accuracy"
	decide({"workspace": {"objective": "latency"}, "request": {"route": {"name": "support", "objective": ""}}}).objective == "latency"
}

test_objective_request_over_route if {
	decide({"request": {"policy": {"optimize": "cost"}, "route": {"name": "support", "objective": "accuracy"}}}).objective == "cost"
}

test_quality_floor_default if {
	decide({}).quality_floor == 0
}

test_quality_floor_workspace if {
	decide({"workspace": {"quality_floor": 0.6}}).quality_floor == 0.6
}

test_quality_floor_request_raises if {
	decide({"workspace": {"quality_floor": 0.6}, "request": {"policy": {"min_quality": 0.8}}}).quality_floor == 0.8
	decide({"request": {"policy": {"min_quality": 0.7}}}).quality_floor == 0.7
}

test_quality_floor_request_cannot_lower if {
	decide({"workspace": {"quality_floor": 0.6}, "request": {"policy": {"min_quality": 0.2}}}).quality_floor == 0.6
}

test_quality_floor_loosening_replaces if {
	decide({"workspace": {"quality_floor": 0.6, "allow_loosening": true}, "request": {"policy": {"min_quality": 0.2}}}).quality_floor == 0.2
	decide({"workspace": {"quality_floor": 0.6, "allow_loosening": true}}).quality_floor == 0.6
}

test_max_cost_none if {
	decide({}).max_cost_eur == null
	decide({"workspace": {"max_cost_eur": 0}}).max_cost_eur == null
}

test_max_cost_workspace if {
	decide({"workspace": {"max_cost_eur": 0.5}}).max_cost_eur == 0.5
}

test_max_cost_request if {
	decide({"request": {"policy": {"max_cost": 0.05}}}).max_cost_eur == 0.05
	decide({"workspace": {"max_cost_eur": 0}, "request": {"policy": {"max_cost": 0.05}}}).max_cost_eur == 0.05
}

test_max_cost_smaller_wins if {
	decide({"workspace": {"max_cost_eur": 0.5}, "request": {"policy": {"max_cost": 0.05}}}).max_cost_eur == 0.05
	decide({"workspace": {"max_cost_eur": 0.5}, "request": {"policy": {"max_cost": 5}}}).max_cost_eur == 0.5
}

test_max_cost_loosening_replaces if {
	decide({"workspace": {"max_cost_eur": 0.5, "allow_loosening": true}, "request": {"policy": {"max_cost": 5}}}).max_cost_eur == 5
	decide({"workspace": {"max_cost_eur": 0.5, "allow_loosening": true}}).max_cost_eur == 0.5
}
