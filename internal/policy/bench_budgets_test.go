package policy

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
)

// budgetCases are the budget states BenchmarkEvaluateBudgets compares, for
// the plain request of BenchmarkEvaluateShipped: none read (no downgrade
// budget applies: what every request without one sees), two budgets read
// and not in force (a block and a downgrade budget, spend moving with every
// request), and the downgrade budget exceeded, with the workspace's price
// ceiling (a walk over the 71 candidates' prices) and without one
// (objective cost).
var budgetCases = []struct {
	name     string
	exceeded bool
	ceiling  config.DowngradePrice
}{
	{name: "none"},
	{name: "present"},
	{name: "downgrade_ceiling", exceeded: true, ceiling: config.DowngradePrice{OutputPerMTok: 2}},
	{name: "downgrade_cheapest", exceeded: true},
}

// budgetStates is the state two budgets have at request n.
func budgetStates(dst []ledger.BudgetState, n int, exceeded bool) []ledger.BudgetState {
	used := ledger.MicroEUR(100_000_000 + n%1_000_000)
	down := ledger.MicroEUR(1_000_000 + n%1_000)
	if exceeded {
		down += 10_000_000
	}
	return append(dst[:0],
		ledger.BudgetState{Name: "support-month", Scope: ledger.ScopeWorkspace, Subject: "support", Period: ledger.PeriodMonth,
			Limit: 500_000_000, Used: used, Reserved: 12_000, Ratio: float64(used+12_000) / 500_000_000},
		ledger.BudgetState{Name: "bot-day", Scope: ledger.ScopeKey, Subject: "support-bot", Period: ledger.PeriodDay,
			Limit: 10_000_000, Used: down, Reserved: 12_000, Ratio: float64(down+12_000) / 10_000_000,
			Warn: exceeded, Exceeded: exceeded, Downgrade: true})
}

// BenchmarkEvaluateBudgets is the policy's cost per request with budget
// state in the input against without: always evaluated (build+eval), and
// through the memo (decide_warm: the spend moves with every request, the
// flags the library reads do not).
func BenchmarkEvaluateBudgets(b *testing.B) {
	m, err := NewManager(context.Background(), Source{Library: true}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	e := m.Current()
	c, cat := production(b)
	ct := NewCatalogTerms(cat)
	for _, bc := range budgetCases {
		in := shippedRequest(c, false)
		in.Workspace.DowngradeMaxPrice = bc.ceiling
		st := newLiveState(cat, "openai")
		var states []ledger.BudgetState
		n := 0
		next := func() {
			st.step()
			n++
			in.Candidates = st.candidates(in.Classification.Task, in.Classification.InputTokens, 512)
			in.Now = time.Now()
			if bc.name != "none" {
				states = budgetStates(states, n, bc.exceeded)
				in.Budgets = states
			}
		}
		b.Run(bc.name+"/build+eval", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				next()
				v, release := in.Value(ct)
				if _, err := e.Eval(context.Background(), v); err != nil {
					b.Fatal(err)
				}
				release()
			}
		})
		b.Run(bc.name+"/decide_warm", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				next()
				if _, err := e.Decide(context.Background(), in, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBudgetBenchInputIsDecided keeps BenchmarkEvaluateBudgets honest: each
// case decides what its name says.
func TestBudgetBenchInputIsDecided(t *testing.T) {
	e, err := Load(context.Background(), Source{Library: true})
	if err != nil {
		t.Fatal(err)
	}
	c, cat := production(t)
	ct := NewCatalogTerms(cat)
	for _, bc := range budgetCases {
		in := shippedRequest(c, false)
		in.Workspace.DowngradeMaxPrice = bc.ceiling
		in.Candidates = newLiveState(cat, "openai").candidates("summarization", 500, 512)
		if bc.name != "none" {
			in.Budgets = budgetStates(nil, 1, bc.exceeded)
		}
		d, err := e.Decide(context.Background(), in, ct)
		if err != nil {
			t.Fatal(err)
		}
		excluded := len(d.Exclude)
		switch bc.name {
		case "none", "present":
			if d.Downgrade != nil || excluded != 0 {
				t.Errorf("%s: downgrade %v, %d excluded", bc.name, d.Downgrade, excluded)
			}
		case "downgrade_ceiling":
			if len(d.Downgrade) != 1 || excluded < 20 || excluded > len(in.Candidates)-5 {
				t.Errorf("%s: downgrade %v, %d of %d excluded", bc.name, d.Downgrade, excluded, len(in.Candidates))
			}
		case "downgrade_cheapest":
			if len(d.Downgrade) != 1 || excluded != 0 || d.Objective != "cost" {
				t.Errorf("%s: downgrade %v, %d excluded, objective %s", bc.name, d.Downgrade, excluded, d.Objective)
			}
		}
		t.Logf("%s: %d of %d excluded, objective %s", bc.name, excluded, len(in.Candidates), d.Objective)
	}
}
