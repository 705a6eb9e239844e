package stellwerk

_injection_threshold := t if t := input.workspace.injection_threshold

else := 0.5

_injection_min_tier := t if t := input.workspace.injection_min_tier

else := 3

# _injection_mode is the workspace's injection setting: deny (default),
# restrict or flag. Any other value is treated as deny (fail closed).
_injection_mode := "restrict" if {
	input.workspace.injection == "restrict"
} else := "flag" if {
	input.workspace.injection == "flag"
} else := "deny"

_injection_suspected if input.classification.injection.score >= _injection_threshold

# _injection_enforced: an embedding model turns its input into vectors and
# follows no instruction in it, so text sent to /v1/embeddings is only tagged
# and logged; deny and restrict apply where a model reads the text as its
# prompt. A RAG document's chunk that reads like an injection is classified
# again when it is retrieved into a prompt.
_injection_enforced if not input.request.api == "embeddings"

deny contains msg if {
	_injection_suspected
	_injection_enforced
	_injection_mode == "deny"
	msg := sprintf("injection: prompt injection suspected (score %s)", [_decimal2(input.classification.injection.score)])
}

_injection_exclude := {id: reason |
	_injection_suspected
	_injection_enforced
	_injection_mode == "restrict"
	t := _injection_min_tier
	reason := sprintf("injection: suspected prompt injection may only go to assurance tier >= %v", [t])
	some i
	not input.candidates[i].assurance_tier >= t
	id := input.candidates[i].id
}

tags["injection_suspected"] := "true" if _injection_suspected

log_levels contains "warn" if _injection_suspected

# _decimal2(x) formats a number in [0, 1] with two decimals. sprintf's %.2f
# would print an integral number such as 1 as "%!f(int=1)".
_decimal2(x) := sprintf("%d.%02d", [floor(n / 100), n % 100]) if n := round(x * 100)
