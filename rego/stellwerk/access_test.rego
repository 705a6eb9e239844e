package stellwerk_test

test_access_empty_lists if {
	decide({"workspace": {"allow": [], "deny": [], "team": {"name": "cx", "allow": [], "deny": []}}}).exclude == {}
}

test_access_workspace_allow_ids_and_providers if {
	d := decide({"workspace": {"allow": ["gpt-4o", "provider:mistral"]}})
	d.exclude == {
		"claude": "access: not in the allow list of workspace support",
		"llama-local": "access: not in the allow list of workspace support",
		"gpt-mini": "access: not in the allow list of workspace support",
	}
}

test_access_workspace_deny if {
	d := decide({"workspace": {"deny": ["claude", "provider:openai", "no-such-model"]}})
	d.exclude == {
		"claude": "access: denied by workspace support",
		"gpt-4o": "access: denied by workspace support",
		"gpt-mini": "access: denied by workspace support",
	}
}

test_access_team if {
	d := decide({"workspace": {"team": {"name": "cx", "allow": ["provider:openai", "provider:mistral", "claude"], "deny": ["gpt-4o"]}}})
	d.exclude == {
		"llama-local": "access: not in the allow list of team cx",
		"gpt-4o": "access: denied by team cx",
	}
}

test_access_null_team if {
	decide({"workspace": {"team": null}}).exclude == {}
}

test_access_request_policy if {
	d := decide({"request": {"policy": {"allow": ["provider:mistral", "gpt-4o"], "deny": ["mistral-small"]}}})
	d.exclude == {
		"claude": "request policy: not in its allow list",
		"llama-local": "request policy: not in its allow list",
		"gpt-mini": "request policy: not in its allow list",
		"mistral-small": "request policy: denied",
	}
}

test_access_request_allow_only_narrows if {
	d := decide({"workspace": {"allow": ["provider:mistral"]}, "request": {"policy": {"allow": ["gpt-4o", "mistral-large"]}}})
	d.exclude["gpt-4o"] == "access: not in the allow list of workspace support"
	d.exclude["mistral-small"] == "request policy: not in its allow list"
	not d.exclude["mistral-large"]
	count(d.exclude) == 5
}

test_access_workspace_deny_beats_allow_and_request if {
	d := decide({
		"workspace": {"allow": ["provider:openai"], "deny": ["gpt-4o"], "team": {"name": "cx", "deny": ["gpt-4o"]}},
		"request": {"policy": {"deny": ["gpt-4o"]}},
	})
	d.exclude["gpt-4o"] == "access: denied by workspace support"
	d.exclude.claude == "access: not in the allow list of workspace support"
}

test_access_reason_wins_over_secrets_and_residency if {
	d := decide(object.union(restricted, {
		"workspace": {"deny": ["gpt-4o"], "secrets": "on_prem_only"},
		"classification": {"secret_types": ["github_token"], "secret_count": 1},
	}))
	d.exclude["gpt-4o"] == "access: denied by workspace support"
	d.exclude.claude == "secrets: credentials in the prompt may only go to on_prem models"
}
