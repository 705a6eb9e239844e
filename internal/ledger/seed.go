package ledger

import (
	"context"
	"strconv"
	"time"
)

// Spent is what one subject spent in a period, as the spend ledger has it:
// the subject of its requests (their key, workspace, team and user) and
// what they were charged.
type Spent struct {
	Subject Subject
	Cost    MicroEUR
}

// PeriodStart is when the period of budget rule name that now falls in
// began (zero for a total budget); false for no such budget.
func (l *Ledger) PeriodStart(name string, now time.Time) (time.Time, bool) {
	lim := l.limits.Load()
	for i := range lim.budgets {
		if b := &lim.budgets[i]; b.Name == name {
			if b.Period == PeriodTotal {
				return time.Time{}, true
			}
			start, _ := b.Period.Bounds(now, lim.loc)
			return start, true
		}
	}
	return time.Time{}, false
}

// Seed raises budget rule name's counters for the period now falls in to
// what their subjects spent in it (spent: the spend ledger's sums since
// PeriodStart, per subject; several may meet one counter, a workspace's
// keys). A budget added in the middle of its period, or renamed, or kept
// in a Redis that lost its data, started from zero though the money was
// spent (the FinOps probe). Only what a counter lacks is charged: one that
// counted the requests itself holds at least what the spend ledger has
// (it is charged at settle, the ledger's row a moment later). The charge
// is once per rule, subject and period in a fleet (the backend's charge
// id), and a later seed finds nothing lacking. It returns the counters
// raised and by how much in all.
func (l *Ledger) Seed(ctx context.Context, name string, spent []Spent, now time.Time) (int, MicroEUR, error) {
	lim := l.limits.Load()
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
		p := &plan{now: now.UnixMilli(), counters: []counter{c}}
		if err := l.backend.peek(ctx, p); err != nil {
			return raised, total, err
		}
		lack := sums[k] - p.counters[0].used
		if lack <= 0 {
			continue
		}
		id := "seed:" + b.Name + ":" + k.subject() + ":" + strconv.FormatInt(start, 10)
		if err := l.backend.charge(ctx, id, now.UnixMilli(), max(l.retention, time.Duration(end-now.UnixMilli())*time.Millisecond).Milliseconds(), []counter{c}, lack, 0); err != nil {
			return raised, total, err
		}
		raised++
		total += MicroEUR(lack)
	}
	return raised, total, nil
}
