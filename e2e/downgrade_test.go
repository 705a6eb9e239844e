package e2e

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestBudgetDowngrade (issue 13): a workspace over its downgrade budget is
// still answered (200), by the cheaper model, and the answer says which
// budget downgraded it; a workspace over its block budget gets 429.
//
// One provider with two models: "big" (0.1 EUR per output token, the most
// accurate) and "small" (0.001 EUR per output token). The fake provider
// answers "hello there" with 7 tokens: 0.7 EUR on big. Both workspaces
// optimise for accuracy and have a 1.5 EUR daily budget: "saver"'s is a
// downgrade budget with a price ceiling of 5,000 EUR per million output
// tokens, "strict"'s blocks. A store key created through the admin API
// in workspace "thrifty" (the same ceiling, no configured budget) has its
// own 1.5 EUR downgrade budget.
func TestBudgetDowngrade(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}},
		Models: []config.Model{
			{ID: "big", Provider: "p", ProviderModel: "big-upstream", ContextWindow: 8000,
				Price: config.Price{OutputPerMTok: 100000}, Quality: map[string]float64{"default": 0.9}},
			{ID: "small", Provider: "p", ProviderModel: "small-upstream", ContextWindow: 8000,
				Price: config.Price{OutputPerMTok: 1000}, Quality: map[string]float64{"default": 0.5}},
		},
		DefaultModel: "small",
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{
				{Name: "saver", Objective: "accuracy", DowngradeMaxPrice: config.DowngradePrice{OutputPerMTok: 5000}},
				{Name: "thrifty", Objective: "accuracy", DowngradeMaxPrice: config.DowngradePrice{OutputPerMTok: 5000}},
				{Name: "strict", Objective: "accuracy"},
			}
			c.Keys = []config.Key{
				{ID: "saver", SHA256: auth.Hash("sk-saver"), Workspace: "saver"},
				{ID: "strict", SHA256: auth.Hash("sk-strict"), Workspace: "strict"},
			}
			c.Budgets.Limits = []config.BudgetRule{
				{Name: "saver-day", Scope: "workspace", Subject: "saver", AmountEUR: 1.5, Period: "day", Action: "downgrade"},
				{Name: "strict-day", Scope: "workspace", Subject: "strict", AmountEUR: 1.5, Period: "day"},
			}
		},
	})
	const body = `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`
	type answer struct {
		Routing struct {
			Model    string `json:"model"`
			Reason   string `json:"reason"`
			Excluded int    `json:"excluded"`
			Cost     struct {
				EUR float64 `json:"eur"`
			} `json:"cost"`
		} `json:"routing"`
	}

	// Downgrade: big until the budget is used up, then small, never a 429.
	// A budget is in force from used + reserved ≥ limit, and an answer's
	// charge is settled just after the answer is sent (docs/budgets.md):
	// each request waits until the one before is settled, so the budget it
	// meets holds exactly the costs the answers reported.
	downgrade := func(secret, query, budget string) float64 {
		t.Helper()
		used, downgraded := 0.0, 0
		for i := range 6 {
			if i > 0 {
				if got, reserved := budgetOf(t, s, query, budget); math.Abs(got-used) > 1e-6 || reserved != 0 {
					t.Fatalf("%s before request %d at %.6f EUR, %.6f reserved; want %.6f EUR", budget, i, got, reserved, used)
				}
			}
			resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"Authorization": "Bearer " + secret})
			if resp.StatusCode != 200 {
				t.Fatalf("%s request %d: %d %s", budget, i, resp.StatusCode, b)
			}
			var a answer
			mustJSON(t, b, &a)
			r := a.Routing
			if used < 1.5 {
				if r.Model != "big" || strings.Contains(r.Reason, "downgrade") || r.Excluded != 0 {
					t.Errorf("%s request %d, %.2f of 1.5 EUR used: %+v", budget, i, used, r)
				}
			} else {
				downgraded++
				if r.Model != "small" || !strings.HasPrefix(r.Reason, "downgrade (budget "+budget+") + most accurate") || r.Excluded != 1 {
					t.Errorf("%s request %d, %.2f of 1.5 EUR used: %+v", budget, i, used, r)
				}
				if h := resp.Header.Get("x-stellwerk-reason"); h != r.Reason {
					t.Errorf("x-stellwerk-reason %q, routing.reason %q", h, r.Reason)
				}
				if h := resp.Header.Get("x-stellwerk-budget-warning"); !strings.HasPrefix(h, budget+"; used=") {
					t.Errorf("x-stellwerk-budget-warning %q", h)
				}
			}
			used += r.Cost.EUR
		}
		if downgraded < 2 {
			t.Fatalf("%s: only %d of 6 requests downgraded (%.2f EUR used)", budget, downgraded, used)
		}
		t.Logf("%s: %d of 6 requests downgraded to small after %.2f EUR", budget, downgraded, used)
		return used
	}
	used := downgrade("sk-saver", "workspace=saver", "saver-day")
	if got, reserved := budgetOf(t, s, "workspace=saver", "saver-day"); math.Abs(got-used) > 1e-6 || reserved != 0 {
		t.Errorf("saver-day at %.6f EUR, %.6f reserved; want %.6f EUR", got, reserved, used)
	}

	// Block: the second request's worst case (1 EUR) no longer fits.
	for i, want := range []int{200, 429} {
		resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"Authorization": "Bearer sk-strict"})
		if resp.StatusCode != want {
			t.Fatalf("strict request %d: %d %s, want %d", i, resp.StatusCode, b, want)
		}
		if want == 429 {
			if e := decodeError(t, b).Error; e.Code != "budget_exceeded" || !strings.Contains(e.Message, "strict-day") || resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 %s (Retry-After %q)", b, resp.Header.Get("Retry-After"))
			}
		}
	}

	// A store key's own downgrade budget.
	resp, kb := adminDo(t, s, "POST", "/admin/keys",
		`{"id":"thrifty","workspace":"thrifty","limits":{"budgets":[{"amount_eur":1.5,"period":"day","action":"downgrade"}]}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, kb)
	}
	var created struct{ Secret string }
	mustJSON(t, kb, &created)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) { // the key table refreshes within half a second
		resp, b := post(t, s.URL+"/v1/models", "", map[string]string{"Authorization": "Bearer " + created.Secret})
		if resp.StatusCode != 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the created key is still refused: %s", b)
		}
	}
	downgrade(created.Secret, "key=thrifty&workspace=thrifty", "key.thrifty.day")
}
