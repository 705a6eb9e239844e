package serve

import (
	"context"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// TestBudgetGaugesWithoutTraffic: the budget gauges follow the store
// without a request to report them: spend settled after the last
// reservation shows, a day's budget reads 0 once the day is over, and a
// team budget a key without a team meets as its own gets no series (the
// FinOps probe: the gauge showed the ratio before a budget's last requests,
// and yesterday's after the reset).
func TestBudgetGaugesWithoutTraffic(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	lim, err := ledger.NewLimits(time.UTC, []ledger.BudgetRule{
		{Name: "ops-day", Scope: ledger.ScopeTeam, Limit: ledger.FromEUR(10), Period: ledger.PeriodDay},
		{Name: "acme-month", Scope: ledger.ScopeWorkspace, Subject: "acme", Limit: ledger.FromEUR(100), Period: ledger.PeriodMonth},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	be, err := ledger.NewMemory(ctx, ledger.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(be, lim, ledger.Options{Now: clock})
	cfg := &config.Config{Workspaces: []config.Workspace{{Name: "acme", Teams: []config.Team{{Name: "ops"}}}}}
	cfg.Budgets.Limits = []config.BudgetRule{{Name: "ops-day"}, {Name: "acme-month"}}
	m := telemetry.New()
	spend := func(sub ledger.Subject, eur float64) {
		r, err := led.Reserve(ctx, &ledger.Request{Subject: sub, Cost: ledger.FromEUR(eur)})
		if err != nil || !r.Allowed {
			t.Fatalf("reserve: %v %+v", err, r)
		}
		if _, err := led.Settle(ctx, r, ledger.Usage{Cost: ledger.FromEUR(eur)}); err != nil {
			t.Fatal(err)
		}
	}
	spend(ledger.Subject{Key: "k1", Workspace: "acme", Team: "ops"}, 6)
	spend(ledger.Subject{Key: "k2", Workspace: "acme"}, 2) // its own team budget: key:k2
	refreshBudgetGauges(ctx, led, m, cfg)
	got := budgetGauges(t, m)
	if got["ops-day acme/ops"] != 0.6 || got["acme-month acme"] != 0.08 || len(got) != 2 {
		t.Fatalf("gauges %v", got)
	}
	now = now.Add(24 * time.Hour) // the next day
	refreshBudgetGauges(ctx, led, m, cfg)
	if got := budgetGauges(t, m); got["ops-day acme/ops"] != 0 || got["acme-month acme"] != 0.08 {
		t.Fatalf("the next day: %v", got)
	}
}

func budgetGauges(t *testing.T, m *telemetry.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "stellwerk_budget_used_ratio" {
			continue
		}
		for _, s := range mf.Metric {
			var name, subject string
			for _, l := range s.Label {
				switch l.GetName() {
				case "budget":
					name = l.GetValue()
				case "subject":
					subject = l.GetValue()
				}
			}
			out[name+" "+subject] = s.GetGauge().GetValue()
		}
	}
	return out
}
