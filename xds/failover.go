package xds

import (
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	overridehostv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/override_host/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	subsetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/subset/v3"
	internalv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/internal_upstream/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/header"
)

// The failover design (docs/failover.md): the route sends every chat
// request to one cluster whose endpoints are internal listeners, one per
// provider. The ext_proc filter writes the decision's ordered attempt list
// into dynamic metadata; the override-host load balancer takes the first
// entry for the first attempt and the next for each retry Envoy's router
// makes. Each internal listener runs stellwerk's ext_proc filter again,
// which rewrites the request for that provider, then forwards it to the
// provider's own cluster (DNS, TLS, SNI unchanged). When the list is used
// up, the fallback policy finds no host: a request never reaches a provider
// the decision did not list.

// failoverCluster is the cluster of egress listeners.
func failoverCluster(f Failover) (*clusterv3.Cluster, error) {
	cl, err := egressCluster(f, header.FailoverCluster, nil)
	if err != nil {
		return nil, err
	}
	// No host when the attempt list is used up (or missing): subset load
	// balancing over a key no endpoint has, without fallback.
	none, err := subsetPolicy([]*subsetv3.Subset_LbSubsetSelector{{Keys: []string{"stellwerk_never"}}})
	if err != nil {
		return nil, err
	}
	oh, err := toAny(&overridehostv3.OverrideHost{
		OverrideHostSources: []*overridehostv3.OverrideHost_OverrideHostSource{{
			Metadata: &metadatav3.MetadataKey{Key: header.MetadataNamespace, Path: []*metadatav3.MetadataKey_PathSegment{{
				Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: header.HostsKey},
			}}},
		}},
		FallbackPolicy: none,
	})
	if err != nil {
		return nil, err
	}
	cl.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.override_host", TypedConfig: oh},
	}}}
	return cl, nil
}

// subsetPolicy balances over the subsets the request's criteria select
// (round robin inside one), with no host when none matches.
func subsetPolicy(selectors []*subsetv3.Subset_LbSubsetSelector) (*clusterv3.LoadBalancingPolicy, error) {
	rr, err := toAny(&roundrobinv3.RoundRobin{})
	if err != nil {
		return nil, err
	}
	subset, err := toAny(&subsetv3.Subset{
		FallbackPolicy:  subsetv3.Subset_NO_FALLBACK,
		SubsetSelectors: selectors,
		SubsetLbPolicy: &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
			TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.round_robin", TypedConfig: rr},
		}}},
	})
	if err != nil {
		return nil, err
	}
	return &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
		TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "envoy.load_balancing_policies.subset", TypedConfig: subset},
	}}}, nil
}

// egressCluster is a static cluster of the egress listeners, reached over
// Envoy's internal transport, without a load-balancing policy yet. label,
// when set, gives each listener's endpoint its subset metadata.
func egressCluster(f Failover, name string, label func(Egress) *corev3.Metadata) (*clusterv3.Cluster, error) {
	var eps []*endpointv3.LbEndpoint
	for _, e := range f.Egress {
		ep := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
				AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: e.Listener},
			}}},
		}}}
		if label != nil {
			ep.Metadata = label(e)
		}
		eps = append(eps, ep)
	}
	raw, err := toAny(&rawv3.RawBuffer{})
	if err != nil {
		return nil, err
	}
	ts, err := toAny(&internalv3.InternalUpstreamTransport{TransportSocket: &corev3.TransportSocket{
		Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: raw},
	}})
	if err != nil {
		return nil, err
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(1e9),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.internal_upstream",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ts}},
		CircuitBreakers:               &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{unlimitedThresholds()}},
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(uint32(f.MaxRequestBytes + bufferSlack)),
	}, nil
}

// unlimitedThresholds lift the circuit breakers of the clusters failover
// retries are counted against: retries are how failover works, so the
// cluster-wide cap on concurrent retries (3 by default) must not be what
// limits it.
func unlimitedThresholds() *clusterv3.CircuitBreakers_Thresholds {
	unlimited := wrapperspb.UInt32(1 << 20)
	return &clusterv3.CircuitBreakers_Thresholds{MaxConnections: unlimited, MaxPendingRequests: unlimited, MaxRequests: unlimited, MaxRetries: unlimited}
}

// egressListener is one provider's internal listener: stellwerk's ext_proc
// filter (told which provider it serves through gRPC metadata), then the
// router to the provider's cluster. The first attempt of a request the
// client-facing filter already rewrote for this provider (header.Rewritten)
// has its own route, where that filter is off: the listener only forwards
// it, and how it went is learned by the client-facing filter and, for a
// failure, from the client-facing router's upstream log (firstAttemptLog).
// Every other attempt is rewritten here.
func egressListener(ir IR, e Egress) (*listenerv3.Listener, error) {
	ep := ir.ExtProc
	ep.Egress = e.Provider
	epf, err := extProcHTTPFilter(ep)
	if err != nil {
		return nil, err
	}
	router, err := toAny(&routerv3.Router{SuppressEnvoyHeaders: true})
	if err != nil {
		return nil, err
	}
	off, err := toAny(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Disabled{Disabled: true}})
	if err != nil {
		return nil, err
	}
	lrc, err := localReplyConfig(ir.Failover.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	action := func(byok bool, firstByte time.Duration) *routev3.Route_Route {
		a := &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: e.Cluster},
			// The client-facing route's timeouts bound the request.
			Timeout: durationpb.New(0),
		}
		if byok { // the caller's workspace brings its own key: its copy of the cluster
			a.ClusterSpecifier = &routev3.RouteAction_ClusterHeader{ClusterHeader: header.Upstream}
		}
		if firstByte > 0 {
			// A stream's first attempt with a fallback: Envoy's per-try
			// timeout, which fires only before the answer starts, is its
			// first-byte timeout; this router makes no retry (the
			// client-facing one moves on).
			a.RetryPolicy = &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0), PerTryTimeout: durationpb.New(firstByte)}
		}
		return &routev3.Route_Route{Route: a}
	}
	strip := []string{header.Cluster, header.Plan, header.Rewritten, header.ClientPath, header.Upstream, header.Workspace, header.FirstByte, "x-forwarded-for",
		"x-envoy-external-address", "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count"}
	firstAttempt := []*routev3.HeaderMatcher{
		{Name: "x-envoy-attempt-count", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"}}}},
		{Name: header.Rewritten, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
	}
	upstream := &routev3.HeaderMatcher{Name: header.Upstream, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	var routes []*routev3.Route
	// The workspace-key routes are there whether or not a workspace has a
	// key for this provider yet: a key added later then changes clusters
	// and secrets only, never the listener (whose pooled connections would
	// keep the old routes until Envoy drains them).
	for _, byok := range []bool{true, false} {
		suffix, extra := "", []*routev3.HeaderMatcher(nil)
		if byok {
			suffix, extra = "_workspace_key", []*routev3.HeaderMatcher{upstream}
		}
		for _, fb := range e.FirstByte {
			ms := strconv.FormatInt(fb.Milliseconds(), 10)
			match := append(append([]*routev3.HeaderMatcher{}, firstAttempt...), extra...)
			match = append(match, &routev3.HeaderMatcher{Name: header.FirstByte, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ms}}}})
			routes = append(routes, &routev3.Route{
				Name:                   "first_attempt_rewritten_first_byte_" + ms + "ms" + suffix,
				Match:                  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: match},
				Action:                 action(byok, fb),
				TypedPerFilterConfig:   map[string]*anypb.Any{ExtProcFilterName: off},
				RequestHeadersToRemove: strip,
			})
		}
		routes = append(routes,
			&routev3.Route{
				Name: "first_attempt_rewritten" + suffix,
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: append(append([]*routev3.HeaderMatcher{}, firstAttempt...), extra...)},
				Action:                 action(byok, 0),
				TypedPerFilterConfig:   map[string]*anypb.Any{ExtProcFilterName: off},
				RequestHeadersToRemove: strip,
			},
			&routev3.Route{
				Name:                   "attempt" + suffix,
				Match:                  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: extra},
				Action:                 action(byok, 0),
				RequestHeadersToRemove: strip,
			})
	}
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: e.Listener,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:         e.Listener,
			VirtualHosts: []*routev3.VirtualHost{{Name: e.Provider, Domains: []string{"*"}, Routes: routes}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			epf,
			{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}},
		},
		LocalReplyConfig: lrc,
	}
	keys, err := credentialStrip(ir)
	if err != nil {
		return nil, err
	}
	if keys != nil {
		hcm.HttpFilters = append([]*hcmv3.HttpFilter{keys}, hcm.HttpFilters...)
	}
	hcmAny, err := toAny(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:                          e.Listener,
		ListenerSpecifier:             &listenerv3.Listener_InternalListener{InternalListener: &listenerv3.Listener_InternalListenerConfig{}},
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(uint32(ir.Failover.MaxRequestBytes + bufferSlack)),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}, nil
}

// retryPolicy resends a request that failed before its answer started:
// connection failures and resets, 5xx, 429, attempts that got no
// response headers within the attempt timeout, and a prompt too long for
// the attempt's model when a later one has a larger window. The ext_proc
// filter lowers the number of retries per request (x-envoy-max-retries) to
// the length of its attempt list.
func retryPolicy(f Failover) (*routev3.RetryPolicy, error) {
	rp, err := retryPriority()
	if err != nil {
		return nil, err
	}
	return &routev3.RetryPolicy{
		RetryPriority: rp,
		RetryOn:       "5xx,reset,connect-failure,retriable-status-codes,retriable-headers",
		// 401, 403: stellwerk's credential, not the client's; 404: a model
		// the provider does not serve, stellwerk having chosen the path.
		RetriableStatusCodes: []uint32{429, 401, 403, 404},
		// A prompt too long for the attempt's model, when the plan has a
		// larger one: the egress filter says so on the answer.
		RetriableHeaders: []*routev3.HeaderMatcher{{Name: header.Overflow,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}},
		NumRetries:    wrapperspb.UInt32(uint32(f.MaxAttempts - 1)),
		PerTryTimeout: durationpb.New(f.AttemptTimeout),
		// Each retry goes to another provider: there is nothing to back off from.
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(2e6), MaxInterval: durationpb.New(10e6)},
	}, nil
}

// firstAttemptLogName is the gRPC access log of first attempts' failures.
const firstAttemptLogName = "stellwerk_first_attempts"

// firstAttemptFlags are Envoy's response flags of an attempt that got no
// answer (%RESPONSE_FLAGS%): the log reports such an attempt whatever its
// status.
var firstAttemptFlags = []string{"UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "URX", "SI"}

// firstAttemptLog is the client-facing router's upstream log of the first
// attempts the edge rewrote itself, when they failed (429, 5xx, or no
// answer): Envoy streams each entry at once over the gRPC access log
// service to stellwerk, which records the failure in the provider's health
// and for the routing object (extproc/upstreamlog.go). Such an attempt's
// egress listener runs no stellwerk filter, so this is how its failures are
// learned; its answers the client-facing filter reads itself. The filter
// keeps every other attempt out of the log: those have an egress filter.
func firstAttemptLog(ep ExtProc) (*accesslogv3.AccessLog, error) {
	cfg, err := toAny(&grpcalsv3.HttpGrpcAccessLogConfig{
		CommonConfig: &grpcalsv3.CommonGrpcAccessLogConfig{
			LogName: firstAttemptLogName,
			GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ep.Cluster}},
			},
			TransportApiVersion: corev3.ApiVersion_V3,
			// No batching: a failure should cool its provider before the
			// next request is decided.
			BufferSizeBytes: wrapperspb.UInt32(0),
		},
		AdditionalRequestHeadersToLog:  []string{header.Plan, header.Rewritten, header.Workspace, header.FirstByte, "x-envoy-attempt-count"},
		AdditionalResponseHeadersToLog: []string{"retry-after", header.UpstreamFlags, header.FirstModel},
	})
	if err != nil {
		return nil, err
	}
	present := func(name string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{
			Header: &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}}
	}
	status := func(op accesslogv3.ComparisonFilter_Op, v uint32, key string) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
			Comparison: &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: v, RuntimeKey: "stellwerk.first_attempt_log." + key}}}}}
	}
	first := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{
		Header: &routev3.HeaderMatcher{Name: "x-envoy-attempt-count", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"}}}}}}}
	failed := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: []*accesslogv3.AccessLogFilter{
		status(accesslogv3.ComparisonFilter_EQ, 429, "rate_limited"),
		status(accesslogv3.ComparisonFilter_EQ, 401, "credential_refused"),
		status(accesslogv3.ComparisonFilter_EQ, 403, "credential_forbidden"),
		status(accesslogv3.ComparisonFilter_EQ, 404, "model_not_found"),
		status(accesslogv3.ComparisonFilter_GE, 500, "server_error"),
		{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: firstAttemptFlags}}},
	}}}}
	// A first attempt the edge rewrote: through its egress listener (the
	// header present), or straight to its provider (a first-attempt
	// cluster, firstattempt.go). The filters run in order and stop at the
	// first false: CEL only for failed first attempts.
	direct, err := celFilter(`xds.cluster_name.startsWith("` + header.FirstClusterPrefix + `")`)
	if err != nil {
		return nil, err
	}
	rewritten := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{
		Filters: []*accesslogv3.AccessLogFilter{present(header.Rewritten), direct}}}}
	return &accesslogv3.AccessLog{
		Name:       "envoy.access_loggers.http_grpc",
		Filter:     &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{first, failed, rewritten}}}},
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: cfg},
	}, nil
}
