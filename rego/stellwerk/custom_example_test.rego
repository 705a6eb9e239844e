# An example of a platform team's module, defined here in the library's own
# package so that it takes part in the decision exactly as a module from
# policy.dir would. It only exists in the test files: the shipped library has
# no custom rules. docs/policy-library.md shows it as a module.
package stellwerk

# The finance workspace takes no chat requests at weekends.
deny contains "finance: no chat requests on weekends" if {
	input.workspace.name == "finance"
	input.time.weekday in {"Saturday", "Sunday"}
}

# Models whose provider is unhealthy or slow are excluded for latency-bound
# teams; two rules may exclude the same model without a conflict.
excluded contains [c.id, "ops: provider unhealthy"] if {
	input.workspace.name == "ops"
	some c in input.candidates
	c.healthy == false
}

excluded contains [c.id, "ops: latency above 2000 ms"] if {
	input.workspace.name == "ops"
	some c in input.candidates
	c.latency_ms > 2000
}

tags["cost_center"] := input.request.metadata.cost_center if input.workspace.name == "ops"

log_levels contains "info" if input.workspace.name == "ops"

# The search workspace keeps text that reads like an injection out of its
# vector index (the library only flags it in embeddings input).
deny contains "injection: suspected text is not embedded" if {
	input.workspace.name == "search"
	input.request.api == "embeddings"
	input.classification.injection.score >= 0.5
}
