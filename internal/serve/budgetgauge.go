package serve

import (
	"context"
	"time"

	"github.com/stellwerk/stellwerk/extproc"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// budgetGaugeInterval is how often stellwerk_budget_used_ratio is read from
// the budget store, besides at every reservation.
const budgetGaugeInterval = 10 * time.Second

// watchBudgetGauges keeps the budget gauges current without traffic: a
// budget crossed by its last requests showed the ratio before them, and a
// day's budget showed yesterday's after it reset, until the next request
// (the FinOps probe: an alert on the gauge missed both).
func watchBudgetGauges(ctx context.Context, led *ledger.Ledger, m *telemetry.Metrics, cfg func() *config.Config) {
	every(ctx, budgetGaugeInterval, func() { refreshBudgetGauges(ctx, led, m, cfg()) })
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// refreshBudgetGauges reads every budget a gauge shows — everyone's, each
// workspace's and each team's that has one — as the next request would
// find it. A store
// that does not answer leaves the gauges as they are
// (stellwerk_budget_store_up says so).
func refreshBudgetGauges(ctx context.Context, led *ledger.Ledger, m *telemetry.Metrics, cfg *config.Config) {
	if len(cfg.Budgets.Limits) == 0 {
		return
	}
	subjects := []ledger.Subject{{}} // everyone's
	lim := led.Limits()
	for _, w := range cfg.Workspaces {
		if sub := (ledger.Subject{Workspace: w.Name}); lim.BudgetsOf(ledger.ScopeWorkspace, sub) {
			subjects = append(subjects, sub)
		}
		for _, tm := range w.Teams {
			if sub := (ledger.Subject{Workspace: w.Name, Team: tm.Name}); lim.BudgetsOf(ledger.ScopeTeam, sub) {
				subjects = append(subjects, sub)
			}
		}
	}
	for _, sub := range subjects {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := led.Peek(pctx, &ledger.Request{Subject: sub})
		cancel()
		if err != nil {
			return
		}
		extproc.ObserveBudgets(m, &st)
	}
}
