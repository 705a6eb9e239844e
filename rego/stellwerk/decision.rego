# The stellwerk policy library: data.stellwerk.decision, evaluated once per
# chat request with the input document described in docs/policy.md.
#
# Every module of the library is in package stellwerk, so a platform team's
# own modules (policy.dir) contribute to the same decision. The public
# extension points are:
#
#   deny contains msg if {...}              refuse the request (403)
#   excluded contains [id, reason] if {...} exclude a model
#   tags[key] := value if {...}             label the decision
#   log_levels contains level if {...}      raise the decision's log level
#
# Names starting with "_" are internal and may change between releases.
# See docs/policy-library.md, which also explains why the rules are written
# the way they are: per-request facts are computed once, candidates are
# matched by equality (unification) rather than builtin calls, and strings
# are formatted once per reason, not once per model.
package stellwerk

decision := {
	"deny": deny,
	"exclude": exclude,
	"objective": _objective,
	"quality_floor": _quality_floor,
	"max_cost_eur": _max_cost_eur,
	"redact": [],
	"log_level": _log_level,
	"tags": tags,
	"residency": _decision_residency,
	"downgrade": _downgrade_budgets,
	"malformed_excluded": _malformed_excluded,
}

# _decision_residency is the residency requirement when it excluded a
# model, "" otherwise: the explanation names it without parsing reasons.
_decision_residency := _required_residency[0] if count(_residency_exclude) > 0

else := ""

# exclude merges the rule families into one object, candidate id -> reason.
# A model excluded by several families gets the reason of the first in this
# priority: access, secrets, injection, residency, risk, budget, custom
# (excluded).
# object.union_n lets the right-most object win, so the list runs from the
# lowest priority to the highest.
exclude := object.union_n([
	_custom_exclude,
	_budget_exclude,
	_risk_exclude,
	_residency_exclude,
	_injection_exclude,
	_secrets_exclude,
	_access_exclude,
])

# _custom_exclude collects the [id, reason] pairs of excluded, which platform
# modules define (the library itself has no excluded rule, hence the full
# reference). Several reasons for one model are sorted and joined with "; "
# so that two modules excluding the same model never conflict.
_custom_exclude := {id: concat("; ", reasons) |
	some pair in data.stellwerk.excluded
	_excluded_pair(pair)
	id := pair[0]
	reasons := {r | some p in data.stellwerk.excluded; _excluded_pair(p); p[0] == id; r := p[1]}
}

_excluded_pair(p) if {
	is_array(p)
	count(p) == 2
	is_string(p[0])
	is_string(p[1])
}

# _malformed_excluded is every entry of excluded that is not a [model id,
# reason] pair of strings. The decision carries them, and stellwerk refuses
# a decision that has any (policy_error): the model the author meant to
# exclude would otherwise stay eligible. OPA's type check catches most
# such entries at load, but not once another rule of excluded is well typed.
_malformed_excluded contains p if {
	some p in data.stellwerk.excluded
	not _excluded_pair(p)
}

# _log_level is the most severe level any rule asked for; "" when none did
# (tested first: the common case costs one comparison).
_log_level := "" if log_levels == set()

else := "warn" if log_levels.warn

else := "info" if log_levels.info

else := "debug" if log_levels.debug

else := ""

_allow_loosening if input.workspace.allow_loosening == true

_ws_name := n if n := input.workspace.name

else := ""
