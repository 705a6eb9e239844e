package stellwerk_test

secrets := {"classification": {"secret_types": ["openai_key", "aws_access_key", "openai_key"], "secret_count": 3}}

test_secrets_default_deny if {
	d := decide(secrets)
	d.deny == {"secrets: the prompt contains credentials (aws_access_key, openai_key); remove them and retry"}
	d.exclude == {}
}

test_secrets_explicit_deny_and_unknown_mode_deny if {
	count(decide(object.union(secrets, {"workspace": {"secrets": "deny"}})).deny) == 1
	count(decide(object.union(secrets, {"workspace": {"secrets": "ignore"}})).deny) == 1
}

test_secrets_none_found if {
	decide({"classification": {"secret_types": [], "secret_count": 0}}).deny == set()
}

test_secrets_on_prem_only if {
	d := decide(object.union(secrets, {"workspace": {"secrets": "on_prem_only"}}))
	d.deny == set()
	object.keys(d.exclude) == all_ids - {"llama-local"}
	every id, reason in d.exclude {
		id != "llama-local"
		reason == "secrets: credentials in the prompt may only go to on_prem models"
	}
}

test_secrets_allow if {
	d := decide(object.union(secrets, {"workspace": {"secrets": "allow"}}))
	d.deny == set()
	d.exclude == {}
}

test_secrets_reason_wins_over_residency if {
	d := decide(object.union(restricted, object.union(secrets, {"workspace": {"secrets": "on_prem_only"}})))
	d.exclude["gpt-4o"] == "secrets: credentials in the prompt may only go to on_prem models"
	d.exclude["mistral-large"] == "secrets: credentials in the prompt may only go to on_prem models"
}
