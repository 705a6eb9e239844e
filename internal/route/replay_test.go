package route

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/observe"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// explained is what a decision shows: the same for a replay.
type explained struct {
	Model, Reason string
	Fallbacks     []string
	Table         any
	Err           string
	Path          string
	Objective     string
	Deny          []string
}

func explain(res *Result, err error) explained {
	e := explained{Objective: res.Policy.Objective, Deny: res.Policy.Deny, Table: res.Selection.Table(), Fallbacks: ids(res.Selection.Fallbacks)}
	if res.Selection.Model != nil {
		e.Model, e.Reason = res.Selection.Model.ID, res.Selection.Reason
	}
	if err != nil {
		e.Err = apierr.As(err).Code + ": " + apierr.As(err).Message
	}
	if res.Route != nil {
		e.Path = res.Route.Explain()
	}
	return e
}

// TestReplayReproduces: a decision made on a router whose live state (a
// provider in cooldown, learned latencies, the time) differs from the
// replaying router's is decided again exactly from its recorded inputs,
// after a JSON round trip; refusals by the policy and by a route too.
func TestReplayReproduces(t *testing.T) {
	live, later := routeRouter(t), routeRouter(t)
	live.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Minute})
	live.Health.Failed(health.Target{Provider: "us"}, "boom", 0)
	// A 429 cools one model of the other provider (rate limits per model).
	live.Health.RateLimited(health.Target{Provider: "eu", Model: "small", PerModel: true}, "rate limited (429)", time.Minute)
	live.Latency = &observe.Latency{}
	for range 20 {
		live.Latency.Observe("mid", false, 40*time.Millisecond)
		live.Latency.Observe("mid", true, 900*time.Millisecond) // streams learn apart
	}
	live.Now = func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }
	later.Now = func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }

	for name, tc := range map[string]struct {
		body, header, path string
		principal          auth.Principal
		responses          string // a Responses API body, translated for the decision
	}{
		"auto":                          {body: `{"model":"auto","messages":[{"role":"user","content":"write a haiku about trains"}]}`},
		"auto, cost, tools":             {body: `{"model":"auto","policy":{"optimize":"cost"},"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"call f"}]}`},
		"pinned":                        {body: `{"model":"big","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`},
		"pinned in cooldown":            {body: `{"model":"sonnet","messages":[{"role":"user","content":"hello"}]}`},
		"route, paid":                   {body: `{"model":"route:support","metadata":{"plan":"paid"},"messages":[{"role":"user","content":"parcel?"}]}`},
		"route, header metadata":        {body: `{"model":"route:support","messages":[{"role":"user","content":"parcel?"}]}`, header: `{"plan":"paid"}`},
		"route pinned version":          {body: `{"model":"route:support@1","messages":[{"role":"user","content":"parcel?"}]}`},
		"secret: denied":                {body: `{"model":"auto","messages":[{"role":"user","content":"my key is AKIAIOSFODNN7EXAMPLE and sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"}]}`},
		"route ended":                   {body: `{"model":"route:closed@1","messages":[{"role":"user","content":"hi"}]}`},
		"key models":                    {body: `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, principal: auth.Principal{Authenticated: true, KeyID: "k", Models: []string{"small", "mid"}}},
		"embeddings":                    {path: "/v1/embeddings", body: `{"model":"auto","input":["a parcel","another"]}`},
		"completions, n=3":              {path: "/v1/completions", body: `{"model":"auto","prompt":"Once upon a time","n":3}`},
		"responses":                     {responses: `{"model":"auto","instructions":"be brief","input":"write a haiku about trains"}`},
		"responses, stored":             {responses: `{"model":"auto","input":"and then?","previous_response_id":"resp_1"}`},
		"responses, pinned, web search": {responses: `{"model":"big","input":"news","tools":[{"type":"web_search"}]}`},
	} {
		t.Run(name, func(t *testing.T) {
			tc.principal.Workspace = "default"
			if tc.path == "" {
				tc.path = "/v1/chat/completions"
			}
			req := Request{Path: tc.path, Body: []byte(tc.body), Principal: tc.principal, DecisionID: "dec-" + name,
				MetadataHeader: tc.header, Headers: map[string]string{"user-agent": "test"}, Record: true}
			if tc.responses != "" {
				body, needs, err := translate.ResponsesForDecision([]byte(tc.responses))
				if err != nil {
					t.Fatal(err)
				}
				req.Path, req.Body, req.Needs = "/v1/responses", body, needs
			}
			res, err := live.Route(context.Background(), req)
			want := explain(res, err)
			in := res.ReplayInputs(&req)
			if in == nil {
				t.Fatalf("no inputs recorded (%v)", err)
			}
			b, jerr := json.Marshal(in)
			if jerr != nil {
				t.Fatal(jerr)
			}
			var back Inputs
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			res2, err2 := later.Replay(context.Background(), &back, false)
			got := explain(res2, err2)
			if !reflect.DeepEqual(got, want) {
				gb, _ := json.MarshalIndent(got, "", " ")
				wb, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("replay differs:\n%s\nwant\n%s", gb, wb)
			}
		})
	}
}

// BenchmarkRecordInputs is what keeping a decision's replay inputs adds to
// it: the decision with and without Request.Record, the inputs completed
// (ReplayInputs) in the recorded case, with 4 models of which 2 have
// learned latencies and one provider is in cooldown.
func BenchmarkRecordInputs(b *testing.B) {
	r := routeRouter(b)
	r.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Hour, MaxCooldown: time.Hour})
	r.Health.Failed(health.Target{Provider: "us"}, "boom", 0)
	for range 20 {
		r.Latency.Observe("mid", false, 40*time.Millisecond)
		r.Latency.Observe("big", false, 900*time.Millisecond)
	}
	body := []byte(`{"model":"auto","metadata":{"plan":"paid"},"messages":[{"role":"user","content":"where is my parcel? it was due on monday"}]}`)
	for _, record := range []bool{false, true} {
		name := "plain"
		if record {
			name = "recorded"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := Request{Body: body, DecisionID: "d", Principal: auth.Principal{Workspace: "default"}, Record: record}
				res, err := r.Route(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				if record && res.ReplayInputs(&req) == nil {
					b.Fatal("nothing recorded")
				}
			}
		})
	}
}
