// Package header owns every header name and dynamic-metadata key that the
// ext_proc server and the xDS translator must agree on. Keeping them in one
// place means the route Envoy matches and the header stellwerk sets can never
// drift apart.
package header

import (
	"strconv"
	"strings"
)

const (
	// Prefix marks every header stellwerk owns. Client-sent copies of any
	// header with this prefix are removed at the edge.
	Prefix = "x-stellwerk-"

	// Cluster carries the provider cluster chosen by stellwerk. The route
	// pushed over xDS forwards to the cluster it names; only stellwerk sets it.
	Cluster = "x-stellwerk-cluster"
	// Host carries the chosen provider's host in an operator's Envoy
	// (clusters mode): stellwerk's route there makes it the Host header
	// (host_rewrite_header), so the request keeps its virtual host (by
	// :authority) when Envoy matches its route again; the provider cluster
	// removes it.
	Host = "x-stellwerk-host"
	// DropIn is gRPC stream metadata (not an HTTP header) that the drop-in
	// pieces' ext_proc filter sends: their version, "2" for the pieces
	// whose route reads Host.
	DropIn = "x-stellwerk-drop-in"

	// ExternalAddress is the address a client connected from, which
	// Envoy's connection manager writes (use_remote_address; no client is
	// internal): the edge reads it, providers never get it.
	ExternalAddress = "x-envoy-external-address"

	// DecisionID, Model, Provider and Reason are returned to the caller on
	// every response.
	DecisionID = "x-stellwerk-decision-id"
	// RequestID is the id the OpenAI and Anthropic SDKs show for a request
	// (request_id): the decision's, unless the provider sent its own.
	RequestID = "x-request-id"
	// AnthropicRequestID is Anthropic's name for it, which the anthropic
	// SDKs read; answers on /v1/messages carry it too.
	AnthropicRequestID = "request-id"
	Model              = "x-stellwerk-model"
	Provider           = "x-stellwerk-provider"
	Reason             = "x-stellwerk-reason"
	// PolicyVersion is the content hash of the policy that decided.
	PolicyVersion = "x-stellwerk-policy-version"

	// Policy carries the per-request policy as JSON (same shape as the body's
	// `policy` object).
	Policy = "x-stellwerk-policy"
	// Route is on the answer of a request that ran a named route: the
	// route and the version that served (support@7), docs/routes.md.
	Route = "x-stellwerk-route"
	// RouteArm is beside Route when the route's path crossed a split: the
	// arm taken as node/arm (comma-joined for several splits), as the
	// routing object's route.arm, for clients that read no body (streams,
	// errors).
	RouteArm = "x-stellwerk-route-arm"
	// Metadata carries the request metadata routes read, as a JSON object
	// of strings, for clients that cannot send the body's `metadata`
	// (flow.ParseMetadataHeader). Read at the edge like Policy, then
	// removed.
	Metadata = "x-stellwerk-metadata"

	// Plan carries a request's attempt list from the client-facing filter
	// to the egress listeners (Envoy-internal, never sent to a provider).
	Plan = "x-stellwerk-plan"
	// Served is set by the egress filter on the answer: the index, in the
	// plan, of the attempt that produced it.
	Served = "x-stellwerk-served"
	// Overflow is set by the egress filter on a provider's answer that the
	// prompt does not fit its model's context window, when a later model of
	// the plan has a larger one: the failover route's retry policy retries
	// on it (retriable_headers), and the edge removes it from a last answer.
	Overflow = "x-stellwerk-overflow"
	// Rewritten is set by the client-facing filter when it rewrote the
	// request for the plan's first model itself: the first attempt's egress
	// listener then only follows the answer (docs/failover.md). Its value is
	// the client's request path, which a later attempt rewrites from.
	Rewritten = "x-stellwerk-rewritten"
	// ClientPath is the client's request path on a retry of a first attempt
	// that went straight to its provider (xds/firstattempt.go): a header of
	// its own, so that no egress listener takes such a retry for a first
	// attempt the edge rewrote for it (its routes match Rewritten).
	ClientPath = "x-stellwerk-client-path"
	// Upstream names the provider cluster that carries the caller's
	// workspace's own key for that provider (bring your own key,
	// docs/keys.md); an egress listener routes to it instead of the
	// provider's shared cluster. Only stellwerk sets it.
	Upstream = "x-stellwerk-upstream"
	// Workspace carries the caller's workspace from the client-facing
	// filter to the egress listeners, which pick that workspace's own key.
	Workspace = "x-stellwerk-workspace"
	// BudgetWarning is on an answer whose request met a budget at or over
	// its warn threshold: the budget's name and how much of it is used.
	BudgetWarning = "x-stellwerk-budget-warning"
	// WebhookSignature is on the budget webhook's POSTs when it has a
	// secret: sha256=<hex HMAC-SHA256 of the body> (docs/budgets.md).
	WebhookSignature = "x-stellwerk-signature"
	// TryKey carries the virtual key a console try-it request is sent with
	// (POST /admin/try on the admin port, never Envoy's listener); the
	// Authorization header holds the admin token, which never leaves
	// stellwerk (docs/console.md).
	TryKey = "x-stellwerk-try-key"
	// Attempts lists a request's attempts on its response.
	Attempts = "x-stellwerk-attempts"
	// FallbackFrom is on an answer served by a model other than the one
	// decided (failover): the decided model's id. For a pinned model this
	// happens only when the request or its workspace opted in.
	FallbackFrom = "x-stellwerk-fallback-from"

	// Egress is gRPC stream metadata (not an HTTP header) on the ext_proc
	// streams of an egress listener: the provider it sends to.
	Egress = "x-stellwerk-egress"
	// StreamToken is gRPC stream metadata (not an HTTP header) on every
	// stream Envoy's own gRPC clients open to stellwerk (ext_proc, ADS,
	// access log) when server.grpc_stream_token is set: a client whose
	// request Envoy proxies to a stellwerk cluster does not know it.
	StreamToken = "x-stellwerk-stream-token"
)

// DropInRoute is the name of stellwerk's route in an operator's Envoy
// (envoy/drop-in.yaml); RouteNameAttribute is the ext_proc attribute that
// carries the route a request matched, under ExtProcAttributes.
const (
	DropInRoute = "stellwerk"
	// DropInRoutedRoute is the route a request stellwerk routed matches
	// when Envoy matches it again after stellwerk's answer: whatever the
	// provider's path, by the routing header (envoy/drop-in.yaml).
	DropInRoutedRoute  = "stellwerk_routed"
	RouteNameAttribute = "xds.route_name"
	ExtProcAttributes  = "envoy.filters.http.ext_proc"
)

// Failover wiring, shared by the ext_proc server and the xDS translator
// (docs/failover.md).
const (
	// FailoverCluster is where standalone mode routes every chat request.
	FailoverCluster = "stellwerk_failover"
	// HostsKey, in MetadataNamespace, is the dynamic metadata the ext_proc
	// filter writes a request's ordered attempt list to.
	HostsKey = "hosts"
	// UpstreamFlags is added to Envoy's own error replies: its response flags.
	UpstreamFlags = "x-stellwerk-upstream-flags"
	// PlanKey, RewrittenKey and WorkspaceKey, in MetadataNamespace, carry
	// what the Plan, Rewritten and Workspace headers carry, for a request
	// whose first attempt goes straight to its provider (FirstCluster): the
	// retries' egress listeners get them as headers, that first provider
	// never does.
	PlanKey      = "plan"
	RewrittenKey = "rewritten"
	WorkspaceKey = "workspace"
	// ModelKey, in MetadataNamespace, is the model of a first attempt that
	// goes straight to its provider; its first-attempt cluster names it in
	// the answer as FirstModel, for the upstream log (the edge removes it).
	ModelKey   = "model"
	FirstModel = "x-stellwerk-first-model"
	// FirstClusterPrefix starts the names of the first-attempt clusters
	// (FirstCluster).
	FirstClusterPrefix = "stellwerk_first_"
)

// LBNamespace is the dynamic-metadata namespace Envoy's router reads
// subset load-balancing criteria from.
const LBNamespace = "envoy.lb"

// FailoverAttempt names the failover cluster of a first-attempt cluster's
// n-th attempt (n from 2): its egress listeners are labelled AttemptKey(n)
// = provider, and the request's criteria (LBNamespace) name the provider
// of its n-th attempt.
func FailoverAttempt(n int) string { return FailoverCluster + "_attempt_" + strconv.Itoa(n) }

// AttemptKey is the subset key of a request's n-th attempt (n from 2). The
// edge names every one per request: those failover.max_attempts allows
// (at most 10) are made once.
func AttemptKey(n int) string {
	if n >= 0 && n < len(attemptKeys) {
		return attemptKeys[n]
	}
	return attemptKey(n)
}

func attemptKey(n int) string { return "stellwerk_attempt_" + strconv.Itoa(n) }

var attemptKeys = func() (ks [11]string) {
	for n := range ks {
		ks[n] = attemptKey(n)
	}
	return ks
}()

// NoAttempt is the criterion of an attempt beyond the plan: no egress
// listener has it, so such an attempt finds no host.
const NoAttempt = "-"

// FirstCluster names a provider's first-attempt cluster: an aggregate of
// the provider's cluster (the first attempt, which the edge rewrote) and a
// failover cluster per retry (FailoverAttempt).
func FirstCluster(provider string) string { return FirstClusterPrefix + provider }

// WorkspaceCluster names the copy of a provider's cluster that injects a
// workspace's own key.
func WorkspaceCluster(providerCluster, workspace string) string {
	return providerCluster + "__ws_" + workspace
}

// WorkspaceCredentialSecret names the SDS secret of a workspace's own key
// for a provider.
func WorkspaceCredentialSecret(provider, workspace string) string {
	return "stellwerk_credential_" + provider + "__ws_" + workspace
}

// CredentialSecret names the SDS secret holding a provider's credential.
func CredentialSecret(provider string) string { return "stellwerk_credential_" + provider }

// EgressListener is the name of a provider's internal listener.
func EgressListener(provider string) string { return "stellwerk_egress_" + provider }

// EgressHost is how the failover cluster's load balancer names a provider's
// endpoint (Envoy's string form of an internal address).
func EgressHost(provider string) string { return "envoy://" + EgressListener(provider) + "/" }

// MaxRetries is the Envoy retry header stellwerk sets to a plan's length. A
// client's copy, like every x-envoy-* header a client sends, is removed at
// the edge (Forwarded lists none of them).
const MaxRetries = "x-envoy-max-retries"

// PerTryTimeout is the Envoy header an egress filter sets on a streaming
// attempt that has a fallback: the egress router's per-try timeout, which
// fires only before the answer's first byte (the model's first-byte
// timeout, docs/failover.md). Envoy's router consumes it.
const PerTryTimeout = "x-envoy-upstream-rq-per-try-timeout-ms"

// FirstByte is set by the client-facing filter on a streaming request with
// a fallback whose first attempt it rewrote: the first model's first-byte
// timeout in milliseconds. The first attempt's egress listener has a route
// per such timeout of its provider's models, whose per-try timeout it is
// (docs/failover.md); the listener removes the header.
const FirstByte = "x-stellwerk-first-byte"

// MetadataNamespace is the dynamic-metadata namespace stellwerk writes for
// access logs.
const MetadataNamespace = "stellwerk"

// IsInternal reports whether a client-sent header must be stripped before
// routing: anything in stellwerk's namespace. Header names from Envoy are
// lower-case already; the fold keeps the check honest for other callers.
func IsInternal(name string) bool {
	return len(name) >= len(Prefix) && strings.EqualFold(name[:len(Prefix)], Prefix)
}

// FreeText reports whether a header Forwarded lets through carries text a
// client writes freely (classified with the body: an IBAN in an
// idempotency key reaches the provider as surely as one in a message).
func FreeText(name string) bool {
	switch name {
	case "user-agent", "tracestate", "idempotency-key", "x-idempotency-key":
		return true
	}
	return false
}

// Forwarded reports whether a client request header may reach every
// provider: what the HTTP exchange itself needs, request ids, W3C trace
// context and idempotency keys. Any other client header is removed before a
// request leaves Envoy (cookies, OpenAI-Organization, anthropic-beta, …),
// unless the provider's config lists it in forward_headers. Pseudo-headers
// are Envoy's and never listed here.
func Forwarded(name string) bool {
	switch name {
	case "content-type", "content-length", "accept", "user-agent",
		"transfer-encoding", "te", "expect", // hop-by-hop: Envoy's codecs own them
		"x-forwarded-proto", // Envoy's own, which route matching reads
		"x-request-id", "traceparent", "tracestate",
		"idempotency-key", "x-idempotency-key":
		return true
	}
	return false
}
