package stellwerk

# Residency requirements in strictness order: any < eu < on_prem.
_residency_rank := {"any": 0, "eu": 1, "on_prem": 2}

# _residency_level normalises a configured requirement: "" and null mean any
# (so does a missing field, below); a value that is not a known level counts
# as on_prem (fail closed; config and request validation never let one
# through).
_residency_level := {"any": "any", "eu": "eu", "on_prem": "on_prem", "": "any", null: "any"}

# The model residencies that do not satisfy a requirement. Models are
# matched by equality, which OPA evaluates without a builtin call; the
# catalog only has these four residencies (config validation).
_residency_rejects := {"eu": ["us", "global"], "on_prem": ["eu", "us", "global"]}

# (a) the workspace's requirement.
_ws_residency := l if l := _residency_level[input.workspace.residency]

else := "on_prem" if input.workspace.residency

else := "any"

# (b) the request's, when it sent one.
_req_residency := l if l := _residency_level[input.request.policy.residency]

else := "on_prem" if input.request.policy.residency

# (c) confidential and restricted data, and data not fully scanned (fail
# closed): the workspace's sensitive_residency (default eu), a hard
# requirement that loosening never lifts.
_sensitive_data if input.classification.sensitivity == "restricted"

_sensitive_data if input.classification.sensitivity == "confidential"

_sensitive_data if _scan_truncated

# Content no detector reads — a PDF, audio, video, by default; images too
# when the workspace's unread_sensitive names them — counts as sensitive
# data: the provider reads it, the classifiers could not.
_sensitive_data if _unread_sensitive

# Decided without building the set of kinds: most requests send none.
_unread_sensitive if {
	some kind in _unread_sensitive_kinds
	input.classification.unread[kind] > 0
}

# _unread_named are the kinds of unread content the workspace counts as
# sensitive that the request sends.
_unread_named contains kind if {
	some kind in _unread_sensitive_kinds
	input.classification.unread[kind] > 0
}

_unread_sensitive_kinds := k if {
	k := input.workspace.unread_sensitive
	is_array(k)
} else := ["file", "audio", "video"]

_sensitive_residency := l if {
	_sensitive_data
	l := {"any": "any", "eu": "eu", "on_prem": "on_prem", "": "eu", null: "eu"}[input.workspace.sensitive_residency]
} else := "on_prem" if {
	_sensitive_data
	input.workspace.sensitive_residency
} else := "eu" if _sensitive_data

# _base_residency is (a) combined with (b), [level, source]: the request
# tightens the workspace's requirement, and loosens it only when the
# workspace sets allow_loosening.
_base_residency := [_req_residency, "request"] if {
	_residency_rank[_req_residency] > _residency_rank[_ws_residency]
} else := [_req_residency, "request"] if {
	_allow_loosening
	_residency_rank[_req_residency] < _residency_rank[_ws_residency]
} else := [_ws_residency, "workspace"]

# _required_residency is the strictest of them, [level, source]; on a tie
# the data's sensitivity is named, as it is the one that cannot be loosened.
# The first body is the common case, decided without ranking anything.
_required_residency := [_ws_residency, "workspace"] if {
	not input.request.policy.residency
	not _sensitive_data
} else := [_sensitive_residency, "data"] if {
	_residency_rank[_sensitive_residency] >= _residency_rank[_base_residency[0]]
} else := _base_residency

# _residency_source names the source in reasons; only evaluated for one.
_residency_source := _data_source if _required_residency[1] == "data"

else := "request policy" if _required_residency[1] == "request"

else := concat(" ", ["workspace", _ws_name])

# _data_source names sensitive data by its level; a truncated scan, or
# content no detector reads, of data classified below confidential is
# named as such.
_data_source := concat(" ", [input.classification.sensitivity, "data"]) if {
	input.classification.sensitivity in {"restricted", "confidential"}
} else := "data not fully scanned" if _scan_truncated

else := concat("", ["unread ", concat(", ", sort(_unread_named)), " content"])

tags["unread"] := concat(",", sort(_unread_named)) if _unread_sensitive

_residency_exclude := {id: reason |
	level := _required_residency[0]
	some model_residency in _residency_rejects[level]
	reason := sprintf("residency: %s requires %s, model is %s", [_residency_source, level, model_residency])
	some i
	input.candidates[i].residency == model_residency
	id := input.candidates[i].id
}
