# An example of a content rule without code: a platform team lists the
# words that mark a project (classify.terms in stellwerk.yaml) and a module
# in package stellwerk decides what a request mentioning them may use.
# Like custom_example_test.rego it only exists among the test files: the
# shipped library has no project of its own. docs/policy-library.md shows
# it as a module; e2e/terms_test.go loads this very file from policy.dir.
#
# classify.terms:
#   - name: project_zephyr
#     terms: ["project zephyr", "zephyr roadmap"]
#     patterns: ['zph-\d{4}']
package stellwerk

# Prompts mentioning project zephyr stay on-prem: every other model is
# excluded, so the request goes to an on-prem model or, when none is
# allowed, gets a 503 naming the exclusions. A config without the list has
# no count, and the rule never applies.
excluded contains [c.id, "project zephyr: on-prem models only"] if {
	input.classification.terms.project_zephyr.count > 0
	some c in input.candidates
	c.residency != "on_prem"
}
