package xds

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/header"
)

// routeConfig forwards a request to the cluster named by the routing header
// that only stellwerk sets. A request that reaches the router without it
// (which stellwerk never lets happen) gets a 404 rather than a default route.
func routeConfig(ir IR) (*routev3.RouteConfiguration, error) {
	noRoute := apierr.NotFound("unknown_url", "", "no route: the request was not routed by stellwerk")
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: header.Cluster},
		Timeout:          durationpb.New(ir.RequestTimeout),
	}
	if ir.Failover != nil {
		rp, err := retryPolicy(*ir.Failover)
		if err != nil {
			return nil, err
		}
		action.RetryPolicy = rp
	}
	vh := &routev3.VirtualHost{
		Name:    "stellwerk",
		Domains: []string{"*"},
		// stellwerk reads how many attempts a request took.
		IncludeAttemptCountInResponse: ir.Failover != nil,
		// The egress listener of the first attempt knows it by the count.
		IncludeRequestAttemptCount: ir.Failover != nil,
		Routes: []*routev3.Route{
			{
				Name: "provider",
				Match: &routev3.RouteMatch{
					PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{{
						Name:                 header.Cluster,
						HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
					}},
				},
				Action: &routev3.Route_Route{Route: action},
				// The routing header is for Envoy only, and a third-party
				// provider has no business with the client's address.
				RequestHeadersToRemove: []string{header.Cluster, "x-forwarded-for", "x-envoy-external-address"},
			},
			{
				Name:  "unrouted",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
					Status: uint32(apierr.HTTPStatus(noRoute)),
					Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: noRoute.JSON()}},
				}},
				ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
					Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				}},
			},
		},
	}
	if l := ir.Listener; l != nil && len(l.CORSAllowOrigins) > 0 {
		cp, err := corsPolicy(l.CORSAllowOrigins)
		if err != nil {
			return nil, err
		}
		vh.TypedPerFilterConfig = map[string]*anypb.Any{wellknown.CORS: cp}
		vh.Routes = slices.Insert(vh.Routes, 1, corsRoute(action.Timeout))
	}
	return &routev3.RouteConfiguration{Name: RouteConfigName, VirtualHosts: []*routev3.VirtualHost{vh}}, nil
}
