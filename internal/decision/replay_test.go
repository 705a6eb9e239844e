package decision

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
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
		// Each model's estimated cost counts the images and PDF pages
		// (inputs version 6): a replay without them chose by the text.
		"images, cost, max_cost": {body: mediaChat(20, "", `{"optimize":"cost","max_cost":0.04}`)},
		"pdf pages and an image": {body: mediaChat(1, pagesPDF(3), "")},
		"uncounted pdf":          {body: mediaChat(0, base64.StdEncoding.EncodeToString([]byte("%PDF-1.4\n%%EOF\n")), `{"optimize":"cost"}`)},
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

// TestLatencyLeftToTheTable: a record whose candidate table carries every
// model's latency leaves the learned ones out of its replay inputs
// (latency_from: candidates); the replay reads them back from the table,
// against the recorded catalog's seeds, and decides as the request was
// decided. Until they are read back, Replay refuses the inputs. Inputs of
// version 1, which keep their latencies, still replay.
func TestLatencyLeftToTheTable(t *testing.T) {
	live, now := latencyRouter(t, time.Hour)
	for range 5 {
		live.Latency.Observe("quick", false, 900*time.Millisecond) // slower than rival's seed: latency picks rival
	}
	later, _ := latencyRouter(t, time.Hour)
	later.Now = func() time.Time { return now.Add(24 * time.Hour) }
	req := Request{Path: "/v1/chat/completions", DecisionID: "d-lat", Record: true, Principal: auth.Principal{Workspace: "default"},
		Body: []byte(`{"model":"auto","policy":{"optimize":"latency"},"messages":[{"role":"user","content":"hello"}]}`)}
	res, err := live.Route(context.Background(), req)
	if err != nil || res.Selection.Model.ID != "rival" {
		t.Fatalf("live: %v %v, want rival", res.Selection.Model, err)
	}
	want := explain(res, nil)
	var ids []string
	var ms []int
	for _, v := range res.Selection.Table() {
		ids, ms = append(ids, v.ID), append(ms, v.LatencyMS)
	}
	in := res.ReplayInputs(&req)
	if l, ok := in.LatencyOf("quick"); !ok || l < 800 {
		t.Fatalf("the live decision read quick at %d %v", l, ok)
	}
	in.InLatencyTable()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, `"latency_from":"candidates"`) || strings.Contains(got, `"latency_ms"`) || !strings.Contains(got, `"v":7`) {
		t.Fatalf("inputs that leave their latencies to the table: %s", got)
	}

	decode := func() *Inputs {
		var back Inputs
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		return &back
	}
	if _, err := later.Replay(context.Background(), decode(), false); err == nil || !strings.Contains(err.Error(), "LatencyFromTable") {
		t.Fatalf("replay before the latencies were read back: %v, want it refused", err)
	}
	seed := func(id string) (int, bool) {
		m, ok := later.Catalog.Lookup(id)
		if !ok {
			return 0, false
		}
		return m.LatencyMS, true
	}
	back := decode()
	if err := back.LatencyFromTable(ids, ms, seed); err != nil {
		t.Fatal(err)
	}
	if len(back.LatencyMS) != 1 || back.LatencyMS["quick"] != ms[slices.Index(ids, "quick")] || back.LatencyFrom != "" {
		t.Fatalf("read back: %v from %q; want quick's learned latency alone", back.LatencyMS, back.LatencyFrom)
	}
	res2, err := later.Replay(context.Background(), back, false)
	if got := explain(res2, err); !reflect.DeepEqual(got, want) {
		t.Fatalf("replay differs:\n%+v\nwant\n%+v", got, want)
	}
	// Without the recorded seeds every latency counts as learned: the
	// same decision.
	back = decode()
	if err := back.LatencyFromTable(ids, ms, func(string) (int, bool) { return 0, false }); err != nil || len(back.LatencyMS) != 2 {
		t.Fatalf("without seeds: %v %v", back.LatencyMS, err)
	}
	if res3, err := later.Replay(context.Background(), back, false); !reflect.DeepEqual(explain(res3, err), want) {
		t.Fatalf("replay without seeds differs: %+v", explain(res3, err))
	}
	if err := decode().LatencyFromTable(nil, nil, seed); err == nil {
		t.Error("latencies read back from a record without a candidate table: no error")
	}
	odd := decode()
	odd.LatencyFrom = "elsewhere"
	if err := odd.LatencyFromTable(ids, ms, seed); err == nil {
		t.Error("latencies from an unknown place: no error")
	}

	// Version 1: the learned latencies in latency_ms, as records before
	// version 2 keep them.
	v1 := decode()
	v1.V, v1.LatencyFrom, v1.LatencyMS = 1, "", map[string]int{"quick": ms[slices.Index(ids, "quick")]}
	if got := explain(later.Replay(context.Background(), v1, false)); !reflect.DeepEqual(got, want) {
		t.Fatalf("version 1 replay differs: %+v", got)
	}
}

// TestTimingStages: a decision says how long each of its stages took, and
// together they are not longer than the call.
func TestTimingStages(t *testing.T) {
	r := routeRouter(t)
	req := Request{Path: "/v1/chat/completions", DecisionID: "d-t", Principal: auth.Principal{Workspace: "default"},
		Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"write a haiku about trains"}]}`)}
	start := time.Now()
	res, err := r.Route(context.Background(), req)
	wall := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	tm := res.Timing
	if tm.Parse <= 0 || tm.Classify <= 0 || tm.Policy <= 0 || tm.Select <= 0 {
		t.Fatalf("stages %+v: want each measured", tm)
	}
	if sum := tm.Parse + tm.Classify + tm.Policy + tm.Select; sum > wall {
		t.Fatalf("stages %+v sum to %v, longer than the call (%v)", tm, sum, wall)
	}
}

// TestDeniedRecordKnowsCredentials (a helper's finding): a request the
// policy refused had been recorded without which providers stellwerk has
// no credential for (they are read after the policy), so a what-if replay
// under a policy that lets it through chose a model stellwerk could never
// have sent it to. They are recorded on a refusal too.
func TestDeniedRecordKnowsCredentials(t *testing.T) {
	r, _ := libraryRouter(t, `
routing: {default_model: keyless}
providers:
  - {name: eu, base_url: "http://127.0.0.1:9001/v1", residency: eu}
  - {name: us, base_url: "http://127.0.0.1:9002/v1", residency: us, credential: {env: US_KEY_UNSET}}
models:
  - {id: keyless, provider: eu, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: cheap-us, provider: us, context_window: 8000, price: {input_per_mtok: 0.1, output_per_mtok: 0.1}}
`)
	req := Request{Path: "/v1/chat/completions", Principal: auth.Principal{Workspace: "default"}, DecisionID: "d", Record: true,
		Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"my key is AKIAIOSFODNN7EXAMPLE"}]}`)}
	res, err := r.Route(context.Background(), req)
	if apierr.As(err).Code != "policy_denied" {
		t.Fatalf("want the library's secrets denial: %v", err)
	}
	if in := res.ReplayInputs(&req); in == nil || !slices.Equal(in.NoCredential, []string{"us"}) {
		t.Fatalf("recorded credentials: %+v", in)
	}
}

// TestWithoutFindings: what the audit record keeps of user, metadata and
// the client's headers: values a finding was in redacted, a finding in a
// metadata key's name redacts the names (two alike keep both values), and
// maps without findings are the caller's own.
func TestWithoutFindings(t *testing.T) {
	iban := "DE89 3704 0044 0532 0130 00"
	md := map[string]string{"ref " + iban: "a", "ticket": "mail anna.schmidt@example.de", "DE44 5001 0517 5407 3249 31": "b"}
	hdrs := map[string]string{"user-agent": "bot " + iban, "x-client-app": "app"}
	c := classify.Result{PII: []classify.Finding{
		{Type: "iban", Message: -1, Field: "metadata"},
		{Type: "email", Message: -1, Field: "metadata.ticket"},
		{Type: "iban", Message: -1, Field: "headers.user-agent"},
		{Type: "email", Message: 0, Field: "content"},
	}}
	user, gotMD, gotHdrs := withoutFindings(c, "u1", md, hdrs)
	want := map[string]string{"ref [IBAN]": "a", "ticket": "mail [EMAIL]", "[IBAN]": "b"}
	if user != "u1" || !maps.Equal(gotMD, want) {
		t.Errorf("metadata %q, want %q", gotMD, want)
	}
	if gotHdrs["user-agent"] != "bot [IBAN]" || gotHdrs["x-client-app"] != "app" || hdrs["user-agent"] != "bot "+iban {
		t.Errorf("headers %q (the caller's %q)", gotHdrs, hdrs)
	}
	if _, m, h := withoutFindings(classify.Result{}, "", md, hdrs); !maps.Equal(m, md) || !maps.Equal(h, hdrs) {
		t.Error("no findings changed the maps")
	}
}

// TestNothingGoesWhereNoCredentialIs: a provider stellwerk has no
// credential for gets nothing — not a pinned model's fallback, not a place
// in model_not_found's list of what is available — unless the workspace
// brings its own key for it, which auto then uses (a workspace's own key
// had been ignored by auto, while /v1/models listed its models). The
// pinned model itself keeps the explicit 502 (answered at the edge).
func TestNothingGoesWhereNoCredentialIs(t *testing.T) {
	r, _ := libraryRouter(t, `
routing: {default_model: keyless}
providers:
  - {name: eu, base_url: "http://127.0.0.1:9001/v1", residency: eu}
  - {name: us, base_url: "http://127.0.0.1:9002/v1", residency: us, credential: {env: US_KEY_UNSET}}
models:
  - {id: keyless, provider: eu, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: cheap-us, provider: us, context_window: 8000, price: {input_per_mtok: 0.1, output_per_mtok: 0.1}}
workspaces:
  - {name: default, pinned_fallback: true}
  - {name: byok}
`)
	route := func(ws, model string) (*Result, error) {
		return r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: auth.Principal{Workspace: ws}, DecisionID: "d",
			Body: []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"hello"}]}`)})
	}
	res, err := route("default", "keyless")
	if err != nil {
		t.Fatal(err)
	}
	if fb := res.Selection.Fallbacks; len(fb) != 0 {
		t.Errorf("pinned keyless falls back to %s, which has no credential", fb[0].ID)
	}
	_, err = route("default", "gpt-9")
	if e := apierr.As(err); e.Code != "model_not_found" || strings.Contains(e.Message, "cheap-us") || !strings.Contains(e.Message, "keyless") {
		t.Errorf("unknown model: %v", err)
	}
	if res, err = route("default", "cheap-us"); err != nil || res.Selection.Model.ID != "cheap-us" {
		t.Errorf("pinned cheap-us is decided (the edge answers 502): %v", err)
	}
	if res, err = route("byok", "auto"); err != nil || res.Selection.Model.ID != "keyless" {
		t.Fatalf("auto without the workspace's key: %v", err)
	}
	r.OwnKey = func(ws, p string) bool { return ws == "byok" && p == "us" }
	if res, err = route("byok", "auto"); err != nil || res.Selection.Model.ID != "cheap-us" {
		t.Errorf("auto with the workspace's own us key: %v, want the cheaper cheap-us", err)
	}
}

// TestReasonCountsVisibleModels: the reason's count of models is of those
// the caller may see, as /v1/models lists them: "1 of 6 models eligible"
// told a key with two listed models of the others (the policy-author
// probe).
func TestReasonCountsVisibleModels(t *testing.T) {
	r, _ := libraryRouter(t, `
routing: {default_model: a}
providers:
  - {name: p, base_url: "http://127.0.0.1:9001/v1", residency: us}
models:
  - {id: a, provider: p, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: b, provider: p, context_window: 8000, price: {input_per_mtok: 2, output_per_mtok: 2}}
  - {id: c, provider: p, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 3}}
workspaces:
  - {name: open, objective: cost}
  - {name: finance, objective: cost, allow: [a, b]}
`)
	for ws, want := range map[string]string{"open": "(3 of 3 models eligible)", "finance": "(2 of 2 models eligible)"} {
		res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: auth.Principal{Workspace: ws}, DecisionID: "d",
			Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)})
		if err != nil || !strings.Contains(res.Selection.Reason, want) {
			t.Errorf("%s: %v %q, want %s", ws, err, res.Selection.Reason, want)
		}
	}
	res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: auth.Principal{Workspace: "open", Models: []string{"c"}}, DecisionID: "d",
		Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)})
	if err != nil || !strings.Contains(res.Selection.Reason, "(1 of 1 models eligible)") {
		t.Errorf("a key limited to c: %v %q", err, res.Selection.Reason)
	}
}
