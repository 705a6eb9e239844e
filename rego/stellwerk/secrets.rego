package stellwerk

_secrets_found if input.classification.secret_count > 0

# A truncated scan may have missed a credential: the secrets setting applies
# to it as if one was found (fail closed).
_secrets_possible if _secrets_found

_secrets_possible if _scan_truncated

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
	types := {t | some t in _secret_types}
	msg := sprintf("secrets: the prompt contains credentials (%s); remove them and retry", [concat(", ", types)])
}

deny contains _unscanned_message if {
	not _secrets_found
	_scan_truncated
	_secrets_mode == "deny"
}

# _unscanned_message says what to send instead: less text, text rather
# than token ids (which no detector reads; LangChain's OpenAIEmbeddings
# sends them by default), or a file whose data URL decodes.
_unscanned_message := "secrets: token ids cannot be scanned for credentials; send the text instead (LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)" if {
	_scan_limit == "token_ids"
} else := "secrets: an inline text file could not be decoded to scan it for credentials; send its data URL as base64 or percent-encoded text" if {
	_scan_limit == "file"
} else := sprintf("secrets: the request was not fully scanned for credentials (%s limit reached); send less text or fewer parts and retry", [_scan_limit])

_secrets_exclude := {id: _secrets_reason |
	_secrets_possible
	_secrets_mode == "on_prem_only"
	some i
	not input.candidates[i].residency == "on_prem"
	id := input.candidates[i].id
}

# _secret_types reads the one field it needs (not the whole classification:
# the decision memo keys on exactly what the policy reads, docs/policy.md).
_secret_types := t if t := input.classification.secret_types

else := []

_secrets_reason := "secrets: credentials in the prompt may only go to on_prem models" if _secrets_found

else := "secrets: a request not fully scanned for credentials may only go to on_prem models"
