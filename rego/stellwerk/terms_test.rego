package stellwerk_test

import data.stellwerk

zephyr(n) := object.union(base, {"classification": {"terms": {"project_zephyr": {"count": n}}}})

test_terms_mentioning_project_zephyr_stays_on_prem if {
	d := stellwerk.decision with input as zephyr(2)
	d.exclude == {id: "project zephyr: on-prem models only" | some c in candidates; c.residency != "on_prem"; id := c.id}
	not d.exclude["llama-local"]
	d.deny == set()
}

test_terms_no_mention_no_exclusion if {
	d := stellwerk.decision with input as zephyr(0)
	d.exclude == {}
}

test_terms_without_the_list_the_rule_never_applies if {
	d := stellwerk.decision with input as base
	d.exclude == {}
}
