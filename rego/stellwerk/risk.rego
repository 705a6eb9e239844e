package stellwerk

_risk_rank := {"low": 0, "medium": 1, "high": 2}

_default_risk_tiers := {"low": 1, "medium": 1, "high": 2}

# _risk is the classified risk: high when the scan was truncated or the
# level is not a known one (fail closed), low when the classifier gave none
# (missing, null or "").
_risk := "high" if {
	_scan_truncated
} else := r if {
	r := input.classification.risk
	_risk_rank[r]
} else := "low" if {
	not input.classification.risk
} else := "low" if {
	input.classification.risk in {null, ""}
} else := "high"

# _min_tier is the lowest assurance tier a model needs for this risk: the
# workspace's risk_tiers, else the default mapping.
_min_tier := t if t := input.workspace.risk_tiers[_risk]

else := t if t := _default_risk_tiers[_risk]

else := t if t := input.workspace.risk_tiers.high

else := 2

# Models are matched by equality on each tier below the minimum; the
# catalog's tiers are 1, 2 and 3 (config validation).
_risk_exclude := {id: reason |
	t := _min_tier
	t > 1
	some tier in numbers.range(1, ceil(t) - 1)
	reason := sprintf("risk: %s-risk request needs assurance tier >= %v, model has %v", [_risk, t, tier])
	some i
	input.candidates[i].assurance_tier == tier
	id := input.candidates[i].id
}

deny contains msg if {
	max_risk := input.request.policy.max_risk
	_risk_rank[_risk] > _risk_rank[max_risk]
	msg := sprintf("risk: request policy max_risk is %s but the request is classified %s (rule %s)", [max_risk, _risk, _risk_rule])
}

_risk_rule := "scan_truncated" if {
	_scan_truncated
	input.classification.risk != "high"
} else := r if {
	r := input.classification.risk_rule
	r != ""
} else := "unknown"
