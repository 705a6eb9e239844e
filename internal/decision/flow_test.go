package decision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/health"
)

// routeTable is a fixed set of compiled flows, as flowstore.Table serves
// them: name → version → flow, with version 0 the live one.
type routeTable map[string]map[int64]*flow.Flow

func (rt routeTable) Resolve(name string, version int64) (*flow.Flow, error) {
	vs, ok := rt[name]
	if !ok {
		return nil, &flowstore.ResolveError{Route: name, Version: version, Err: flowstore.ErrNoRoute}
	}
	f, ok := vs[version]
	if !ok && version == 0 {
		return nil, &flowstore.ResolveError{Route: name, Err: flowstore.ErrNotDeployed}
	}
	if !ok {
		return nil, &flowstore.ResolveError{Route: name, Version: version, Err: flowstore.ErrNoVersion}
	}
	return f, nil
}

// routeRouter has an EU and a US provider, the shipped policy library and
// the routes of the test below.
func routeRouter(t testing.TB) *Router {
	t.Helper()
	r, c := libraryRouter(t, `
routing: {default_model: small}
currency: {usd_to_eur: 1}
providers:
  - {name: eu, base_url: "http://127.0.0.1:9001/v1", residency: eu}
  - {name: us, base_url: "http://127.0.0.1:9002/v1", residency: us}
models:
  - {id: big, provider: eu, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 15}, quality: {default: 0.9}}
  - {id: mid, provider: eu, context_window: 8000, price: {input_per_mtok: 0.5, output_per_mtok: 1.5}, quality: {default: 0.7}}
  - {id: small, provider: eu, context_window: 8000, price: {input_per_mtok: 0.1, output_per_mtok: 0.3}, quality: {default: 0.5}}
  - {id: sonnet, provider: us, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 15}, quality: {default: 0.95}}
workspaces:
  - {name: default}
`)
	env := flow.EnvFor(c, r.Catalog)
	load := func(version int64, doc string) *flow.Flow {
		f, err := flow.Load("test", []byte(doc), env)
		if err != nil {
			t.Fatal(err)
		}
		f.Version = version
		return f
	}
	support := load(2, `
route: support
nodes:
  - {id: plan, if: 'metadata.?plan.orValue("") == "paid"', then: strong, else: economy}
  - {id: strong, chain: [sonnet-node, big-node]}
  - {id: sonnet-node, model: sonnet}
  - {id: big-node, model: big}
  - {id: economy, model: auto, objective: cost, deny: [small]}
`)
	r.Routes = routeTable{
		"support":   {0: support, 2: support, 1: load(1, "route: support\nnodes: [{id: only, model: mid}]\n")},
		"closed":    {1: load(1, "route: closed\nnodes: [{id: shut, end: {status: 503, message: closed for maintenance}}]\n")},
		"us-only":   {0: load(1, "route: us-only\nnodes: [{id: s, model: sonnet}]\n")},
		"us-strict": {0: load(1, "route: us-strict\nnodes: [{id: s, model: sonnet, on_unavailable: refuse}]\n")},
	}
	return r
}

// TestRouteTargets: a route's targets are tried in order under the
// policy; the first the policy allows serves, the rest are its failover.
func TestRouteTargets(t *testing.T) {
	r := routeRouter(t)
	body := func(model, extra string) []byte {
		return []byte(`{"model":"` + model + `","max_tokens":10,` + extra + `"messages":[{"role":"user","content":"hello there"}]}`)
	}
	cases := map[string]struct {
		body      []byte
		model     string
		fallbacks []string
		path      string
		reason    []string // substrings of the reason
		served    string   // Outcome.Served; "" for flow.ServedTarget
	}{
		"paid: the chain's first": {body: body("route:support", `"metadata":{"plan":"paid"},`), model: "sonnet", fallbacks: []string{"big"},
			path: "support@2: plan → strong", reason: []string{"route support@2: plan → strong: sonnet"}},
		"free: auto target, its objective and deny list": {body: body("route:support", ""), model: "mid", fallbacks: []string{"sonnet", "big"}, // other providers first
			path: "support@2: plan → economy", reason: []string{"cheapest"}},
		"pinned version": {body: body("route:support@1", ""), model: "mid", path: "support@1: only"},
		"excluded pinned target: the chain's next serves": {body: body("route:support", `"metadata":{"plan":"paid"},"policy":{"residency":"eu"},`),
			model: "big", path: "support@2: plan → strong",
			reason: []string{"sonnet excluded by policy (residency:", "fallback big"}},
		"every target excluded: auto": {body: body("route:us-only", `"policy":{"residency":"eu"},`), model: "small", // the workspace default
			path: "us-only@1: s", reason: []string{"sonnet excluded by policy", "no target of the route can serve, chosen as for auto"},
			served: flow.ServedFallback},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Body: tc.body, DecisionID: "d1",
				Principal: auth.Principal{Workspace: "default"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Selection.Model.ID; got != tc.model {
				t.Errorf("chose %s (%s), want %s", got, res.Selection.Reason, tc.model)
			}
			if got := ids(res.Selection.Fallbacks); tc.fallbacks != nil && !slices.Equal(got, tc.fallbacks) {
				t.Errorf("fallbacks %v, want %v", got, tc.fallbacks)
			}
			if want := cmpOr(tc.served, flow.ServedTarget); res.Route.Served != want {
				t.Errorf("served %q, want %q", res.Route.Served, want)
			}
			if got := res.Route.Explain(); got != tc.path {
				t.Errorf("path %q, want %q", got, tc.path)
			}
			for _, s := range tc.reason {
				if !strings.Contains(res.Selection.Reason, s) {
					t.Errorf("reason %q lacks %q", res.Selection.Reason, s)
				}
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestRouteRefusesFallback: a target node with on_unavailable: refuse is
// never served as auto: 403 when the policy excluded its targets, 503
// (with Retry-After) when they cool down; the other arm's model never
// answers an experiment's arm (the experimentation probe).
func TestRouteRefusesFallback(t *testing.T) {
	r := routeRouter(t)
	route := func(policy string) (*Result, error) {
		return r.Route(context.Background(), Request{Path: "/v1/chat/completions", DecisionID: "d1", Principal: auth.Principal{Workspace: "default"},
			Body: []byte(`{"model":"route:us-strict",` + policy + `"messages":[{"role":"user","content":"hello there"}]}`)})
	}
	res, err := route("")
	if err != nil || res.Selection.Model.ID != "sonnet" || res.Route.Served != flow.ServedTarget {
		t.Fatalf("allowed: %v, %+v", err, res)
	}
	_, err = route(`"policy":{"residency":"eu"},`)
	e := apierr.As(err)
	if err == nil || apierr.HTTPStatus(e) != 403 || e.Code != "route_target_excluded" ||
		!strings.Contains(e.Message, "sonnet excluded by policy (residency:") || !strings.Contains(e.Message, "on_unavailable: refuse") {
		t.Fatalf("excluded: %v", err)
	}
	r.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Minute})
	r.Health.Failed(health.Target{Provider: "us"}, "boom", 0)
	_, err = route("")
	e = apierr.As(err)
	if err == nil || apierr.HTTPStatus(e) != 503 || e.Code != "route_target_unavailable" || e.RetryAfter <= 0 {
		t.Fatalf("cooling down: %v (%+v)", err, e)
	}
	// Without on_unavailable: refuse, the same cooldown falls back.
	res, err = r.Route(context.Background(), Request{Path: "/v1/chat/completions", DecisionID: "d1", Principal: auth.Principal{Workspace: "default"},
		Body: []byte(`{"model":"route:us-only","messages":[{"role":"user","content":"hello there"}]}`)})
	if err != nil || res.Route.Served != flow.ServedFallback {
		t.Fatalf("default: %v, %+v", err, res)
	}
}

func ids(ms []*catalog.Model) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// TestRouteRefusals: what a route cannot serve is answered before any
// provider is chosen, with the documented status and code.
func TestRouteRefusals(t *testing.T) {
	r := routeRouter(t)
	cases := map[string]struct {
		model     string
		principal auth.Principal
		header    string
		extra     string
		status    int
		code      string
	}{
		"no such route":          {model: "route:nope", status: 404, code: "route_not_found"},
		"no such version":        {model: "route:support@9", status: 404, code: "route_not_found"},
		"nothing deployed":       {model: "route:closed", status: 503, code: "route_unavailable"},
		"end node":               {model: "route:closed@1", status: 503, code: "route_ended"},
		"key without the route":  {model: "route:support", principal: auth.Principal{Routes: []string{"other"}}, status: 404, code: "route_not_found"},
		"malformed reference":    {model: "route:support@x", status: 400, code: "invalid_route"},
		"metadata twice":         {model: "route:support", header: `{"plan":"paid"}`, extra: `"metadata":{"plan":"paid"},`, status: 400, code: "invalid_metadata"},
		"metadata header broken": {model: "route:support", header: `{"plan":1}`, status: 400, code: "invalid_metadata"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.principal.Workspace = "default"
			_, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: tc.principal, MetadataHeader: tc.header,
				Body: []byte(`{"model":"` + tc.model + `",` + tc.extra + `"messages":[{"role":"user","content":"hi"}]}`)})
			e := apierr.As(err)
			if err == nil || apierr.HTTPStatus(e) != tc.status || e.Code != tc.code {
				t.Fatalf("got %v, want %d %s", err, tc.status, tc.code)
			}
		})
	}
	// Without routes configured, a route reference is not found.
	r.Routes = nil
	_, err := r.Route(context.Background(), Request{Body: []byte(`{"model":"route:support","messages":[{"role":"user","content":"hi"}]}`)})
	if e := apierr.As(err); e.Code != "route_not_found" {
		t.Fatalf("no routes: %v", err)
	}
}

// TestRouteMetadataHeader: the header's metadata is what conditions read.
func TestRouteMetadataHeader(t *testing.T) {
	r := routeRouter(t)
	res, err := r.Route(context.Background(), Request{Principal: auth.Principal{Workspace: "default"}, MetadataHeader: `{"plan":"paid"}`,
		Body: []byte(`{"model":"route:support","messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Route.Path); got != "[plan strong]" {
		t.Fatalf("path %s, want the paid branch", got)
	}
}

// BenchmarkRouteNamed is the whole decision (parse, classify, policy,
// select) for the same request by model auto and by a named route whose
// condition sends it through a chain of two pinned targets: the difference
// is what a route adds to a request.
func BenchmarkRouteNamed(b *testing.B) {
	r := routeRouter(&testing.T{})
	for _, model := range []string{"auto", "route:support"} {
		body := []byte(`{"model":"` + model + `","metadata":{"plan":"paid"},"max_tokens":10,"messages":[{"role":"user","content":"` +
			strings.Repeat("Where is my parcel? It was due on Monday. ", 40) + `"}]}`)
		b.Run(strings.TrimPrefix(model, "route:"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Route(context.Background(), Request{Body: body, DecisionID: "d", Principal: auth.Principal{Workspace: "default"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRouteToARetiredModel (the catalog probe): a route's live version
// that a reload left serving (the last that loaded) names a model the
// catalog no longer has; it is broken, 503 route_unavailable, as on a
// replica started since. It was served as auto, and a route pinned to an
// EU model went to a US provider.
func TestRouteToARetiredModel(t *testing.T) {
	r := routeRouter(t)
	// The version loaded while the catalog still had "old".
	old, c := libraryRouter(t, `
routing: {default_model: old}
providers:
  - {name: eu, base_url: "http://127.0.0.1:9001/v1", residency: eu}
models:
  - {id: old, provider: eu, context_window: 8000}
workspaces:
  - {name: default}
`)
	f, err := flow.Load("eu", []byte("route: eu\nnodes: [{id: pinned, model: old}]\n"), flow.EnvFor(c, old.Catalog))
	if err != nil {
		t.Fatal(err)
	}
	f.Version = 1
	r.Routes.(routeTable)["eu"] = map[int64]*flow.Flow{0: f, 1: f}
	_, err = r.Route(context.Background(), Request{Path: "/v1/chat/completions", DecisionID: "d1", Principal: auth.Principal{Workspace: "default"},
		Body: []byte(`{"model":"route:eu","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`)})
	var e *apierr.Error
	if !errors.As(err, &e) || apierr.HTTPStatus(e) != 503 || e.Code != "route_unavailable" || !strings.Contains(e.Message, `"old"`) {
		t.Errorf("a route naming a retired model: %v; want 503 route_unavailable naming it", err)
	}
}
