package stellwerk_test

import data.stellwerk

truncated := {"classification": {"scan": "truncated", "scan_limit": "segments"}}

# secrets: allow, so that residency and risk show on their own.
truncated_allow := object.union(truncated, {"workspace": {"secrets": "allow"}})

test_scan_complete_changes_nothing if {
	decide({"classification": {"scan": "complete"}}) == decide({})
}

test_scan_missing_counts_as_scanned_but_null_does_not if {
	d := stellwerk.decision with input as object.union(base, {"classification": object.remove(base.classification, ["scan"])})
	d.tags == {}
	decide({"classification": {"scan": null}}).tags.scan == "truncated"
}

test_scan_truncated_is_sensitive_data if {
	d := decide(truncated_allow)
	d.exclude["gpt-4o"] == "residency: data not fully scanned requires eu, model is us"
	d.exclude.claude == "residency: data not fully scanned requires eu, model is global"
	d.exclude["gpt-mini"] == "residency: data not fully scanned requires eu, model is us"
	not d.exclude["mistral-large"]
	not d.exclude["llama-local"]
}

test_scan_truncated_restricted_names_the_level if {
	d := decide(object.union(truncated_allow, {"classification": {"sensitivity": "restricted", "risk": "high", "risk_rule": "scan_truncated"}}))
	d.exclude["gpt-4o"] == "residency: restricted data requires eu, model is us"
}

test_scan_truncated_is_high_risk if {
	d := decide(truncated_allow)
	d.exclude["mistral-small"] == "risk: high-risk request needs assurance tier >= 2, model has 1"
}

test_scan_truncated_beats_a_low_max_risk if {
	d := decide(object.union(truncated_allow, {"request": {"policy": {"max_risk": "medium"}}}))
	d.deny == {"risk: request policy max_risk is medium but the request is classified high (rule scan_truncated)"}
}

test_scan_truncated_loosening_never_lifts_it if {
	d := decide(object.union(truncated_allow, {"request": {"policy": {"residency": "any"}}, "workspace": {"allow_loosening": true}}))
	d.exclude["gpt-4o"] == "residency: data not fully scanned requires eu, model is us"
}

test_scan_truncated_denied_by_default_secrets_setting if {
	d := decide(truncated)
	d.deny == {"secrets: the request was not fully scanned for credentials (segments limit reached); send less text or fewer parts and retry"}
}

test_token_ids_say_to_send_text if {
	d := decide(object.union(truncated, {"classification": {"scan_limit": "token_ids"}}))
	d.deny == {"secrets: token ids cannot be scanned for credentials; send the text instead (LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)"}
}

test_undecodable_file_says_what_to_send if {
	d := decide(object.union(truncated, {"classification": {"scan_limit": "file"}}))
	d.deny == {"secrets: an inline text file could not be decoded to scan it for credentials; send its data URL as base64 or percent-encoded text"}
}

test_scan_truncated_with_secrets_found_names_them_once if {
	d := decide(object.union(truncated, secrets))
	d.deny == {"secrets: the prompt contains credentials (aws_access_key, openai_key); remove them and retry"}
}

test_scan_truncated_on_prem_only if {
	d := decide(object.union(truncated, {"workspace": {"secrets": "on_prem_only"}}))
	d.deny == set()
	object.keys(d.exclude) == all_ids - {"llama-local"}
	d.exclude["mistral-large"] == "secrets: a request not fully scanned for credentials may only go to on_prem models"
}

test_scan_unknown_value_fails_closed if {
	d := decide({"classification": {"scan": "partial"}, "workspace": {"secrets": "allow"}})
	d.exclude["gpt-4o"] == "residency: data not fully scanned requires eu, model is us"
	d.tags.scan == "truncated"
}

test_scan_truncated_is_tagged_and_logged if {
	d := decide(truncated_allow)
	d.tags == {"scan": "truncated"}
	d.log_level == "warn"
}
