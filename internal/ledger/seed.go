package ledger

import (
	"context"
	"time"
)

// Spent is what one subject spent in a period, as the spend ledger has it:
// the subject of its requests (their key, workspace, team and user) and
// what they were charged.
type Spent struct {
	Subject Subject
	Cost    MicroEUR
}

// OnStateLost has f called each time a Redis ledger finds Redis lost its
// data (watchState; within 10 s): the budgets are seeded again then, not
// only at the next start. The memory backend never calls it.
func (l *Ledger) OnStateLost(f func()) {
	if rb := redisOf(l.backend); rb != nil {
		rb.onLost.Store(&f)
	}
}

// redisOf is b's Redis backend, nil for another.
func redisOf(b Backend) *redisBackend {
	switch b := b.(type) {
	case *redisBackend:
		return b
	case *closingRedis:
		return &b.redisBackend
	}
	return nil
}

// PeriodStart is when the period of budget rule name that now falls in
// began (zero for a total budget); false for no such budget.
func (l *Limits) PeriodStart(name string, now time.Time) (time.Time, bool) {
	for i := range l.budgets {
		if b := &l.budgets[i]; b.Name == name {
			if b.Period == PeriodTotal {
				return time.Time{}, true
			}
			start, _ := b.Period.Bounds(now, l.loc)
			return start, true
		}
	}
	return time.Time{}, false
}

// Seed raises the counters of lim's budget rule name (lim: the configured
// limits, Limits, or a key's own, KeyLimitsFromConfig) for the period now
// falls in to what their subjects spent in it (spent: the spend ledger's
// sums since PeriodStart, per subject; several may meet one counter, a
// workspace's keys). A budget added in the middle of its period, or
// renamed, or kept in a Redis that lost its data, or in the memory of a
// replica that restarted, started from zero though the money was spent
// (the FinOps probe). A counter is raised to the sum, never past it
// (the backend's raise, atomic): one that counted the requests itself
// holds at least what the spend ledger has (it is charged at settle, the
// ledger's row a moment later) and is left alone, and seeding again, from
// this replica or another, adds only what is still lacking. It returns the
// counters raised and by how much in all.
func (l *Ledger) Seed(ctx context.Context, lim *Limits, name string, spent []Spent, now time.Time) (int, MicroEUR, error) {
	var b *BudgetRule
	for i := range lim.budgets {
		if lim.budgets[i].Name == name {
			b = &lim.budgets[i]
		}
	}
	if b == nil {
		return 0, 0, nil
	}
	w := windows{loc: lim.loc, now: now}
	start, end := w.get(b.Period)
	sums := map[counterKey]int64{}
	var order []counterKey
	for i := range spent {
		s1, s2, ok := subjectOf(b.Scope, &spent[i].Subject, "")
		if !ok || (b.Subject != "" && (b.s1 != s1 || b.s2 != s2)) {
			continue
		}
		k := counterKey{kind: kindMoney, period: b.Period, rule: b.Name, s1: s1, s2: s2, start: start}
		if _, seen := sums[k]; !seen {
			order = append(order, k)
		}
		sums[k] += int64(spent[i].Cost)
	}
	var raised int
	var total MicroEUR
	for _, k := range order {
		c := counter{key: k, scope: b.Scope, limit: int64(b.Limit), enforce: !b.Downgrade, warnAt: b.WarnAt, end: end}
		if end != 0 {
			c.expireAt = end + moneyRetention.Milliseconds()
		}
		// The retention of finished reservations, as every operation
		// passes it: leases the raise expires are remembered, so a slow
		// request's settle corrects its charge instead of adding to it
		// (the seeding probe).
		added, err := l.backend.raise(ctx, now.UnixMilli(), l.retain().Milliseconds(), c, sums[k])
		if err != nil {
			return raised, total, err
		}
		if added > 0 {
			raised++
			total += MicroEUR(added)
		}
	}
	return raised, total, nil
}
