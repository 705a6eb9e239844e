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

// TestCacheWritePricing is the FinOps probe's repro: 100 input tokens,
// 2,000 read from the cache, 1,000 written to it (600 for five minutes,
// 400 for an hour), 50 out, on a model priced 3 / 0.3 / 15 USD per
// million. Anthropic's invoice is 6,300 µUSD; stellwerk booked the writes
// at the input price, 4,650 µUSD. An OpenAI-wire model charges writes as
// input (OpenAI bills none), and a catalog price overrides the default.
func TestCacheWritePricing(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: claude, baseline_model: gpt}
currency: {usd_to_eur: 0.5}
providers:
  - {name: anthropic, base_url: "http://127.0.0.1:9/v1", residency: us, wire_format: anthropic}
  - {name: openai, base_url: "http://127.0.0.1:9/v1", residency: us}
models:
  - {id: claude, provider: anthropic, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3}}
  - {id: claude-deal, provider: anthropic, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.5, cache_write_1h_per_mtok: 5}}
  - {id: gpt, provider: openai, context_window: 8000, price: {input_per_mtok: 2, output_per_mtok: 8, cached_input_per_mtok: 0.5}}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	u := Usage{PromptTokens: 3100, CachedTokens: 2000, CacheWriteTokens: 600, CacheWrite1hTokens: 400, CompletionTokens: 50}
	for name, tc := range map[string]struct {
		model  string
		u      Usage
		amount float64 // in the price currency, per million
	}{
		"anthropic, 5 minutes and 1 hour": {"claude", u, 100*3 + 2000*0.3 + 600*3.75 + 400*6 + 50*15},
		"anthropic, the catalog's prices": {"claude-deal", u, 100*3 + 2000*0.3 + 600*3.5 + 400*5 + 50*15},
		"openai wire: writes as input":    {"gpt", u, 1100*2 + 2000*0.5 + 50*8},
		// Writes beyond what the cache reads leave of the prompt are cut
		// to it (plausibleUsage refuses such usage before it gets here).
		"more written than prompted": {"claude", Usage{PromptTokens: 100, CachedTokens: 50, CacheWriteTokens: 80, CacheWrite1hTokens: 30}, 50*0.3 + 30*6 + 20*3.75},
	} {
		t.Run(name, func(t *testing.T) {
			m, _ := cat.Lookup(tc.model)
			ch := Meter(m, cat.Baseline, tc.u)
			if math.Abs(ch.Amount-tc.amount/1e6) > 1e-12 || math.Abs(ch.EUR-tc.amount/1e6*0.5) > 1e-12 {
				t.Errorf("amount %.9f USD, %.9f EUR; want %.9f USD", ch.Amount, ch.EUR, tc.amount/1e6)
			}
			// The baseline prices the same usage at its own prices.
			if want := cat.Baseline.UsageEUR(tc.u.Tokens()); ch.BaselineEUR != want || math.Abs(ch.SavingEUR-(want-ch.EUR)) > 1e-15 {
				t.Errorf("baseline %v, saving %v; want %v", ch.BaselineEUR, ch.SavingEUR, want)
			}
		})
	}
}
