package e2e

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestBudgetHoldsWhatIsAsked: a provider is never asked for more output
// than its model can write (max_output_tokens), which is what the budget
// held. A request's max_tokens past it went out as sent: with a catalog
// that understated a model's limit (4,096 when it names none), one answer
// spent five times what was held (the peer-switcher probe). And a chat
// request without max_tokens to an Anthropic-wire model, which the
// translation sends 4,096, held the model's whole limit (64,000), so a
// budget that had room for it refused it.
func TestBudgetHoldsWhatIsAsked(t *testing.T) {
	t.Parallel()
	// Output at 10 EUR per million tokens: 1,000 tokens 0.01 EUR, 4,096
	// 0.041 EUR, 64,000 0.64 EUR, against a 0.06 EUR budget.
	price := config.Price{InputPerMTok: 0, OutputPerMTok: 10}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}, {Name: "a", Key: "sk-a", WireFormat: "anthropic"}},
		Models: []config.Model{
			{ID: "small", Provider: "p", ContextWindow: 128000, MaxOutputTokens: 1000, Price: price},
			{ID: "claude", Provider: "a", ContextWindow: 200000, MaxOutputTokens: 64000, Price: price},
		},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Routing.DefaultModel = "small"
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default"}}
			c.Keys = []config.Key{{ID: "app", SHA256: auth.Hash("sk-app"), Workspace: "default"}}
			c.Budgets.Limits = []config.BudgetRule{{Name: "out", Scope: "workspace", Subject: "default", AmountEUR: 0.06, Period: "day"}}
		},
	})
	send := func(body string) (int, string) {
		resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"Authorization": "Bearer sk-app"})
		return resp.StatusCode, string(b)
	}
	p, a := s.Providers["p"], s.Providers["a"]
	if code, b := send(`{"model":"small","max_tokens":20000,"messages":[{"role":"user","content":"write a long essay"}]}`); code != 200 {
		t.Fatalf("max_tokens past the model's: %d %s", code, b)
	}
	if got := gjson.GetBytes(p.Requests()[0].Body, "max_tokens").Int(); got != 1000 {
		t.Errorf("the provider was asked for %d tokens; want the model's 1000", got)
	}
	if code, b := send(`{"model":"claude","messages":[{"role":"user","content":"hi"}]}`); code != 200 {
		t.Fatalf("a chat request to an Anthropic-wire model without max_tokens: %d %s; want it held at 4096 tokens", code, b)
	}
	if got := gjson.GetBytes(a.Requests()[0].Body, "max_tokens").Int(); got != 4096 {
		t.Errorf("the Anthropic provider was asked for %d tokens; want 4096", got)
	}
	// What the budget refuses is still refused: 64,000 asked of claude.
	if code, b := send(`{"model":"claude","max_tokens":64000,"messages":[{"role":"user","content":"hi"}]}`); code != 429 || !strings.Contains(b, "budget_exceeded") {
		t.Errorf("64,000 tokens against 0.06 EUR: %d %s; want 429 budget_exceeded", code, b)
	}
}

// TestBudgetHoldsCacheWrites (the reasoning probe): Anthropic bills a
// prompt token written to its cache at 1.25 times the input price for five
// minutes and twice for an hour. A request that marks its prompt for the
// cache was held at the input price, and a burst of them overran a block
// budget by up to twice. At 10 EUR per million input tokens, a prompt of
// about 2,000 tokens is held at about 0.02 EUR, 0.025 written for five
// minutes and 0.04 for an hour, against a 0.035 EUR budget.
func TestBudgetHoldsCacheWrites(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "a", Key: "sk-a", WireFormat: "anthropic"}},
		Models:    []config.Model{{ID: "claude", Provider: "a", ContextWindow: 200000, MaxOutputTokens: 64000, Price: config.Price{InputPerMTok: 10}}},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default"}}
			c.Keys = []config.Key{{ID: "app", SHA256: auth.Hash("sk-app"), Workspace: "default"}}
			c.Budgets.Limits = []config.BudgetRule{{Name: "in", Scope: "workspace", Subject: "default", AmountEUR: 0.035, Period: "day"}}
		},
	})
	manual := strings.Repeat("word ", 2000)
	name := "cache_control"
	send := func(ttl string) (int, string) {
		body := `{"model":"claude","max_tokens":10,"system":[{"type":"text","text":"` + manual + `","` + name + `":{"type":"ephemeral"` + ttl + `}}],` +
			`"messages":[{"role":"user","content":"Which clause applies?"}]}`
		resp, b := post(t, s.URL+"/v1/messages", body, map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"})
		return resp.StatusCode, string(b)
	}
	if code, b := send(`,"ttl":"1h"`); code != 429 || !strings.Contains(b, "budget_exceeded") {
		t.Errorf("a prompt written to the cache for an hour, held at twice its input price (0.04 EUR) against 0.035: %d %.300s; want 429 budget_exceeded", code, b)
	}
	// The name written with an escape is the same name to Anthropic, and
	// to the hold (the red-team probe's way around it).
	name = `cache\u005fcontrol`
	if code, b := send(`,"ttl":"1h"`); code != 429 || !strings.Contains(b, "budget_exceeded") {
		t.Errorf("the hour-long write with its marker's name escaped: %d %.300s; want 429 budget_exceeded", code, b)
	}
	name = "cache_control"
	if code, b := send(""); code != 200 {
		t.Errorf("a prompt written for five minutes, held at 1.25 times its input price (0.025 EUR): %d %.300s; want 200", code, b)
	}
}

// TestThinkingBudgetFollowsTheCap (the reasoning probe): a Messages
// request asking more output than its model writes is lowered to the
// model's max_output_tokens; its extended-thinking budget, which Anthropic
// requires below max_tokens, is lowered with it. It was sent as asked, and
// Anthropic refused the request.
func TestThinkingBudgetFollowsTheCap(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "a", Key: "sk-a", WireFormat: "anthropic"}},
		Models:    []config.Model{{ID: "claude", Provider: "a", ContextWindow: 200000, MaxOutputTokens: 64000}},
	})
	body := `{"model":"claude","max_tokens":128000,"thinking":{"type":"enabled","budget_tokens":100000},` +
		`"messages":[{"role":"user","content":"Which reading of the contract is right?"}]}`
	resp, b := post(t, s.URL+"/v1/messages", body, map[string]string{"anthropic-version": "2023-06-01"})
	if resp.StatusCode != 200 {
		t.Fatalf("%d %.300s", resp.StatusCode, b)
	}
	sent := s.Providers["a"].Requests()[0].Body
	if mt, bt := gjson.GetBytes(sent, "max_tokens").Int(), gjson.GetBytes(sent, "thinking.budget_tokens").Int(); mt != 64000 || bt != 63999 {
		t.Errorf("the provider was sent max_tokens %d and a thinking budget of %d; want 64000 and 63999", mt, bt)
	}
}
