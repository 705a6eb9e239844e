package xds

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/header"
)

// corsExposed are the answer's headers a browser app may read: stellwerk's
// own, the request ids and the retry and rate-limit headers the OpenAI
// and Anthropic SDKs act on.
var corsExposed = []string{
	header.DecisionID, header.Model, header.Provider, header.Reason, header.PolicyVersion, header.Route, header.RouteArm,
	header.BudgetWarning, header.Attempts, header.FallbackFrom,
	header.RequestID, header.AnthropicRequestID, "retry-after", "retry-after-ms", "x-should-retry",
	"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
	"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
}

// corsHTTPFilter is Envoy's CORS filter, placed before stellwerk's ext_proc
// filter: it answers an allowed origin's preflight itself, so the OPTIONS
// never reaches authentication, and adds Access-Control-Allow-Origin on the
// way out to every answer of an allowed origin, stellwerk's own included.
func corsHTTPFilter() (*hcmv3.HttpFilter, error) {
	a, err := toAny(&corsv3.Cors{})
	if err != nil {
		return nil, err
	}
	return &hcmv3.HttpFilter{Name: wellknown.CORS, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}, nil
}

// corsPolicy is the virtual host's policy for the CORS filter.
//
// The allowed headers are the ones the preflight asks for (Envoy echoes
// Access-Control-Request-Headers for "*"): the SDKs add x-stainless-*
// headers from release to release, and a list would break browser apps
// on the next one. It is safe because credentials are not allowed: the
// browser sends no cookie, and a page can send only a key it holds.
// Origins that are not allowed get no CORS header, and their preflight
// goes on to stellwerk, which refuses it as before (405, or 401 in keys
// mode): the browser sends nothing more.
func corsPolicy(origins []string) (*anypb.Any, error) {
	p := &corsv3.CorsPolicy{
		AllowMethods:     "GET, POST, OPTIONS",
		AllowHeaders:     "*",
		ExposeHeaders:    strings.Join(corsExposed, ", "),
		MaxAge:           "600",
		AllowCredentials: wrapperspb.Bool(false),
		// A page of an allowed origin may call a gateway on loopback or
		// the LAN (Chrome's Private Network Access preflight).
		AllowPrivateNetworkAccess: wrapperspb.Bool(true),
	}
	for _, o := range origins {
		m := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}}
		if o == "*" {
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: ""}
		}
		p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, m)
	}
	return toAny(p)
}

// corsRoute matches a browser's request (one with an Origin) before
// stellwerk routed it. The CORS filter acts only on a route that forwards:
// on the unrouted route, a direct response, it did nothing. After the
// ext_proc filter a routed request matches the provider route; one it did
// not route (which it never lets happen) has no cluster here and gets a
// 404, as on the unrouted route.
func corsRoute(timeout *durationpb.Duration) *routev3.Route {
	return &routev3.Route{
		Name: "browser",
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
			Headers: []*routev3.HeaderMatcher{{
				Name:                 "origin",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true},
			}},
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier:            &routev3.RouteAction_ClusterHeader{ClusterHeader: header.Cluster},
			ClusterNotFoundResponseCode: routev3.RouteAction_NOT_FOUND,
			Timeout:                     timeout,
		}},
		RequestHeadersToRemove: []string{header.Cluster, "x-forwarded-for", "x-envoy-external-address"},
	}
}
