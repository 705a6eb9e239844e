package xds

import (
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/header"
)

const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// providerCluster is the Envoy cluster for one provider: static endpoints
// for IPs, DNS otherwise; TLS with SNI and certificate verification for
// https providers, HTTP/2 negotiated by ALPN there and HTTP/1.1 in plain
// text unless the cluster's protocol says otherwise; and the provider's
// cluster controls (clustercontrols.go).
func providerCluster(c Cluster) (*clusterv3.Cluster, error) {
	cl := &clusterv3.Cluster{
		Name:           c.Name,
		ConnectTimeout: durationpb.New(c.ConnectTimeout),
		LoadAssignment: loadAssignment(c),
	}
	switch {
	case c.StaticIP:
		cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	case len(c.Endpoints) > 1:
		// Several named endpoints: each resolved and balanced on its own.
		cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		cl.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	default:
		// LOGICAL_DNS suits large providers behind many rotating addresses.
		cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		cl.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}

	opts := &httpv3.HttpProtocolOptions{}
	if c.TLS {
		ts, err := upstreamTLS(c)
		if err != nil {
			return nil, err
		}
		cl.TransportSocket = ts
	}
	setProtocol(opts, c)
	applyControls(cl, opts, c)
	fs, err := upstreamFilters(c.Credential, c.DropIn)
	if err != nil {
		return nil, err
	}
	own, err := ownHeadersFilter()
	if err != nil {
		return nil, err
	}
	// First in the chain, so last on the answer: nothing a provider sends
	// in stellwerk's namespace gets past its cluster.
	opts.HttpFilters = append([]*hcmv3.HttpFilter{own}, fs...)
	a, err := toAny(opts)
	if err != nil {
		return nil, err
	}
	cl.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: a}
	return cl, nil
}

// ownHeadersFilter is the upstream filter that removes every x-stellwerk-*
// header from a provider's answer. The edge trusts some of them
// (header.Served, header.UpstreamFlags, header.Overflow, header.FirstModel):
// only the egress filter and Envoy may set them. On the cluster, so it
// holds on every path to a provider: a plan of one model goes to the
// provider's cluster straight from the client-facing route, where a
// provider's x-stellwerk-served: 0 on its 503 had the failure never
// recorded (the hostile-upstream probe).
func ownHeadersFilter() (*hcmv3.HttpFilter, error) {
	hm, err := toAny(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{ResponseMutations: []*mutationv3.HeaderMutation{
		{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{
			KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: header.Prefix}, IgnoreCase: true},
		}}},
	}}})
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: "stellwerk_provider_headers", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: hm}}, nil
}

// loadAssignment groups the endpoints into one locality per zone and
// priority, in the order they first appear.
func loadAssignment(c Cluster) *endpointv3.ClusterLoadAssignment {
	la := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name}
	index := map[[2]string]*endpointv3.LocalityLbEndpoints{}
	for _, e := range c.endpoints() {
		key := [2]string{e.Zone, strconv.FormatUint(uint64(e.Priority), 10)}
		loc := index[key]
		if loc == nil {
			loc = &endpointv3.LocalityLbEndpoints{Priority: e.Priority}
			if e.Zone != "" {
				loc.Locality = &corev3.Locality{Zone: e.Zone}
			}
			index[key] = loc
			la.Endpoints = append(la.Endpoints, loc)
		}
		lb := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address:  socketAddress(e.Host, e.Port),
				Hostname: c.Host,
			}},
		}
		if e.Weight > 0 {
			lb.LoadBalancingWeight = wrapperspb.UInt32(e.Weight)
		}
		loc.LbEndpoints = append(loc.LbEndpoints, lb)
	}
	// Envoy wants every endpoint of a locality weighted once one is.
	for _, loc := range la.Endpoints {
		weighted := false
		for _, lb := range loc.LbEndpoints {
			weighted = weighted || lb.LoadBalancingWeight != nil
		}
		for _, lb := range loc.LbEndpoints {
			if weighted && lb.LoadBalancingWeight == nil {
				lb.LoadBalancingWeight = wrapperspb.UInt32(1)
			}
		}
	}
	return la
}

func upstreamTLS(c Cluster) (*corev3.TransportSocket, error) {
	sni := c.sni()
	common := &tlsv3.CommonTlsContext{
		AlpnProtocols: alpn(c),
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: c.CABundle}},
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: sni}},
			}},
		}},
	}
	if t := c.Controls.TLS; t != nil {
		switch t.MinVersion {
		case "1.2":
			common.TlsParams = &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2}
		case "1.3":
			common.TlsParams = &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}
		}
		if t.ClientCertificate != "" {
			common.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.ClientCertificate}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.ClientKey}},
			}}
		}
	}
	tls := &tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: common}
	a, err := toAny(tls)
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{Name: wellknown.TransportSocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
