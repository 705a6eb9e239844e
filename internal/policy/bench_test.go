package policy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
)

// catalog60 is a catalog of 60 models over 12 providers in every residency.
func catalog60(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	c := &config.Config{Routing: config.Routing{DefaultModel: "m00"}}
	residencies := []string{"us", "eu", "on_prem", "global"}
	for p := range 12 {
		c.Providers = append(c.Providers, config.Provider{Name: fmt.Sprintf("p%02d", p), BaseURL: fmt.Sprintf("http://127.0.0.1:%d/v1", 9000+p),
			Residency: residencies[p%4], AssuranceTier: 1 + p%3})
	}
	for m := range 60 {
		c.Models = append(c.Models, config.Model{ID: fmt.Sprintf("m%02d", m), Provider: fmt.Sprintf("p%02d", m%12), ContextWindow: 128000,
			Price: config.Price{InputPerMTok: float64(m%7) + 0.1, OutputPerMTok: float64(m%5) + 0.3}, Quality: map[string]float64{"default": 0.5 + float64(m%10)/20}})
	}
	c.ApplyDefaults()
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

func benchInput(cat *catalog.Catalog, restricted bool) *Input {
	cls := &classify.Result{Task: "code", Complexity: "medium", Language: "en", Sensitivity: "internal", Risk: "low",
		PIICounts: map[string]int{}, InputTokens: 600, Scan: classify.ScanComplete}
	if restricted {
		cls.Sensitivity, cls.Risk, cls.PIICounts = "restricted", "high", map[string]int{"iban": 1}
	}
	ws := defaultWorkspace()
	ws.Deny = []string{"m07", "provider:p03"}
	q := 0.6
	in := &Input{
		Request: RequestFacts{Path: "/v1/chat/completions", Model: "auto", MaxTokens: 800,
			Policy: reqpolicy.Policy{Set: true, Optimize: "cost", MaxCost: 0.5, MinQuality: &q, Deny: []string{"m11"}, Fingerprint: "x"}},
		Principal: auth.Principal{Authenticated: true, KeyID: "k", Workspace: "default", Roles: []string{"dev"}},
		Workspace: ws, Classification: cls, Now: time.Unix(1_795_000_000, 0),
	}
	for _, m := range cat.Models() {
		in.Candidates = append(in.Candidates, Candidate{Model: m, EstimatedCostEUR: m.CostEUR(600, 800), Quality: m.QualityFor("code"), Healthy: true, LatencyMS: m.LatencyMS})
	}
	return in
}

// BenchmarkEvaluate60 is one policy evaluation with the shipped library and
// 60 candidates, the input built the way requests build it.
func BenchmarkEvaluate60(b *testing.B) {
	m, err := NewManager(context.Background(), Source{Library: true}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	e := m.Current()
	cat := catalog60(b)
	ct := NewCatalogTerms(cat)
	for _, restricted := range []bool{false, true} {
		name := "plain"
		if restricted {
			name = "restricted"
		}
		in := benchInput(cat, restricted)
		b.Run(name+"/input+eval", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, release := in.Value(ct)
				if _, err := e.Eval(context.Background(), v); err != nil {
					b.Fatal(err)
				}
				release()
			}
		})
		b.Run(name+"/input_only", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, release := in.Value(ct)
				release()
			}
		})
	}
}

func TestBenchInputIsDecided(t *testing.T) {
	m, err := NewManager(context.Background(), Source{Library: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog60(t)
	v, release := benchInput(cat, true).Value(NewCatalogTerms(cat))
	defer release()
	d, err := m.Current().Eval(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	// Restricted data: only eu and on_prem models of tier >= 2 remain, minus the denied ones.
	for id, why := range d.Exclude {
		if why == "" {
			t.Errorf("%s excluded without a reason", id)
		}
	}
	if len(d.Exclude) < 40 || d.Objective != "cost" || d.MaxCostEUR == nil || *d.MaxCostEUR != 0.5 || d.QualityFloor != 0.6 {
		t.Errorf("decision %+v", d)
	}
}
