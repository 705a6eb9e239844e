package decide

import (
	"slices"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
)

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: mid}
providers:
  - {name: eu, base_url: "http://127.0.0.1:1/v1", residency: eu}
  - {name: us, base_url: "http://127.0.0.1:2/v1", residency: us}
models:
  - {id: cheap, provider: us, context_window: 8000, capabilities: [streaming], latency_ms: 300}
  - {id: mid, provider: eu, context_window: 32000, latency_ms: 800}
  - {id: best, provider: us, context_window: 128000, latency_ms: 2000}
  - {id: also-eu, provider: eu, context_window: 128000, latency_ms: 900}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.OSEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// candidates gives each model a cost, a quality and its latency.
func candidates(cat *catalog.Catalog, excluded map[string]string) []Candidate {
	cost := map[string]float64{"cheap": 0.001, "mid": 0.01, "best": 0.1, "also-eu": 0.02}
	quality := map[string]float64{"cheap": 0.5, "mid": 0.75, "best": 0.95, "also-eu": 0.7}
	var out []Candidate
	for _, m := range cat.Models() {
		out = append(out, Candidate{Model: m, EstimatedCostEUR: cost[m.ID], Quality: quality[m.ID], LatencyMS: m.LatencyMS,
			Healthy: true, Excluded: excluded[m.ID]})
	}
	return out
}

func TestDecide(t *testing.T) {
	cat := testCatalog(t)
	def, _ := cat.Lookup("mid")
	limit := 0.015
	cases := map[string]struct {
		in         Input
		want       string
		fallbacks  string
		status     int
		code       string
		reasonHas  string
		verdictFor map[string]string
	}{
		"cost":     {in: Input{Asked: "auto", Objective: "cost"}, want: "cheap", fallbacks: "mid,also-eu,best", reasonHas: "cheapest for code (4 of 4 models eligible)"},
		"accuracy": {in: Input{Asked: "auto", Objective: "accuracy"}, want: "best", fallbacks: "mid,also-eu,cheap"},
		"latency":  {in: Input{Asked: "auto", Objective: "latency"}, want: "cheap"},
		"balanced prefers the default": {in: Input{Asked: "auto", Objective: "balanced", Default: def}, want: "mid",
			reasonHas: "workspace default"},
		"quality floor": {in: Input{Asked: "auto", Objective: "cost", QualityFloor: 0.72}, want: "mid",
			verdictFor: map[string]string{"cheap": "rejected", "also-eu": "rejected"}},
		"max cost": {in: Input{Asked: "auto", Objective: "accuracy", MaxCostEUR: &limit}, want: "mid",
			verdictFor: map[string]string{"best": "rejected", "also-eu": "rejected"}},
		"sla": {in: Input{Asked: "auto", Objective: "accuracy", SLAMS: 1000}, want: "mid"},
		"tools need capability": {in: Input{Asked: "auto", Objective: "cost", Needs: Needs{Tools: true}}, want: "mid",
			verdictFor: map[string]string{"cheap": "rejected"}},
		"context window": {in: Input{Asked: "auto", Objective: "cost", Needs: Needs{InputTokens: 20000, OutputTokens: 512}}, want: "mid"},
		"pinned":         {in: Input{Asked: "best", Objective: "accuracy"}, want: "best", reasonHas: "pinned", fallbacks: "mid,also-eu,cheap"},
		"pinned excluded": {in: Input{Asked: "best", Candidates: nil}, status: 403, code: "model_not_allowed",
			reasonHas: "residency: restricted data requires eu"},
		"pinned unsuitable": {in: Input{Asked: "cheap", Needs: Needs{Tools: true}}, status: 400, code: "model_unsuitable"},
		// OpenAI's code, as for auto (a helper's code checked it).
		"pinned, context window too small": {in: Input{Asked: "cheap", Needs: Needs{InputTokens: 20000, OutputTokens: 512}}, status: 400,
			code: "context_length_exceeded", reasonHas: "context: needs about"},
		"unknown":          {in: Input{Asked: "gpt-9"}, status: 404, code: "model_not_found", reasonHas: "also-eu, best, cheap, mid, auto"},
		"route":            {in: Input{Asked: "route:support"}, status: 404, code: "route_not_found"},
		"nothing eligible": {in: Input{Asked: "auto", QualityFloor: 0.99}, status: 503, code: "no_eligible_model", reasonHas: "quality"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			excluded := map[string]string{}
			if name == "pinned excluded" {
				excluded["best"] = "residency: restricted data requires eu, model is us"
			}
			in := tc.in
			in.Task = "code"
			in.Candidates = candidates(cat, excluded)
			d, err := Decide(in)
			if tc.status != 0 {
				e, ok := err.(*apierr.Error)
				if !ok || apierr.HTTPStatus(e) != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.reasonHas) {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err != nil || d.Model.ID != tc.want {
				t.Fatalf("got %v, %v; want %s", d.Model, err, tc.want)
			}
			if tc.reasonHas != "" && !strings.Contains(d.Reason, tc.reasonHas) {
				t.Errorf("reason %q lacks %q", d.Reason, tc.reasonHas)
			}
			if tc.fallbacks != "" {
				var fb []string
				for _, m := range d.Fallbacks {
					fb = append(fb, m.ID)
				}
				if strings.Join(fb, ",") != tc.fallbacks {
					t.Errorf("fallbacks %v, want %s", fb, tc.fallbacks)
				}
			}
			tab := d.Table()
			for id, want := range tc.verdictFor {
				for _, v := range tab {
					if v.ID == id && v.Verdict != want {
						t.Errorf("%s: verdict %s (%s), want %s", id, v.Verdict, v.Reason, want)
					}
				}
			}
			chosen := 0
			for _, v := range tab {
				if v.Verdict == "chosen" {
					chosen++
				}
			}
			if chosen != 1 {
				t.Errorf("%d candidates marked chosen", chosen)
			}
		})
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	cat := testCatalog(t)
	in := Input{Asked: "auto", Objective: "balanced", Task: "chat", Candidates: candidates(cat, nil)}
	a, _ := Decide(in)
	for range 20 {
		b, _ := Decide(in)
		if a.Model != b.Model || a.Reason != b.Reason {
			t.Fatalf("%v != %v", a.Model.ID, b.Model.ID)
		}
	}
}

func TestPlanOneModelPerProvider(t *testing.T) {
	pa, pb, pc := &catalog.Provider{Name: "a"}, &catalog.Provider{Name: "b"}, &catalog.Provider{Name: "c"}
	m := func(id string, p *catalog.Provider) *catalog.Model { return &catalog.Model{ID: id, Provider: p} }
	d := &Selection{Model: m("a1", pa), Fallbacks: []*catalog.Model{m("b1", pb), m("b2", pb), m("a2", pa), m("c1", pc)}}
	var ids []string
	for _, x := range d.Plan(3) {
		ids = append(ids, x.ID)
	}
	if got := strings.Join(ids, ","); got != "a1,b1,c1" {
		t.Errorf("plan %s", got)
	}
	if got := d.Plan(1); len(got) != 1 || got[0].ID != "a1" {
		t.Errorf("max_attempts 1 gave %v", got)
	}
	if (&Selection{}).Plan(3) != nil {
		t.Error("a refused decision has a plan")
	}
}

// TestFallbackAllowed (issue 18): a pinned model fails over only when the
// request or its workspace opted in; the request's own word wins.
func TestFallbackAllowed(t *testing.T) {
	yes, no := true, false
	for name, tc := range map[string]struct {
		asked     string
		request   *bool
		workspace bool
		want      bool
	}{
		"auto":                             {"auto", nil, false, true},
		"auto, request says no":            {"auto", &no, false, false},
		"route":                            {"route:support", nil, false, true},
		"pinned":                           {"gpt-4o", nil, false, false},
		"pinned, request opts in":          {"gpt-4o", &yes, false, true},
		"pinned, workspace opts in":        {"gpt-4o", nil, true, true},
		"pinned, workspace yes request no": {"gpt-4o", &no, true, false},
	} {
		if got := FallbackAllowed(tc.asked, tc.request, tc.workspace); got != tc.want {
			t.Errorf("%s: got %v", name, got)
		}
	}
	cat := testCatalog(t)
	d, err := Decide(Input{Asked: "best", Objective: "accuracy", Task: "code", Candidates: candidates(cat, nil), NoFallback: true})
	if err != nil || d.Model.ID != "best" || len(d.Fallbacks) != 0 || len(d.Plan(3)) != 1 {
		t.Errorf("NoFallback: %v %v fallbacks %v plan %v", d.Model, err, d.Fallbacks, d.Plan(3))
	}
}

// A request no model may serve meets the same refusal when it is sent
// again (Final: the edge tells the SDKs not to retry), unless a provider's
// health is part of why: a cooldown ends by itself.
func TestNothingEligibleIsFinal(t *testing.T) {
	cat := testCatalog(t)
	in := Input{Asked: "auto", QualityFloor: 0.99, Task: "code", Candidates: candidates(cat, nil)}
	_, err := Decide(in)
	if e, ok := err.(*apierr.Error); !ok || !e.Final {
		t.Fatalf("quality floor: %v, want a final refusal", err)
	}
	in.Candidates = candidates(cat, nil)
	in.Candidates[3].Healthy = false // its provider cooling down
	_, err = Decide(in)
	if e, ok := err.(*apierr.Error); !ok || e.Code != "no_eligible_model" || e.Final {
		t.Fatalf("a cooling provider among the reasons: %+v, want a retryable refusal", err)
	}
}

// TestTooLongForEveryModel: a request that fits no model's context window
// at all is the client's 400 context_length_exceeded, as OpenAI answers
// (auto answered 503 no_eligible_model, which the SDKs raise as the
// server's fault; a helper's finding). One that fits a model the policy
// excludes is still the 503 naming why.
func TestTooLongForEveryModel(t *testing.T) {
	cat := testCatalog(t)
	largest := 0
	for _, m := range cat.Models() {
		largest = max(largest, m.ContextWindow)
	}
	in := Input{Asked: "auto", Task: "chat", Candidates: candidates(cat, nil), Needs: Needs{InputTokens: largest, OutputTokens: 100}}
	_, err := Decide(in)
	if e, ok := err.(*apierr.Error); !ok || e.Code != "context_length_exceeded" || apierr.HTTPStatus(e) != 400 || e.Param != "messages" {
		t.Fatalf("too long for every model: %#v", err)
	}
	// In the client's own names: a Responses request's.
	in.Params = [2]string{"input", "max_output_tokens"}
	if _, err := Decide(in); err.(*apierr.Error).Param != "input" || !strings.Contains(err.Error(), "a lower max_output_tokens") {
		t.Fatalf("a Responses request: %#v", err)
	}
	excluded := map[string]string{}
	for _, m := range cat.Models() {
		excluded[m.ID] = "policy says no"
	}
	in = Input{Asked: "auto", Task: "chat", Candidates: candidates(cat, excluded), Needs: Needs{InputTokens: 10, OutputTokens: 100}}
	if _, err := Decide(in); err == nil || err.(*apierr.Error).Code != "no_eligible_model" {
		t.Fatalf("excluded by policy: %v", err)
	}
}

// TestContextErrorNamesTheBound: a request whose input fits the window but
// whose output bound does not names max_tokens (as OpenAI does), one whose
// input does not names messages (the SDK probe got messages for a
// 2-token prompt with max_tokens 200000).
func TestContextErrorNamesTheBound(t *testing.T) {
	m := &catalog.Model{ID: "m", ContextWindow: 8000, Provider: &catalog.Provider{Name: "p"}}
	for _, tc := range []struct {
		in, out   int
		asked     string
		wantParam string
	}{
		{2, 200000, "m", "max_tokens"},
		{9000, 10, "m", "messages"},
		{2, 200000, Auto, "max_tokens"},
		{9000, 10, Auto, "messages"},
	} {
		_, err := Decide(Input{Asked: tc.asked, Candidates: []Candidate{{Model: m, Healthy: true}},
			Needs: Needs{InputTokens: tc.in, OutputTokens: tc.out}})
		if e, ok := err.(*apierr.Error); !ok || e.Code != "context_length_exceeded" || e.Param != tc.wantParam {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

// TestSameModelFallback: with SameModelFallback (embeddings), the only
// fallbacks serve the chosen model's provider model, the same model
// elsewhere: another embedding model's vectors are in another space.
func TestSameModelFallback(t *testing.T) {
	cands := candidates(testCatalog(t), nil)
	for i := range cands {
		m := *cands[i].Model
		if m.ID == "best" || m.ID == "also-eu" {
			m.ProviderModel = "embed-large" // one model at two providers
		}
		cands[i].Model = &m
	}
	in := Input{Asked: "best", Objective: "accuracy", Task: "code", Candidates: cands}
	d, err := Decide(in)
	if err != nil || len(d.Fallbacks) < 2 {
		t.Fatalf("without it: %v fallbacks %v", err, d.Fallbacks)
	}
	in.SameModelFallback = true
	d, err = Decide(in)
	if err != nil || d.Model.ID != "best" || len(d.Fallbacks) != 1 || d.Fallbacks[0].ID != "also-eu" {
		t.Errorf("with it: %v %v fallbacks %v", d.Model, err, d.Fallbacks)
	}
}

// TestAudioAndFilesNeedTheCapability: a request with audio or a file goes
// only to a model that reads them, auto and failover alike; a pinned model
// that cannot is a 400 naming what it lacks, and auto with none left a
// 503. Until 2026-12-07 only images were checked, and audio and PDFs went
// to text-only models (the multimodal probe).
func TestAudioAndFilesNeedTheCapability(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: text}
providers:
  - {name: a, base_url: "http://127.0.0.1:1/v1", residency: us}
  - {name: b, base_url: "http://127.0.0.1:2/v1", residency: us}
models:
  - {id: text, provider: a, context_window: 8000, capabilities: [tools, vision, json_mode, streaming]}
  - {id: hear, provider: a, context_window: 8000, capabilities: [vision, audio]}
  - {id: read, provider: b, context_window: 8000, capabilities: [vision, files]}
  - {id: omitted, provider: b, context_window: 8000}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.OSEnv)
	if err != nil {
		t.Fatal(err)
	}
	cost := map[string]float64{"text": 0.001, "hear": 0.002, "read": 0.003, "omitted": 0.5}
	cands := func() []Candidate {
		var out []Candidate
		for _, m := range cat.Models() {
			out = append(out, Candidate{Model: m, EstimatedCostEUR: cost[m.ID], Quality: 0.7, LatencyMS: 100, Healthy: true})
		}
		return out
	}
	cases := map[string]struct {
		asked    string
		needs    Needs
		want     string // the model, or the error's code
		plan     string
		rejected string // the reason of the models that lack it
		drop     string // a model left out of the candidates
	}{
		"audio, auto":          {asked: "auto", needs: Needs{Audio: true}, want: "hear", plan: "hear,omitted", rejected: "capability: the request contains audio"},
		"files, auto":          {asked: "auto", needs: Needs{Files: true}, want: "read", plan: "read", rejected: "capability: the request contains files"},
		"both, auto":           {asked: "auto", needs: Needs{Audio: true, Files: true}, want: "omitted", plan: "omitted"},
		"audio, pinned text":   {asked: "text", needs: Needs{Audio: true}, want: "model_unsuitable", rejected: "capability: the request contains audio"},
		"files, pinned hear":   {asked: "hear", needs: Needs{Files: true}, want: "model_unsuitable", rejected: "capability: the request contains files"},
		"audio, pinned hear":   {asked: "hear", needs: Needs{Audio: true}, want: "hear", plan: "hear,omitted"},
		"none has both":        {asked: "auto", needs: Needs{Audio: true, Files: true}, drop: "omitted", want: "no_eligible_model", rejected: "contains files (1)"},
		"text goes everywhere": {asked: "auto", want: "text", plan: "text,read"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cs := slices.DeleteFunc(cands(), func(c Candidate) bool { return c.Model.ID == tc.drop })
			in := Input{Asked: tc.asked, Objective: "cost", Needs: tc.needs, Candidates: cs}
			d, err := Decide(in)
			if e, ok := err.(*apierr.Error); ok {
				if e.Code != tc.want || !strings.Contains(e.Message, tc.rejected) {
					t.Fatalf("%s: %s", e.Code, e.Message)
				}
				return
			}
			if err != nil || d.Model.ID != tc.want {
				t.Fatalf("got %v, %v; want %s", d.Model, err, tc.want)
			}
			var plan []string
			for _, m := range d.Plan(3) {
				plan = append(plan, m.ID)
			}
			if strings.Join(plan, ",") != tc.plan {
				t.Errorf("plan %v, want %s", plan, tc.plan)
			}
			for _, v := range d.Table() {
				if v.Verdict == "rejected" && tc.rejected != "" && v.Reason != tc.rejected {
					t.Errorf("%s: %s, want %s", v.ID, v.Reason, tc.rejected)
				}
			}
		})
	}
}
