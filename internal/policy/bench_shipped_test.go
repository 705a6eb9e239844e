package policy

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/observe"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
)

// production loads examples/production.yaml: the shipped 71-model catalog
// and its workspaces.
func production(tb testing.TB) (*config.Config, *catalog.Catalog) {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	c, err := config.Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "production.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }, ReadFile: func(string) ([]byte, error) { return nil, nil }})
	if err != nil {
		tb.Fatal(err)
	}
	return c, cat
}

// liveState is what traffic teaches a replica: every model's latency
// learned (and moving), and one provider cooling down.
type liveState struct {
	lat    *observe.Latency
	health *health.Tracker
	models []*catalog.Model
	n      int
}

func newLiveState(cat *catalog.Catalog, cooling string) *liveState {
	s := &liveState{lat: &observe.Latency{}, health: health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Hour, MaxCooldown: time.Hour}),
		models: cat.Models()}
	for i, m := range s.models {
		s.lat.Observe(m.ID, false, time.Duration(300+7*i)*time.Millisecond)
	}
	s.health.Failed(health.Target{Provider: cooling}, "503", time.Hour)
	return s
}

// step is one response observed between two requests: the latencies move.
func (s *liveState) step() {
	m := s.models[s.n%len(s.models)]
	s.lat.Observe(m.ID, false, time.Duration(250+s.n%400)*time.Millisecond)
	s.n++
}

// candidates builds the candidate list as decision.Router.Route does.
func (s *liveState) candidates(task string, inTok, outTok int) []Candidate {
	cands := make([]Candidate, len(s.models))
	now := time.Now()
	for i, m := range s.models {
		cands[i] = Candidate{Model: m, EstimatedCostEUR: m.CostEUR(inTok, outTok), Quality: m.QualityFor(task), Healthy: true,
			LatencyMS: s.lat.Get(m.ID, false, m.LatencyMS)}
		if !s.health.Admits(health.Target{Provider: m.Provider.Name, Model: m.ID}, now, 0) {
			cands[i].Healthy = false
		}
	}
	return cands
}

// shippedRequest is a request of the production example: plain (support
// workspace, public text, no team) or restricted (legal workspace, team
// contracts, an IBAN, high risk, a per-request policy).
func shippedRequest(c *config.Config, restricted bool) *Input {
	ws := map[string]config.Workspace{}
	for _, w := range c.Workspaces {
		ws[w.Name] = w
	}
	cls := &classify.Result{Task: "summarization", TaskConfidence: 0.9, Complexity: "low", Language: "en", Sensitivity: "public",
		SensitivityRule: "default", Risk: "low", RiskRule: "default", PIICounts: map[string]int{}, InputTokens: 500, Scan: classify.ScanComplete}
	in := &Input{
		Request: RequestFacts{Path: "/v1/chat/completions", Model: "auto", Metadata: map[string]string{},
			Headers: map[string]string{"user-agent": "OpenAI/Python 1.54.0"}},
		Principal:      auth.Principal{Authenticated: true, KeyID: "support-bot", Workspace: "support", Roles: []string{}},
		Workspace:      ws["support"],
		Classification: cls,
	}
	if restricted {
		cls.Sensitivity, cls.SensitivityRule, cls.Risk, cls.RiskRule = "restricted", "financial_or_national_id", "high", "restricted_data"
		cls.PIICounts = map[string]int{"iban": 1}
		w := ws["legal"]
		in.Principal = auth.Principal{Authenticated: true, KeyID: "legal-bot", Workspace: "legal", Team: "contracts", Roles: []string{}}
		in.Workspace, in.Team = w, &w.Teams[0]
		in.Request.MaxTokens = 800
		in.Request.Policy = reqpolicy.Policy{Set: true, Optimize: "cost", MaxCost: 0.05, Deny: []string{"provider:mistral"}, Fingerprint: "5f1c0e9a3b7d2c41"}
	}
	return in
}

// BenchmarkEvaluateShipped is one request's policy work as production sees
// it: the shipped library, the shipped 71-model catalog, every latency
// learned and moving between requests, one provider in cooldown, and the
// candidates and input built from the live state each time: evaluated
// always (build+eval), through the memo (decide_warm, decide_cold), or
// built only (build). Nothing is reused from one request to the next but what
// stellwerk itself keeps.
func BenchmarkEvaluateShipped(b *testing.B) {
	m, err := NewManager(context.Background(), Source{Library: true}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	e := m.Current()
	c, cat := production(b)
	ct := NewCatalogTerms(cat)
	// n counts cold requests across every run of decide_cold: b.Loop runs a
	// benchmark several times with growing b.N, and a score seen in an
	// earlier run would be answered from the memo.
	n := 0
	for _, restricted := range []bool{false, true} {
		name := "plain"
		if restricted {
			name = "restricted"
		}
		in := shippedRequest(c, restricted)
		name0 := in.Workspace.Name
		st := newLiveState(cat, "openai")
		out := in.Request.MaxTokens
		if out == 0 {
			out = 512
		}
		b.Run(name+"/build+eval", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				st.step()
				in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, out)
				in.Now = time.Now()
				v, release := in.Value(ct)
				if _, err := e.Eval(context.Background(), v); err != nil {
					b.Fatal(err)
				}
				release()
			}
		})
		// decide: what a request pays (Engine.Decide). warm: requests the
		// policy cannot tell apart, answered from the memo; cold: every
		// request differs in a value the policy reads (the injection
		// score), so each one is evaluated.
		for _, warm := range []bool{true, false} {
			sub := "/decide_cold"
			if warm {
				sub = "/decide_warm"
			}
			b.Run(name+sub, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					st.step()
					if !warm {
						n++
						// The score the policy sees is rounded to 0.01: a
						// new workspace name (which the library reads) makes
						// every request one the memo has not seen.
						in.Workspace.Name = "ws-" + strconv.Itoa(n)
					}
					in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, out)
					in.Now = time.Now()
					if _, err := e.Decide(context.Background(), in, ct); err != nil {
						b.Fatal(err)
					}
				}
				in.Workspace.Name = name0
			})
		}
		// decide_warm_kept: decide_warm with the workspace's part of the
		// input kept per config, as the router keeps it.
		b.Run(name+"/decide_warm_kept", func(b *testing.B) {
			in.WorkspaceTerm = NewWorkspaceTerm(in.Workspace, in.Team)
			defer func() { in.WorkspaceTerm = nil }()
			b.ReportAllocs()
			for b.Loop() {
				st.step()
				in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, out)
				in.Now = time.Now()
				if _, err := e.Decide(context.Background(), in, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/build", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				st.step()
				in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, out)
				in.Now = time.Now()
				_, release := in.Value(ct)
				release()
			}
		})
	}
}

// TestShippedBenchInputIsDecided keeps the benchmark honest: the live
// state is what the policy sees, and the restricted request is restricted.
func TestShippedBenchInputIsDecided(t *testing.T) {
	m, err := NewManager(context.Background(), Source{Library: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	c, cat := production(t)
	if n := len(cat.Models()); n != 76 {
		t.Fatalf("shipped catalog has %d models, want 76 (71 chat, 4 embeddings, 1 completions)", n)
	}
	st := newLiveState(cat, "openai")
	st.step()
	for _, restricted := range []bool{false, true} {
		in := shippedRequest(c, restricted)
		in.Candidates = st.candidates("summarization", 500, 512)
		unhealthy, learned := 0, 0
		for _, cd := range in.Candidates {
			if !cd.Healthy {
				unhealthy++
			}
			if cd.LatencyMS != cd.Model.LatencyMS {
				learned++
			}
		}
		if unhealthy == 0 || learned < 60 {
			t.Fatalf("live state not applied: %d unhealthy, %d learned latencies", unhealthy, learned)
		}
		v, release := in.Value(NewCatalogTerms(cat))
		d, err := m.Current().Eval(context.Background(), v)
		release()
		if err != nil {
			t.Fatal(err)
		}
		if restricted && (len(d.Exclude) < 40 || d.Objective != "cost") {
			t.Errorf("restricted: %d excluded, objective %s", len(d.Exclude), d.Objective)
		}
		if !restricted && (len(d.Exclude) != 0 || d.Objective != "cost") {
			t.Errorf("plain: %v excluded, objective %s", d.Exclude, d.Objective)
		}
	}
}
