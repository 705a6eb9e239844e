package stellwerk

# _scan_truncated holds when a classifier stopped at a cap, so the request
# carries text no detector has read (docs/classify.md). Every classifier
# fails closed: the library treats such a request as sensitive data
# (residency.rego), high risk (risk.rego) and possibly holding credentials
# (secrets.rego). Any value but "complete" counts as truncated; an input
# without the field (written by hand, not by stellwerk) counts as scanned.
_scan_truncated if {
	s := input.classification.scan
	s != "complete"
}

# _scan_limit names the cap that stopped the scan, for reasons.
_scan_limit := l if {
	l := input.classification.scan_limit
	is_string(l)
	l != ""
} else := "unknown"

tags["scan"] := "truncated" if _scan_truncated

log_levels contains "warn" if _scan_truncated
