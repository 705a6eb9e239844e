package xds

import (
	"slices"
	"sync"

	"cel.dev/cel-go/cel"
	celexpr "cel.dev/expr"
	"strings"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	compositev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/composite/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	codecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	subsetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/subset/v3"
	previousv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stellwerk/stellwerk/internal/header"
)

// The first attempt without the internal listener (docs/failover.md).
// A JSON request whose first attempt the client-facing filter rewrote goes
// to its provider's first-attempt cluster: an aggregate cluster whose first
// priority is the provider's own cluster and whose next ones are failover
// clusters, one per retry (attemptCluster). The route's retry priority
// (previous_priorities) moves each retry to the next priority, so the
// first attempt goes from the client-facing router straight to the
// provider, and the n-th attempt to the egress listener of the plan's n-th
// provider. That saves the first attempt a second connection manager and
// router pass.
//
// What the retries' egress listeners read from headers (the plan, the
// client's path, the workspace) travels in dynamic metadata instead: the
// cluster's upstream filters add it as headers to every attempt but the
// first, so the first provider never gets them. An aggregate cluster's
// upstream filters are its own, not its members', so they also inject the
// provider's credential; the egress listeners remove every provider's
// credential header on arrival (credentialStrip), so a retry carries no
// key but the one its own provider's cluster injects.

// firstAttemptCluster is one provider's first-attempt cluster.
func firstAttemptCluster(f Failover, fa FirstAttempt) (*clusterv3.Cluster, error) {
	members := []string{fa.Cluster.Name}
	for n := 2; n <= f.MaxAttempts; n++ {
		members = append(members, header.FailoverAttempt(n))
	}
	agg, err := toAny(&aggregatev3.ClusterConfig{Clusters: members})
	if err != nil {
		return nil, err
	}
	// The protocol is the member's (Envoy takes it from the picked host's
	// cluster); the aggregate must still name one, and one that needs no
	// ALPN, as it has no transport socket of its own.
	opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
	}}}
	var fs []*hcmv3.HttpFilter
	if c := fa.Cluster.Credential; c != nil {
		cfs, err := upstreamFilters(c, false) // standalone only
		if err != nil {
			return nil, err
		}
		fs = cfs[:len(cfs)-1] // the credential; the codec ends the chain below
	}
	retry, err := retryHeadersFilter()
	if err != nil {
		return nil, err
	}
	model, err := answerModelFilter()
	if err != nil {
		return nil, err
	}
	codec, err := toAny(&codecv3.UpstreamCodec{})
	if err != nil {
		return nil, err
	}
	opts.HttpFilters = append(fs, retry, model, &hcmv3.HttpFilter{Name: "envoy.filters.http.upstream_codec", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: codec}})
	po, err := toAny(opts)
	if err != nil {
		return nil, err
	}
	unlimited := unlimitedThresholds()
	return &clusterv3.Cluster{
		Name: fa.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{
			Name: "envoy.clusters.aggregate", TypedConfig: agg,
		}},
		ConnectTimeout:                durationpb.New(1e9),
		LbPolicy:                      clusterv3.Cluster_CLUSTER_PROVIDED,
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsKey: po},
		// Retries are counted against the route's cluster, this one.
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{unlimited}},
	}, nil
}

// attemptCluster is the failover cluster of the n-th attempt (n from 2) of
// the first-attempt clusters. The override-host balancer cannot serve as a
// member of an aggregate cluster (Envoy's aggregate balancer does not pass
// the request's stream info on, where that balancer keeps its place in the
// list), so the plan's providers travel as subset criteria, which it does
// pass: the edge names the n-th attempt's provider in
// LBNamespace/AttemptKey(n) (the NoAttempt value beyond the plan) and each
// egress listener here is labelled with AttemptKey(n) = its provider. The
// request's criteria carry a key for every attempt, so the selector over
// all of them is the one that matches; no listener has them all, and its
// fallback narrows the criteria to this attempt's key. A value no listener
// has finds no host: an attempt never reaches a provider the plan does not
// name.
func attemptCluster(f Failover, n int) (*clusterv3.Cluster, error) {
	key := header.AttemptKey(n)
	cl, err := egressCluster(f, header.FailoverAttempt(n), func(e Egress) *corev3.Metadata {
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			header.LBNamespace: {Fields: map[string]*structpb.Value{key: structpb.NewStringValue(e.Provider)}},
		}}
	})
	if err != nil {
		return nil, err
	}
	var all []string
	for i := 2; i <= f.MaxAttempts; i++ {
		all = append(all, header.AttemptKey(i))
	}
	selectors := []*subsetv3.Subset_LbSubsetSelector{{Keys: []string{key}}}
	if len(all) > 1 { // with one retry the criteria are this attempt's key alone
		selectors = append([]*subsetv3.Subset_LbSubsetSelector{
			{Keys: all, FallbackPolicy: subsetv3.Subset_LbSubsetSelector_KEYS_SUBSET, FallbackKeysSubset: []string{key}},
		}, selectors...)
	}
	cl.LoadBalancingPolicy, err = subsetPolicy(selectors)
	return cl, err
}

// The first-attempt clusters' own upstream filters are the same for every
// provider: built once (the CEL expression is parsed there).
var (
	retryHeadersFilter = sync.OnceValues(retryHeaders)
	answerModelFilter  = sync.OnceValues(answerModel)
)

// answerModel is the upstream filter that names the first attempt's model
// (dynamic metadata, from the edge) in every answer of a first-attempt
// cluster (header.FirstModel): a provider's 429 or 5xx to a first attempt
// reaches stellwerk in the upstream log's entry, whose request carries
// nothing of the decision (upstreamlog.go). The edge removes the header
// from the client's answer.
func answerModel() (*hcmv3.HttpFilter, error) {
	hm, err := toAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{ResponseMutations: []*mutationv3.HeaderMutation{{
		Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: header.FirstModel, Value: "%DYNAMIC_METADATA(" + header.MetadataNamespace + ":" + header.ModelKey + ")%"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
	}}}})
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: "stellwerk_answer_model", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: hm}}, nil
}

// retryHeaders is the upstream filter that gives an attempt bound for an
// egress listener (the picked host is an internal address) the plan, the
// client's path and the workspace from the request's dynamic metadata (an
// empty value adds no header); an attempt bound for the provider never
// gets them. By the host rather than the attempt count: a provider cluster
// with no host to offer (its name not resolved yet) hands even the first
// attempt to the next priority, a failover cluster, whose egress listener
// needs the plan. Envoy's attempts share one header map, so the headers
// stay for later attempts, which all go to egress listeners.
//
// An attempt bound for the provider instead has the headers by which the
// egress filter and Envoy tell the edge about an attempt (header.Served,
// header.UpstreamFlags, header.Overflow) removed from its answer: only they may set them,
// and a provider sending x-stellwerk-served itself had its answer
// recorded and priced as another model's of the plan (the fuzzing probe).
func retryHeaders() (*hcmv3.HttpFilter, error) {
	var ms []*mutationv3.HeaderMutation
	for _, kv := range [][2]string{{header.Plan, header.PlanKey}, {header.ClientPath, header.RewrittenKey}, {header.Workspace, header.WorkspaceKey}} {
		ms = append(ms, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: kv[0], Value: "%DYNAMIC_METADATA(" + header.MetadataNamespace + ":" + kv[1] + ")%"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}})
	}
	hm, err := toAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: ms}})
	if err != nil {
		return nil, err
	}
	action, err := toAny(&compositev3.ExecuteFilterAction{TypedConfig: &corev3.TypedExtensionConfig{
		Name: "envoy.filters.http.header_mutation", TypedConfig: hm,
	}})
	if err != nil {
		return nil, err
	}
	own, err := toAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{ResponseMutations: []*mutationv3.HeaderMutation{
		{Action: &mutationv3.HeaderMutation_Remove{Remove: header.Served}},
		{Action: &mutationv3.HeaderMutation_Remove{Remove: header.UpstreamFlags}},
		{Action: &mutationv3.HeaderMutation_Remove{Remove: header.Overflow}}, // it would have the failover route retry
	}}})
	if err != nil {
		return nil, err
	}
	strip, err := toAny(&compositev3.ExecuteFilterAction{TypedConfig: &corev3.TypedExtensionConfig{
		Name: "envoy.filters.http.header_mutation", TypedConfig: own,
	}})
	if err != nil {
		return nil, err
	}
	composite, err := toAny(&compositev3.Composite{})
	if err != nil {
		return nil, err
	}
	egress, err := upstreamIsEgress()
	if err != nil {
		return nil, err
	}
	ewm, err := toAny(&matchingv3.ExtensionWithMatcher{
		ExtensionConfig: &corev3.TypedExtensionConfig{Name: "stellwerk_retry_headers", TypedConfig: composite},
		XdsMatcher: &xdsmatcherv3.Matcher{MatcherType: &xdsmatcherv3.Matcher_MatcherList_{MatcherList: &xdsmatcherv3.Matcher_MatcherList{
			Matchers: []*xdsmatcherv3.Matcher_MatcherList_FieldMatcher{{
				Predicate: egress,
				OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{
					Name: "add_retry_headers", TypedConfig: action,
				}}},
			}},
		}},
			OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{
				Name: "strip_stellwerk_headers", TypedConfig: strip,
			}}},
		},
	})
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: "stellwerk_retry_headers", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: ewm}}, nil
}

// upstreamIsEgress is the predicate "the attempt's host is an egress
// listener": CEL over Envoy's upstream.address, which for an internal
// listener is "envoy://<listener>/" (header.EgressHost). Envoy's CEL
// matcher takes a parsed expression, so it is parsed here, once per
// snapshot.
func upstreamIsEgress() (*xdsmatcherv3.Matcher_MatcherList_Predicate, error) {
	env, err := cel.NewEnv(cel.Variable("upstream", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		return nil, err
	}
	ast, iss := env.Parse(`upstream.address.startsWith("envoy://")`)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	v1, err := cel.AstToParsedExpr(ast)
	if err != nil {
		return nil, err
	}
	// cel-go speaks the older proto package of the same message.
	b, err := proto.Marshal(v1)
	if err != nil {
		return nil, err
	}
	parsed := &celexpr.ParsedExpr{}
	if err := proto.Unmarshal(b, parsed); err != nil {
		return nil, err
	}
	input, err := toAny(&xdsmatcherv3.HttpAttributesCelMatchInput{})
	if err != nil {
		return nil, err
	}
	m, err := toAny(&xdsmatcherv3.CelMatcher{ExprMatch: &xdstypev3.CelExpression{CelExprParsed: parsed}})
	if err != nil {
		return nil, err
	}
	return &xdsmatcherv3.Matcher_MatcherList_Predicate{MatchType: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate{
			Input: &xdscorev3.TypedExtensionConfig{Name: "envoy.matching.inputs.cel_data_input", TypedConfig: input},
			Matcher: &xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate_CustomMatch{CustomMatch: &xdscorev3.TypedExtensionConfig{
				Name: "envoy.matching.matchers.cel_matcher", TypedConfig: m,
			}},
		},
	}}, nil
}

// credentialStrip is an egress listener's first filter: it removes every
// provider's credential header, so a retry of a first attempt that went
// straight to its provider (whose cluster injected that provider's key)
// reaches neither stellwerk's filter nor the next provider with it. Nil
// when no provider has a credential header.
func credentialStrip(ir IR) (*hcmv3.HttpFilter, error) {
	var names []string
	for _, c := range ir.Clusters {
		if cr := c.Credential; cr != nil && !slices.Contains(names, strings.ToLower(cr.Header)) {
			names = append(names, strings.ToLower(cr.Header))
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	var ms []*mutationv3.HeaderMutation
	for _, n := range names {
		ms = append(ms, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: n}})
	}
	hm, err := toAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: ms}})
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.header_mutation", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: hm}}, nil
}

// retryPriority moves each retry to the next priority of a first-attempt
// cluster; on the failover cluster (one priority) it changes nothing.
func retryPriority() (*routev3.RetryPolicy_RetryPriority, error) {
	a, err := toAny(&previousv3.PreviousPrioritiesConfig{UpdateFrequency: 1})
	if err != nil {
		return nil, err
	}
	return &routev3.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.previous_priorities",
		ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: a}}, nil
}
