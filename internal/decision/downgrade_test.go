package decision

import (
	"context"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/ledger"
)

// TestDowngrade: with the shipped library, a team over its downgrade budget
// is served by a cheaper model, and the reason names the budget; under it,
// or over a block budget (the ledger's to refuse), nothing changes.
func TestDowngrade(t *testing.T) {
	r, _ := libraryRouter(t, `
routing: {default_model: small}
currency: {usd_to_eur: 1}
providers:
  - {name: p, base_url: "http://127.0.0.1:9001/v1", residency: eu}
models:
  - {id: big, provider: p, context_window: 8000, price: {input_per_mtok: 3, output_per_mtok: 15}, quality: {default: 0.9}}
  - {id: mid, provider: p, context_window: 8000, price: {input_per_mtok: 0.5, output_per_mtok: 1.5}, quality: {default: 0.7}}
  - {id: small, provider: p, context_window: 8000, price: {input_per_mtok: 0.1, output_per_mtok: 0.3}, quality: {default: 0.5}}
workspaces:
  - {name: capped, objective: accuracy, downgrade_max_price: {output_per_mtok: 2}}
  - {name: cheapest, objective: accuracy}
`)
	state := func(action string, exceeded bool) []ledger.BudgetState {
		return []ledger.BudgetState{{Name: "cx-day", Scope: ledger.ScopeTeam, Subject: "x/cx", Period: ledger.PeriodDay,
			Limit: ledger.FromEUR(1), Used: ledger.FromEUR(1.2), Ratio: 1.2, Warn: true, Exceeded: exceeded, Downgrade: action == "downgrade"}}
	}
	cases := map[string]struct {
		workspace string
		budgets   []ledger.BudgetState
		model     string
		reason    string // the reason starts with it
		excluded  string // big's exclusion reason
	}{
		"no budget state":               {"capped", nil, "big", "most accurate", ""},
		"downgrade budget not in force": {"capped", state("downgrade", false), "big", "most accurate", ""},
		"block budget exceeded":         {"capped", state("block", true), "big", "most accurate", ""},
		"price ceiling": {"capped", state("downgrade", true), "mid", "downgrade (budget cx-day) + most accurate",
			"budget: cx-day exceeded; downgraded to models priced at most 2 EUR per million output tokens"},
		"no ceiling: cheapest": {"cheapest", state("downgrade", true), "small", "downgrade (budget cx-day) + cheapest", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Budgets: tc.budgets,
				Principal: auth.Principal{Workspace: tc.workspace},
				Body:      []byte(`{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`)})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Selection.Model.ID; got != tc.model {
				t.Errorf("chose %s, want %s", got, tc.model)
			}
			if !strings.HasPrefix(res.Selection.Reason, tc.reason) {
				t.Errorf("reason %q, want it to start with %q", res.Selection.Reason, tc.reason)
			}
			if got := res.Policy.Exclude["big"]; got != tc.excluded {
				t.Errorf("big excluded for %q, want %q", got, tc.excluded)
			}
		})
	}
}

func TestDowngradeConstraint(t *testing.T) {
	for _, tc := range []struct {
		constraint string
		budgets    []string
		want       string
	}{
		{"", []string{"cx-day"}, "downgrade (budget cx-day)"},
		{"eu residency", []string{"a", "b"}, "eu residency + downgrade (budgets a, b)"},
	} {
		if got := downgradeConstraint(tc.constraint, tc.budgets); got != tc.want {
			t.Errorf("downgradeConstraint(%q, %q) = %q, want %q", tc.constraint, tc.budgets, got, tc.want)
		}
	}
}
