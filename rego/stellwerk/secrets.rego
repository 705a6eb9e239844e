package stellwerk

_secrets_found if input.classification.secret_count > 0

# _secrets_mode is the workspace's secrets setting: deny (default),
# on_prem_only or allow. Any other value is treated as deny (fail closed).
_secrets_mode := "allow" if {
	input.workspace.secrets == "allow"
} else := "on_prem_only" if {
	input.workspace.secrets == "on_prem_only"
} else := "deny"

deny contains msg if {
	_secrets_found
	_secrets_mode == "deny"
	types := {t | some t in object.get(input.classification, "secret_types", [])}
	msg := sprintf("secrets: the prompt contains credentials (%s); remove them and retry", [concat(", ", types)])
}

_secrets_exclude := {id: "secrets: credentials in the prompt may only go to on_prem models" |
	_secrets_found
	_secrets_mode == "on_prem_only"
	some c in input.candidates
	not c.residency == "on_prem"
	id := c.id
}
