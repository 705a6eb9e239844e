package meter

import (
	"math"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
)

func models(t *testing.T) (served, baseline *catalog.Model) {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: small, baseline_model: big}
currency: {usd_to_eur: 0.5}
providers: [{name: p, base_url: "http://127.0.0.1:9/v1", residency: us}]
models:
  - {id: small, provider: p, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 2, cached_input_per_mtok: 0.1}}
  - {id: big, provider: p, context_window: 8000, price: {input_per_mtok: 10, output_per_mtok: 30}}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return cat.Default, cat.Baseline
}

func TestMeter(t *testing.T) {
	served, baseline := models(t)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	for name, tc := range map[string]struct {
		u                         Usage
		base                      *catalog.Model
		amount, eur, baseEUR, sav float64
		source                    string
	}{
		"reported":          {Usage{PromptTokens: 1000, CompletionTokens: 500}, baseline, 0.002, 0.001, 0.0125, 0.0115, ProviderUsage},
		"estimated":         {Usage{PromptTokens: 1000, CompletionTokens: 500, Estimated: true}, baseline, 0.002, 0.001, 0.0125, 0.0115, Estimate},
		"no baseline":       {Usage{PromptTokens: 1000}, nil, 0.001, 0.0005, 0, 0, ProviderUsage},
		"served is dearest": {Usage{PromptTokens: 0, CompletionTokens: 0}, baseline, 0, 0, 0, 0, ProviderUsage},
		// 800 of 1,000 prompt tokens from the cache: small charges them
		// at 0.1 per million, big (no cached price) at its input price.
		// They were charged at the input price (found by a helper).
		"cached prompt": {Usage{PromptTokens: 1000, CompletionTokens: 500, CachedTokens: 800}, baseline,
			(200*1 + 800*0.1 + 500*2) / 1e6, (200*1 + 800*0.1 + 500*2) / 1e6 * 0.5, 0.0125, 0.0125 - (200*1+800*0.1+500*2)/1e6*0.5, ProviderUsage},
	} {
		t.Run(name, func(t *testing.T) {
			c := Meter(served, tc.base, tc.u)
			if !near(c.Amount, tc.amount) || !near(c.EUR, tc.eur) || !near(c.BaselineEUR, tc.baseEUR) || !near(c.SavingEUR, tc.sav) ||
				c.Source != tc.source || c.Currency != served.Currency {
				t.Errorf("%+v", c)
			}
		})
	}
	// Dearer than the baseline: a negative saving.
	if c := Meter(baseline, served, Usage{PromptTokens: 1000}); c.SavingEUR >= 0 {
		t.Errorf("saving %v, want negative", c.SavingEUR)
	}
	if c := Estimated(baseline, 0.001, 0.004); c.Source != Estimate || !near(c.SavingEUR, 0.003) || c.Baseline != "big" {
		t.Errorf("estimate %+v", c)
	}
}
