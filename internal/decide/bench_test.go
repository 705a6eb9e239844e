package decide

import (
	"fmt"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
)

// BenchmarkDecide60 is one selection over 60 candidates, a fifth of them
// excluded by the policy, for each objective.
func BenchmarkDecide60(b *testing.B) {
	c := &config.Config{Routing: config.Routing{DefaultModel: "m00"}}
	for p := range 12 {
		c.Providers = append(c.Providers, config.Provider{Name: fmt.Sprintf("p%02d", p), BaseURL: fmt.Sprintf("http://127.0.0.1:%d/v1", 9000+p), Residency: "eu"})
	}
	for m := range 60 {
		c.Models = append(c.Models, config.Model{ID: fmt.Sprintf("m%02d", m), Provider: fmt.Sprintf("p%02d", m%12), ContextWindow: 128000, LatencyMS: 300 + 37*m%900})
	}
	c.ApplyDefaults()
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	var cands []Candidate
	for i, m := range cat.Models() {
		cd := Candidate{Model: m, EstimatedCostEUR: float64(i%13) * 0.001, Quality: 0.5 + float64(i%9)/20, LatencyMS: m.LatencyMS, Healthy: true}
		if i%5 == 0 {
			cd.Excluded = "residency: restricted data requires eu, model is us"
		}
		cands = append(cands, cd)
	}
	for _, obj := range []string{"cost", "latency", "accuracy", "balanced"} {
		b.Run(obj, func(b *testing.B) {
			in := Input{Asked: Auto, Task: "code", Candidates: cands, Objective: obj, QualityFloor: 0.55, RelativeQuality: 0.9,
				Needs: Needs{InputTokens: 600, OutputTokens: 512}, Default: cat.Default}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decide(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
