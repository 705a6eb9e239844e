package serve

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// seeder raises the counters of budgets for their current period to what
// the spend ledger has for their subjects in it (ledger.Seed), off the
// request path: at start, after a config change, when Redis lost its data
// (every budget), and for keys whose own limits changed (theirs). A
// budget added or renamed in the middle of its period started from zero
// though the money was spent (the FinOps probe). Failures are logged; the
// next start or change tries again.
type seeder struct {
	led   *ledger.Ledger // nil: no budgets
	sp    *spend.Store
	table *keys.Table
	log   *zap.Logger
}

// all seeds the configured budgets and every key's own.
func (s *seeder) all(ctx context.Context) {
	if s.led == nil {
		return
	}
	s.seed(ctx, append([]*ledger.Limits{s.led.Limits()}, s.own(s.table.WithLimits())...))
}

// keys seeds the own budgets of the keys of ps.
func (s *seeder) keys(ctx context.Context, ps []auth.Principal) {
	if s.led == nil {
		return
	}
	s.seed(ctx, s.own(ps))
}

// twice runs f now and again after wait: requests in flight at a change
// settle on the counters they reserved, and their rows come up to a
// second after they end; once they are done, what they spent is seeded
// too (the seeding probe found a rename under traffic short).
func twice(ctx context.Context, wait time.Duration, f func(context.Context)) {
	f(ctx)
	select {
	case <-time.After(wait):
		f(ctx)
	case <-ctx.Done():
	}
}

func (s *seeder) own(ps []auth.Principal) []*ledger.Limits {
	loc := s.led.Limits().Location()
	var sets []*ledger.Limits
	for _, p := range ps {
		kl, err := ledger.KeyLimitsFromConfig(p.KeyID, p.Limits, loc)
		if err != nil {
			s.log.Warn("key's own budgets not seeded: its limits cannot be enforced", zap.String("key", p.KeyID), zap.Error(err))
			continue
		}
		sets = append(sets, kl)
	}
	return sets
}

func (s *seeder) seed(ctx context.Context, sets []*ledger.Limits) {
	now := time.Now()
	bySince := map[time.Time][]ledger.Spent{} // budgets of one period share their period's sums
	for _, lim := range sets {
		for _, b := range lim.Budgets() {
			since, ok := lim.PeriodStart(b.Name, now)
			if !ok {
				continue
			}
			spent, read := bySince[since]
			if !read {
				rep, err := s.sp.Query(ctx, spend.Query{Since: since, Until: now.Add(time.Second),
					GroupBy: []spend.Dim{spend.DimKey, spend.DimWorkspace, spend.DimTeam, spend.DimUser}})
				if err != nil {
					s.log.Warn("budget not seeded from the spend ledger", zap.String("budget", b.Name), zap.Error(err))
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
			n, total, err := s.led.Seed(ctx, lim, b.Name, spent, now)
			if err != nil {
				s.log.Warn("budget not seeded from the spend ledger", zap.String("budget", b.Name), zap.Error(err))
				continue
			}
			if n > 0 {
				s.log.Info("budget seeded from the spend ledger: what its subjects spent this period before it counted them",
					zap.String("budget", b.Name), zap.Time("since", since), zap.Int("counters", n), zap.Stringer("eur", total))
			}
		}
	}
}
