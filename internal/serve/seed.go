package serve

import (
	"cmp"
	"context"
	"sync"
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
// though the money was spent (the FinOps probe). Seeding every budget
// (all) is tried again until the spend ledger and the counters' store have
// both answered; a key's own are tried at the next change.
type seeder struct {
	led   *ledger.Ledger // nil: no budgets
	sp    spendQuerier
	table *keys.Table // nil: no store keys
	log   *zap.Logger
	// retry is the first wait before all tries again (then doubling, to
	// a minute at most); mu guards running and again: one loop of all at
	// a time, a call while it runs makes it seed once more.
	retry          time.Duration
	mu             sync.Mutex
	running, again bool
}

// spendQuerier is the spend ledger as the seeder reads it.
type spendQuerier interface {
	Query(context.Context, spend.Query) (*spend.Report, error)
}

// all seeds the configured budgets and every key's own, and tries again
// while the spend ledger or the counters' store fails: a Redis that lost
// its data while PostgreSQL was away too (a node drain restarting both)
// was seeded once, failed, and its budgets counted from zero for the rest
// of their period (the storage probe).
func (s *seeder) all(ctx context.Context) {
	if s.led == nil {
		return
	}
	s.mu.Lock()
	if s.running {
		s.again = true
		s.mu.Unlock()
		return
	}
	s.running = true
	s.mu.Unlock()
	wait := cmp.Or(s.retry, time.Second)
	for try := 0; ; try++ {
		sets := []*ledger.Limits{s.led.Limits()}
		if s.table != nil {
			sets = append(sets, s.own(s.table.WithLimits())...)
		}
		failed := s.seed(ctx, sets, try > 0) // a retry says only how many are left
		s.mu.Lock()
		again := s.again
		s.again = false
		if failed == 0 && !again {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if failed == 0 {
			continue // called again while it ran: what changed is seeded too
		}
		s.log.Warn("budgets not seeded from the spend ledger: trying again", zap.Int("budgets", failed), zap.Duration("in", wait))
		select {
		case <-time.After(wait):
			wait = min(2*wait, time.Minute)
		case <-ctx.Done():
			s.mu.Lock()
			s.running = false
			s.mu.Unlock()
			return
		}
	}
}

// keys seeds the own budgets of the keys of ps.
func (s *seeder) keys(ctx context.Context, ps []auth.Principal) {
	if s.led == nil {
		return
	}
	s.seed(ctx, s.own(ps), false)
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

// seed seeds sets' budgets and returns how many it could not. quiet logs
// no budget's failure (a retry: the first try named them). A period whose
// sums could not be read is not asked again for its other budgets: a
// retry asked PostgreSQL once per budget, and logged a line for each,
// every minute while it was away (the red-team probe: 200 budgets, 200
// queries and 201 lines a minute).
func (s *seeder) seed(ctx context.Context, sets []*ledger.Limits, quiet bool) (failed int) {
	now := time.Now()
	bySince := map[time.Time][]ledger.Spent{} // budgets of one period share their period's sums
	unread := map[time.Time]bool{}            // periods whose sums could not be read
	for _, lim := range sets {
		for _, b := range lim.Budgets() {
			since, ok := lim.PeriodStart(b.Name, now)
			if !ok {
				continue
			}
			if unread[since] {
				failed++
				continue
			}
			spent, read := bySince[since]
			if !read {
				rep, err := s.sp.Query(ctx, spend.Query{Since: since, Until: now.Add(time.Second),
					GroupBy: []spend.Dim{spend.DimKey, spend.DimWorkspace, spend.DimTeam, spend.DimUser}})
				if err != nil {
					if !quiet {
						s.log.Warn("budget not seeded from the spend ledger", zap.String("budget", b.Name), zap.Error(err))
					}
					unread[since] = true
					failed++
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
				if !quiet {
					s.log.Warn("budget not seeded from the spend ledger", zap.String("budget", b.Name), zap.Error(err))
				}
				failed++
				continue
			}
			if n > 0 {
				s.log.Info("budget seeded from the spend ledger: what its subjects spent this period before it counted them",
					zap.String("budget", b.Name), zap.Time("since", since), zap.Int("counters", n), zap.Stringer("eur", total))
			}
		}
	}
	return failed
}
