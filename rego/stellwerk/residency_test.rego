package stellwerk_test

test_residency_default_any_excludes_nothing if {
	decide({}).exclude == {}
}

test_residency_restricted_data_defaults_to_eu if {
	d := decide(restricted)
	d.exclude["gpt-4o"] == "residency: restricted data requires eu, model is us"
	d.exclude.claude == "residency: restricted data requires eu, model is global"
	d.exclude["gpt-mini"] == "residency: restricted data requires eu, model is us"
	not d.exclude["mistral-large"]
	not d.exclude["llama-local"]
}

test_residency_confidential_data if {
	d := decide(confidential)
	d.exclude == {
		"gpt-4o": "residency: confidential data requires eu, model is us",
		"claude": "residency: confidential data requires eu, model is global",
		"gpt-mini": "residency: confidential data requires eu, model is us",
	}
}

test_residency_internal_data_is_not_sensitive if {
	decide({"classification": {"sensitivity": "internal"}}).exclude == {}
}

test_residency_sensitive_residency_on_prem if {
	d := decide(object.union(confidential, {"workspace": {"sensitive_residency": "on_prem"}}))
	object.keys(d.exclude) == all_ids - {"llama-local"}
	d.exclude["mistral-large"] == "residency: confidential data requires on_prem, model is eu"
}

test_residency_sensitive_residency_any_lifts_the_default if {
	decide(object.union(confidential, {"workspace": {"sensitive_residency": "any"}})).exclude == {}
}

test_residency_workspace_eu if {
	d := decide({"workspace": {"residency": "eu"}})
	d.exclude == {
		"gpt-4o": "residency: workspace support requires eu, model is us",
		"claude": "residency: workspace support requires eu, model is global",
		"gpt-mini": "residency: workspace support requires eu, model is us",
	}
}

test_residency_workspace_on_prem if {
	d := decide({"workspace": {"residency": "on_prem"}})
	object.keys(d.exclude) == all_ids - {"llama-local"}
	d.exclude["mistral-small"] == "residency: workspace support requires on_prem, model is eu"
}

test_residency_workspace_unknown_value_fails_closed if {
	d := decide({"workspace": {"residency": "mars"}})
	object.keys(d.exclude) == all_ids - {"llama-local"}
}

test_residency_workspace_empty_or_null_is_any if {
	decide({"workspace": {"residency": ""}}).exclude == {}
	decide({"workspace": {"residency": null}}).exclude == {}
}

test_residency_request_tightens if {
	d := decide({"request": {"policy": {"residency": "on_prem"}}, "workspace": {"residency": "eu"}})
	object.keys(d.exclude) == all_ids - {"llama-local"}
	d.exclude["mistral-large"] == "residency: request policy requires on_prem, model is eu"
	d.exclude["gpt-4o"] == "residency: request policy requires on_prem, model is us"
}

test_residency_request_eu_over_workspace_any if {
	d := decide({"request": {"policy": {"residency": "eu"}}})
	d.exclude.claude == "residency: request policy requires eu, model is global"
}

test_residency_request_cannot_loosen_by_default if {
	d := decide({"request": {"policy": {"residency": "any"}}, "workspace": {"residency": "eu"}})
	d.exclude["gpt-4o"] == "residency: workspace support requires eu, model is us"
	count(d.exclude) == 3
}

test_residency_request_loosens_with_allow_loosening if {
	d := decide({"request": {"policy": {"residency": "any"}}, "workspace": {"residency": "eu", "allow_loosening": true}})
	d.exclude == {}
}

test_residency_loosening_to_eu_from_on_prem if {
	d := decide({"request": {"policy": {"residency": "eu"}}, "workspace": {"residency": "on_prem", "allow_loosening": true}})
	d.exclude["gpt-4o"] == "residency: request policy requires eu, model is us"
	not d.exclude["mistral-large"]
}

test_residency_loosening_never_lifts_sensitive_data if {
	patch := object.union(restricted, {"request": {"policy": {"residency": "any"}}, "workspace": {"residency": "eu", "allow_loosening": true}})
	d := decide(patch)
	d.exclude["gpt-4o"] == "residency: restricted data requires eu, model is us"
	d.exclude.claude == "residency: restricted data requires eu, model is global"
}

test_residency_equal_levels_name_the_workspace if {
	d := decide({"request": {"policy": {"residency": "eu"}}, "workspace": {"residency": "eu"}})
	d.exclude["gpt-4o"] == "residency: workspace support requires eu, model is us"
}

test_residency_tie_with_sensitive_data_names_the_data if {
	d := decide(object.union(confidential, {"workspace": {"residency": "eu"}}))
	d.exclude["gpt-4o"] == "residency: confidential data requires eu, model is us"
}

test_residency_stricter_workspace_beats_sensitive_data if {
	d := decide(object.union(restricted, {"workspace": {"residency": "on_prem"}}))
	d.exclude["mistral-large"] == "residency: workspace support requires on_prem, model is eu"
}

# The decision names the residency requirement when it excluded a model,
# as a field (the explanation reads it; nobody parses reasons).
test_residency_decision_names_the_requirement if {
	decide(restricted).residency == "eu"
	decide(object.union(confidential, {"workspace": {"sensitive_residency": "on_prem"}})).residency == "on_prem"
	decide({"workspace": {"residency": "eu"}}).residency == "eu"
	decide({}).residency == ""
	decide(object.union(confidential, {"workspace": {"sensitive_residency": "any"}})).residency == ""
}

# Content no detector reads: a PDF, audio and video are sensitive data by
# default (the provider reads them, the classifiers could not); an image is
# not, unless the workspace names it.
test_residency_unread_file_is_sensitive if {
	d := decide({"classification": {"unread": {"image": 0, "audio": 0, "video": 0, "file": 1}}})
	d.exclude["gpt-4o"] == "residency: unread file content requires eu, model is us"
	d.exclude.claude == "residency: unread file content requires eu, model is global"
	not d.exclude["mistral-large"]
	d.tags.unread == "file"
}

test_residency_unread_image_is_not_by_default if {
	d := decide({"classification": {"unread": {"image": 2, "audio": 0, "video": 0, "file": 0}}})
	d.exclude == {}
	not d.tags.unread
}

test_residency_unread_kinds_the_workspace_names if {
	inp := {"classification": {"unread": {"image": 1, "audio": 1, "video": 0, "file": 0}}, "workspace": {"unread_sensitive": ["image"]}}
	d := decide(inp)
	d.exclude["gpt-4o"] == "residency: unread image content requires eu, model is us"
	d.tags.unread == "image"
	decide(object.union(inp, {"workspace": {"unread_sensitive": []}})).exclude == {}
}

test_residency_unread_with_sensitive_data_names_the_data if {
	d := decide(object.union(confidential, {"classification": {"unread": {"image": 0, "audio": 1, "video": 0, "file": 0}}}))
	d.exclude["gpt-4o"] == "residency: confidential data requires eu, model is us"
}
