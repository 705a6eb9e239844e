package stellwerk

# Allow and deny lists hold model ids and provider:<name> entries. Each
# entry is matched against the candidates by equality.

# _hits(list, reason): the candidates a list names, id -> reason.
_hits(list, reason) := object.union(
	{x: reason |
		some x in list
		not startswith(x, "provider:")
		some i
		input.candidates[i].id == x
	},
	{id: reason |
		some x in list
		startswith(x, "provider:")
		p := substring(x, 9, -1)
		some i
		input.candidates[i].provider == p
		id := input.candidates[i].id
	},
)

# _misses(list, reason): the candidates an allow list does not name.
_misses(list, reason) := {id: reason | some id in (_candidate_ids - object.keys(_hits(list, true)))}

# _access_lists: some list is non-empty (access costs nothing otherwise).
_access_lists if input.workspace.allow[0]

_access_lists if input.workspace.deny[0]

_access_lists if input.workspace.team.allow[0]

_access_lists if input.workspace.team.deny[0]

_access_lists if input.request.policy.allow[0]

_access_lists if input.request.policy.deny[0]

_candidate_ids := {id | id := input.candidates[_].id}

_team_name := n if n := input.workspace.team.name

else := ""

_access_ws_allow := _misses(l, concat("", ["access: not in the allow list of workspace ", _ws_name])) if {
	l := input.workspace.allow
	l[0]
} else := {}

_access_ws_deny := _hits(l, concat("", ["access: denied by workspace ", _ws_name])) if {
	l := input.workspace.deny
	l[0]
} else := {}

_access_team_allow := _misses(l, concat("", ["access: not in the allow list of team ", _team_name])) if {
	l := input.workspace.team.allow
	l[0]
} else := {}

_access_team_deny := _hits(l, concat("", ["access: denied by team ", _team_name])) if {
	l := input.workspace.team.deny
	l[0]
} else := {}

_access_req_allow := _misses(l, "request policy: not in its allow list") if {
	l := input.request.policy.allow
	l[0]
} else := {}

_access_req_deny := _hits(l, "request policy: denied") if {
	l := input.request.policy.deny
	l[0]
} else := {}

# _access_exclude: within access, the first of workspace deny, workspace
# allow, team deny, team allow, request deny, request allow gives the reason
# (union_n: the right-most wins).
_access_exclude := {} if not _access_lists

else := object.union_n([
	_access_req_allow,
	_access_req_deny,
	_access_team_allow,
	_access_team_deny,
	_access_ws_allow,
	_access_ws_deny,
])
