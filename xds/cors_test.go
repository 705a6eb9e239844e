package xds

import (
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/stellwerk/stellwerk/internal/header"
)

// listenerFilters are the client-facing listener's HTTP filter names and
// its route configuration.
func listenerFilters(t *testing.T, ir IR) ([]string, *routev3.RouteConfiguration) {
	t.Helper()
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := res.Listeners[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	return names, res.Routes[0]
}

// TestNoCORSByDefault: without envoy.cors the listener is what it was: no
// CORS filter, no browser route, no policy (the golden file is unchanged).
func TestNoCORSByDefault(t *testing.T) {
	names, rc := listenerFilters(t, testIR(t))
	if slices.Contains(names, wellknown.CORS) {
		t.Errorf("filters without CORS: %v", names)
	}
	vh := rc.GetVirtualHosts()[0]
	if len(vh.GetTypedPerFilterConfig()) != 0 || len(vh.GetRoutes()) != 2 {
		t.Errorf("virtual host without CORS: %v", vh)
	}
}

// TestCORSFilterBeforeExtProc: with allowed origins, Envoy's CORS filter
// comes before stellwerk's ext_proc filter (a preflight is answered before
// authentication), the virtual host carries the policy, and a request with
// an Origin matches a forwarding route before stellwerk routed it (the
// filter does nothing on the unrouted route's direct response).
func TestCORSFilterBeforeExtProc(t *testing.T) {
	ir := testIR(t)
	ir.Listener.CORSAllowOrigins = []string{"https://app.example.com", "*"}
	names, rc := listenerFilters(t, ir)
	if len(names) != 3 || names[0] != wellknown.CORS || names[1] != ExtProcFilterName || names[2] != wellknown.Router {
		t.Fatalf("filters: %v", names)
	}
	vh := rc.GetVirtualHosts()[0]
	var p corsv3.CorsPolicy
	if err := vh.GetTypedPerFilterConfig()[wellknown.CORS].UnmarshalTo(&p); err != nil {
		t.Fatal(err)
	}
	if m := p.GetAllowOriginStringMatch(); len(m) != 2 || m[0].GetExact() != "https://app.example.com" || m[1].GetPrefix() != "" || m[1].GetExact() != "" {
		t.Errorf("origins: %v", m)
	}
	if p.GetAllowCredentials().GetValue() || p.GetAllowMethods() != "GET, POST, OPTIONS" || p.GetAllowHeaders() != "*" {
		t.Errorf("policy: %v", &p)
	}
	for _, h := range []string{header.DecisionID, header.Model, header.RouteArm, header.RequestID, "retry-after", "x-ratelimit-remaining-tokens"} {
		if !slices.Contains(strings.Split(p.GetExposeHeaders(), ", "), h) {
			t.Errorf("%s is not exposed: %q", h, p.GetExposeHeaders())
		}
	}
	var routes []string
	for _, r := range vh.GetRoutes() {
		routes = append(routes, r.GetName())
	}
	if !slices.Equal(routes, []string{"provider", "browser", "unrouted"}) {
		t.Fatalf("routes: %v", routes)
	}
	br := vh.GetRoutes()[1]
	if br.GetMatch().GetHeaders()[0].GetName() != "origin" || br.GetRoute().GetClusterHeader() != header.Cluster ||
		br.GetRoute().GetClusterNotFoundResponseCode() != routev3.RouteAction_NOT_FOUND {
		t.Errorf("browser route: %v", br)
	}
}
