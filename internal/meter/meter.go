// Package meter turns what an answer used into money: the cost of the model
// that served it, and what the workspace's baseline model would have cost
// for the same usage. The routing object, the stream log line and (as they
// land) budgets and the audit record all read the same Charge, so the
// numbers a caller sees and the numbers that are charged cannot drift.
package meter

import "github.com/stellwerk/stellwerk/internal/catalog"

// Source says where a Charge's usage came from.
const (
	// ProviderUsage: the usage the provider reported.
	ProviderUsage = "provider_usage"
	// Estimate: stellwerk's estimate, when the provider reported none (a
	// stream without a usage chunk, an answer without a usage object).
	Estimate = "estimate"
	// WorstCase: what the request's reservation held for the model that
	// answered, when the provider's usage cannot be its answer's, or
	// stellwerk counted more output than was held.
	WorstCase = "worst_case"
)

// Usage is an answer's token counts.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	// CachedTokens are the prompt tokens the provider served from its
	// cache (OpenAI's prompt_tokens_details.cached_tokens, Anthropic's
	// cache_read_input_tokens): priced at the model's cached input price.
	CachedTokens int
	// CacheWriteTokens and CacheWrite1hTokens are the prompt tokens the
	// provider wrote to its cache for five minutes and for an hour
	// (Anthropic's cache_creation_input_tokens, split by
	// cache_creation.ephemeral_5m/1h_input_tokens): priced at the model's
	// cache write prices, 1.25× and 2× the input on Anthropic.
	CacheWriteTokens, CacheWrite1hTokens int
	// WebSearches are the searches the provider's own web search tool ran
	// (Anthropic's server_tool_use.web_search_requests), billed apiece.
	WebSearches int
	// Estimated is set when the counts are stellwerk's estimate.
	Estimated bool
}

// Tokens are the counts as a catalog model prices them.
func (u Usage) Tokens() catalog.Tokens {
	return catalog.Tokens{Input: u.PromptTokens, CacheRead: u.CachedTokens, CacheWrite: u.CacheWriteTokens,
		CacheWrite1h: u.CacheWrite1hTokens, Output: u.CompletionTokens, WebSearches: u.WebSearches}
}

// Charge is what one answer cost, and saved against the baseline.
type Charge struct {
	Usage Usage
	// Amount is in the model's price currency; EUR in the reporting one.
	Amount   float64
	Currency string
	EUR      float64
	// Baseline is the model savings are measured against ("" when the
	// catalog has none); SavingEUR is BaselineEUR minus EUR, negative
	// when the request cost more than the baseline would have.
	Baseline    string
	BaselineEUR float64
	SavingEUR   float64
	Source      string
}

// Meter prices usage on the model that served it and on the baseline.
func Meter(served, baseline *catalog.Model, u Usage) Charge {
	c := Charge{Usage: u, Currency: served.Currency, Source: ProviderUsage,
		Amount: served.Amount(u.Tokens()), EUR: served.UsageEUR(u.Tokens())}
	if u.Estimated {
		c.Source = Estimate
	}
	if baseline != nil {
		c.Baseline, c.BaselineEUR = baseline.ID, baseline.UsageEUR(u.Tokens())
		c.SavingEUR = c.BaselineEUR - c.EUR
	}
	return c
}

// Estimated is the saving known before an answer: the decision's estimated
// cost against the baseline's estimate for the same request.
func Estimated(baseline *catalog.Model, estimatedEUR, baselineEstimateEUR float64) Charge {
	c := Charge{EUR: estimatedEUR, Source: Estimate}
	if baseline != nil {
		c.Baseline, c.BaselineEUR, c.SavingEUR = baseline.ID, baselineEstimateEUR, baselineEstimateEUR-estimatedEUR
	}
	return c
}
