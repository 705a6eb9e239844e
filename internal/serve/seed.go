package serve

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// seedBudgets raises every budget's counters for its current period to
// what the spend ledger has for their subjects in it (ledger.Seed), off
// the request path: at start and after a config change. A budget added or
// renamed in the middle of its period started from zero though the money
// was spent (the FinOps probe). Failures are logged; the next start or
// reload tries again.
func seedBudgets(ctx context.Context, led *ledger.Ledger, sp *spend.Store, log *zap.Logger) {
	if led == nil || sp == nil {
		return
	}
	now := time.Now()
	bySince := map[time.Time][]ledger.Spent{} // budgets of one period share their period's sums
	for _, b := range led.Limits().Budgets() {
		since, ok := led.PeriodStart(b.Name, now)
		if !ok {
			continue
		}
		spent, read := bySince[since]
		if !read {
			rep, err := sp.Query(ctx, spend.Query{Since: since, Until: now.Add(time.Second),
				GroupBy: []spend.Dim{spend.DimKey, spend.DimWorkspace, spend.DimTeam, spend.DimUser}})
			if err != nil {
				log.Warn("budget not seeded from the spend ledger", zap.String("budget", b.Name), zap.Error(err))
				continue
			}
			spent = make([]ledger.Spent, 0, len(rep.Groups))
			for _, g := range rep.Groups {
				if g.Cost <= 0 || len(g.Values) != 4 {
					continue
				}
				spent = append(spent, ledger.Spent{Subject: ledger.Subject{Key: g.Values[0], Workspace: g.Values[1], Team: g.Values[2], User: g.Values[3]}, Cost: g.Cost})
			}
			bySince[since] = spent
		}
		n, total, err := led.Seed(ctx, b.Name, spent, now)
		if err != nil {
			log.Warn("budget not seeded from the spend ledger", zap.String("budget", b.Name), zap.Error(err))
			continue
		}
		if n > 0 {
			log.Info("budget seeded from the spend ledger: what its subjects spent this period before it counted them",
				zap.String("budget", b.Name), zap.Time("since", since), zap.Int("counters", n), zap.Stringer("eur", total))
		}
	}
}
