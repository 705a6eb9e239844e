package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/header"
)

// oneRoute serves one compiled flow as the live version of its route.
type oneRoute struct{ f *flow.Flow }

func (o oneRoute) Resolve(name string, _ int64) (*flow.Flow, error) {
	if name != o.f.Name {
		return nil, &flowstore.ResolveError{Route: name, Err: flowstore.ErrNoRoute}
	}
	return o.f, nil
}

// TestRouteAnswer: a request naming a route gets the route on its answer
// (header and routing object), in its audit record with the path and the
// split arm, in the route's counters and on its spend row (the name,
// grouped by FinOps per route); an end node's refusal names the route too.
func TestRouteAnswer(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: a}
currency: {usd_to_eur: 1}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {env: P_KEY}}]
models:
  - {id: a, provider: p, context_window: 8000, price: {input_per_mtok: 2, output_per_mtok: 10}}
  - {id: b, provider: p, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 5}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(string) string { return "sk-p" })
	f, err := flow.Load("t", []byte(`route: support
nodes:
  - {id: gate, if: 'metadata.?plan.orValue("") != "closed"', then: ab, else: shut}
  - id: ab
    split: {arms: [{name: only, weight: 1, next: b-node}, {name: never, weight: 0, next: a-node}]}
  - {id: a-node, model: a}
  - {id: b-node, model: b}
  - {id: shut, end: {status: 503, message: closed for maintenance}}
`), flow.EnvFor(c, st.Router.Catalog))
	if err != nil {
		t.Fatal(err)
	}
	f.Version = 3
	st.Router.Routes = oneRoute{f}
	st.RouteCounters = &flow.Counters{}
	l, _ := testAuditLog(t, true)
	st.Audit = l
	spent := &rowsRecorder{}
	st.Spend = spent

	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "dec-route"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	if r := p.handle(bodyMsg(`{"model":"route:support","messages":[{"role":"user","content":"hi"}]}`)); r.GetImmediateResponse() != nil {
		t.Fatalf("refused: %s", r.GetImmediateResponse().Body)
	}
	rh := p.handle(respHeadersMsg("200", "application/json"))
	hs := setHeaders(rh.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if got := hs[header.Route]; got != "support@3" {
		t.Errorf("%s: %q, want support@3", header.Route, got)
	}
	if got := hs[header.RouteArm]; got != "ab/only" {
		t.Errorf("%s: %q, want ab/only", header.RouteArm, got)
	}
	rb := p.handle(respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}`, true))
	body := rb.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if r := gjson.GetBytes(body, "routing.route"); r.Get("label").Str != "support@3" || r.Get("path").Raw != `["gate","ab","b-node"]` ||
		r.Get("arm").Str != "ab/only" || r.Get("served").Str != "target" || gjson.GetBytes(body, "routing.model").Str != "b" {
		t.Errorf("routing object: %s", body)
	}
	p.finish()

	q := &edge{filter: filter{state: st, log: zap.NewNop(), id: "dec-shut"}, ctx: context.Background()}
	q.handle(headersMsg("POST", "/v1/chat/completions", false))
	r := q.handle(bodyMsg(`{"model":"route:support","metadata":{"plan":"closed"},"messages":[{"role":"user","content":"hi"}]}`))
	ir := r.GetImmediateResponse()
	if ir == nil || ir.Status.Code != 503 || gjson.GetBytes(ir.Body, "error.code").Str != "route_ended" ||
		setHeaders(ir.Headers)[header.Route] != "support@3" {
		t.Fatalf("end node: %v", r)
	}
	q.finish()

	recs := recordsOf(t, l)
	if rr := recs["dec-route"]; len(rr) != 1 || rr[0].Route == nil || rr[0].Route.Name != "support" || rr[0].Route.Version != 3 ||
		strings.Join(rr[0].Route.Path, " ") != "gate ab b-node" || rr[0].Route.Arm != "ab/only" || rr[0].Served != "b" ||
		rr[0].Route.Served != flow.ServedTarget {
		t.Errorf("audit record of the routed request: %+v", rr)
	}
	if rr := recs["dec-shut"]; len(rr) != 1 || rr[0].Route == nil || rr[0].ErrorCode != "route_ended" || rr[0].Status != 503 ||
		rr[0].Route.Served != flow.ServedNone {
		t.Errorf("audit record of the refused request: %+v", rr)
	}
	if len(spent.rows) != 1 || spent.rows[0].Route != "support" || spent.rows[0].DecisionID != "dec-route" || spent.rows[0].Model != "b" {
		t.Errorf("spend rows (one, for the routed request, with its route): %+v", spent.rows)
	}
	rows := st.RouteCounters.Snapshot()
	if len(rows) != 2 || rows[0].Arm != "" || rows[0].Errors != 1 || rows[0].Served != flow.ServedNone ||
		rows[1].Arm != "ab/only" || rows[1].Served != flow.ServedTarget || rows[1].Requests != 1 || rows[1].Errors != 0 || rows[1].Cost == 0 {
		t.Errorf("counters: %+v", rows)
	}
}
