// Package header owns every header name and dynamic-metadata key that the
// ext_proc server and the xDS translator must agree on. Keeping them in one
// place means the route Envoy matches and the header stellwerk sets can never
// drift apart.
package header

import "strings"

const (
	// Prefix marks every header stellwerk owns. Client-sent copies of any
	// header with this prefix are removed at the edge.
	Prefix = "x-stellwerk-"

	// Cluster carries the provider cluster chosen by stellwerk. The route
	// pushed over xDS forwards to the cluster it names; only stellwerk sets it.
	Cluster = "x-stellwerk-cluster"

	// DecisionID, Model, Provider and Reason are returned to the caller on
	// every response.
	DecisionID = "x-stellwerk-decision-id"
	Model      = "x-stellwerk-model"
	Provider   = "x-stellwerk-provider"
	Reason     = "x-stellwerk-reason"
	// PolicyVersion is the content hash of the policy that decided.
	PolicyVersion = "x-stellwerk-policy-version"

	// Policy carries the per-request policy as JSON (same shape as the body's
	// `policy` object).
	Policy = "x-stellwerk-policy"
)

// MetadataNamespace is the dynamic-metadata namespace stellwerk writes for
// access logs.
const MetadataNamespace = "stellwerk"

// IsInternal reports whether a client-sent header must be stripped before
// routing: anything in stellwerk's namespace. Header names from Envoy are
// lower-case already; the fold keeps the check honest for other callers.
func IsInternal(name string) bool {
	return len(name) >= len(Prefix) && strings.EqualFold(name[:len(Prefix)], Prefix)
}
