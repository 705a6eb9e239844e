package ledger

import (
	"context"
	"time"
)

// kind is what a counter counts.
type kind uint8

const (
	kindMoney    kind = iota + 1 // micro-EUR; held at reserve, charged at settle
	kindRequests                 // requests; counted at reserve, never given back
	kindTokens                   // tokens; held at reserve, charged at settle
)

// counterKey names one counter: a rule's count for one subject in one
// window. Strings are shared with the rule and the request, so building a
// key allocates nothing.
type counterKey struct {
	kind   kind
	period Period
	rule   string
	s1, s2 string // subject: (key), (workspace, user|team), (workspace), (), (model)
	start  int64  // window start, Unix ms; 0 for total
}

// KeySubject starts the subject of a budget of each user (or team) that a
// key without one meets as its own: key:<id>.
const KeySubject = "key:"

// subject renders the counter's subject as configs and answers write it;
// a key standing in for a user or a team it has none of is "key:<id>".
func (k *counterKey) subject() string {
	switch {
	case k.s2 == "":
		return k.s1
	case k.s1 == "":
		return KeySubject + k.s2
	}
	return k.s1 + "/" + k.s2
}

// counter is one step of a plan: check amount against limit, then hold or
// count it. Backends fill used and held.
type counter struct {
	key      counterKey
	scope    Scope
	limit    int64
	amount   int64
	enforce  bool
	warnAt   float64
	end      int64 // window end, Unix ms; 0: never
	expireAt int64 // when the store may drop the counter, Unix ms; 0: never

	used, held int64 // after the operation, or before it when it was refused
}

// plan is one atomic operation on a backend.
type plan struct {
	id         string
	now        int64 // Unix ms
	leaseUntil int64 // Unix ms
	retention  int64 // ms a finished reservation is remembered (idempotent settle)
	move       bool  // replace the holds of reservation id
	counters   []counter
}

// status is a backend's answer.
type status uint8

const (
	statusOK        status = iota
	statusRefused          // a counter would pass its limit; nothing changed
	statusDuplicate        // reserve: id in use; settle: already settled or released
	statusGone             // move: the reservation is no longer held
	statusLate             // settle: the lease had expired; charge corrected
	statusUnknown          // settle: no record of the reservation
)

// Backend keeps counters and reservations. Its methods are the package's
// own: Memory and Redis are the implementations, and both pass one
// conformance suite.
type Backend interface {
	// reserve checks every counter of p and, if none would pass its limit,
	// applies them all and records the reservation with its lease; with
	// p.move it first lifts the holds of the existing reservation p.id.
	reserve(ctx context.Context, p *plan) (status, error)
	// settle turns reservation id's holds into charges of money and tokens
	// (release: of nothing).
	settle(ctx context.Context, id string, now, retention, money, tokens int64, release bool) (status, error)
	// charge adds usage to the counters directly, once per id.
	charge(ctx context.Context, id string, now, retention int64, cs []counter, money, tokens int64) error
	// peek reads the counters (after expiring leases past their end).
	peek(ctx context.Context, p *plan) error
	// raise lifts counter c's used to at least to (a money counter, seeded
	// from the spend ledger) and returns what it added; idempotent.
	raise(ctx context.Context, now, retention int64, c counter, to int64) (int64, error)
	close(ctx context.Context) error
}

// moneyRetention keeps a budget counter readable for a while after its
// period (late settlements land in it, reports can read it).
const moneyRetention = 35 * 24 * time.Hour

// windows caches one request's period bounds.
type windows struct {
	loc   *time.Location
	now   time.Time
	done  [numPeriods]bool
	start [numPeriods]int64
	end   [numPeriods]int64
}

func (w *windows) get(p Period) (int64, int64) {
	if p == PeriodTotal {
		return 0, 0
	}
	if !w.done[p] {
		s, e := p.Bounds(w.now, w.loc)
		w.start[p], w.end[p], w.done[p] = s.UnixMilli(), e.UnixMilli(), true
	}
	return w.start[p], w.end[p]
}

// subjectOf is the request's subject for a scope; ok is false when the
// request has none (an anonymous caller has no key). A key without a user
// (or a team) is its own user (team): ("", key). A budget for each user
// skipped such keys, uncapped (the FinOps probe); no configured subject is
// ever ("", …), so a named budget never matches one.
func subjectOf(s Scope, sub *Subject, model string) (s1, s2 string, ok bool) {
	switch s {
	case ScopeKey:
		return sub.Key, "", sub.Key != ""
	case ScopeUser:
		if sub.User == "" {
			return "", sub.Key, sub.Key != ""
		}
		return sub.Workspace, sub.User, true
	case ScopeTeam:
		if sub.Team == "" {
			return "", sub.Key, sub.Key != ""
		}
		return sub.Workspace, sub.Team, true
	case ScopeWorkspace:
		return sub.Workspace, "", sub.Workspace != ""
	case ScopeGlobal:
		return "", "", true
	case ScopeModel:
		return model, "", model != ""
	}
	return "", "", false
}

// compile lists the counters req meets. For a move (failover), request
// counts are taken again only for the model limits of a new model.
func (l *Ledger) compile(req *Request, now time.Time, move bool, fromModel string) []counter {
	base := l.limits.Load()
	w := windows{loc: base.loc, now: now}
	if req.OnlyExtra {
		base = nil
	}
	var bufB, bufR [2][16]int32 // the rules met, by limits: on the stack unless many
	var met [2]struct{ budgets, rates []int32 }
	n := 0
	for j, lim := range [2]*Limits{base, req.Extra} {
		if lim != nil {
			met[j].budgets = lim.budgetIdx.matches(bufB[j][:0], &req.Subject, req.Model)
			met[j].rates = lim.rateIdx.matches(bufR[j][:0], &req.Subject, req.Model)
			n += len(met[j].budgets) + 4*len(met[j].rates)
		}
	}
	cs := make([]counter, 0, n)
	lease := l.Lease().Milliseconds()
	for j, lim := range [2]*Limits{base, req.Extra} {
		if lim == nil {
			continue
		}
		for _, i := range met[j].budgets {
			b := &lim.budgets[i]
			s1, s2, _ := subjectOf(b.Scope, &req.Subject, req.Model)
			start, end := w.get(b.Period)
			c := counter{key: counterKey{kind: kindMoney, period: b.Period, rule: b.Name, s1: s1, s2: s2, start: start},
				scope: b.Scope, limit: int64(b.Limit), amount: int64(req.Cost), enforce: !b.Downgrade, warnAt: b.WarnAt, end: end}
			if end != 0 {
				c.expireAt = end + moneyRetention.Milliseconds()
			}
			cs = append(cs, c)
		}
		for _, i := range met[j].rates {
			r := &lim.rates[i]
			s1, s2, _ := subjectOf(r.Scope, &req.Subject, req.Model)
			countRequests := !move || (r.Scope == ScopeModel && req.Model != fromModel)
			for _, x := range [4]struct {
				k      kind
				p      Period
				limit  int64
				amount int64
			}{
				{kindRequests, PeriodMinute, r.RequestsPerMinute, 1},
				{kindTokens, PeriodMinute, r.TokensPerMinute, req.Tokens},
				{kindRequests, PeriodDay, r.RequestsPerDay, 1},
				{kindTokens, PeriodDay, r.TokensPerDay, req.Tokens},
			} {
				if x.limit <= 0 || (x.k == kindRequests && !countRequests) {
					continue
				}
				start, end := w.get(x.p)
				cs = append(cs, counter{key: counterKey{kind: x.k, period: x.p, rule: r.Name, s1: s1, s2: s2, start: start},
					scope: r.Scope, limit: x.limit, amount: x.amount, enforce: true, end: end, expireAt: end + lease})
			}
		}
	}
	return cs
}

// state turns a plan's counters into what the caller sees. With pre, the
// counters hold the values before the operation, and the refusal (if any)
// is computed from them.
func (l *Ledger) state(cs []counter, now time.Time, pre bool) State {
	var s State
	nb := 0
	for i := range cs {
		if cs[i].key.kind == kindMoney {
			nb++
		}
	}
	if nb > 0 {
		s.Budgets = make([]BudgetState, 0, nb)
	}
	var refused *counter
	for i := range cs {
		c := &cs[i]
		after := c.used + c.held // committed, this request included
		if pre {
			after += c.amount
			if c.enforce && after > c.limit && (refused == nil || laterReset(c, refused)) {
				refused = c
			}
		}
		switch c.key.kind {
		case kindMoney:
			b := BudgetState{Name: c.key.rule, Scope: c.scope, Subject: c.key.subject(), Period: c.key.period,
				Limit: MicroEUR(c.limit), Used: MicroEUR(c.used), Reserved: MicroEUR(c.held), Downgrade: !c.enforce}
			committed := c.used + c.held
			if !pre {
				// How used the budget is as this request found it: not
				// counting its own worst case, which it holds only until
				// it settles (a few thousandths of a euro usually, its
				// worst case often a hundred times that).
				committed -= c.amount
			}
			if c.limit > 0 {
				b.Ratio = float64(committed) / float64(c.limit)
			}
			b.Warn = b.Ratio >= c.warnAt
			b.Exceeded = b.Ratio >= 1
			if c.limit > 0 {
				b.Spent = float64(c.used) / float64(c.limit)
			}
			b.SpentWarn = b.Spent >= c.warnAt
			if c.end != 0 {
				b.Reset = time.UnixMilli(c.end)
			}
			s.Warning = s.Warning || b.Warn
			s.Budgets = append(s.Budgets, b)
		case kindRequests:
			tighten(&s.Requests, c)
		case kindTokens:
			tighten(&s.Tokens, c)
		}
	}
	if refused != nil {
		rf := &Refusal{Name: refused.key.rule, Scope: refused.scope, Subject: refused.key.subject(), Limit: refused.limit, Period: refused.key.period,
			Used: refused.used, Held: refused.held, Amount: refused.amount}
		switch refused.key.kind {
		case kindMoney:
			rf.Kind = RefusedBudget
		case kindRequests:
			rf.Kind = RefusedRequests
		default:
			rf.Kind = RefusedTokens
		}
		if refused.end != 0 {
			rf.Reset = time.UnixMilli(refused.end)
			rf.RetryAfter = max(time.Second, (rf.Reset.Sub(now) + time.Second - 1).Truncate(time.Second))
		}
		s.Refusal = rf
	}
	return s
}

// laterReset orders refusing counters: a total budget never frees up, and
// otherwise the later window end wins.
func laterReset(c, than *counter) bool {
	if than.end == 0 {
		return false
	}
	return c.end == 0 || c.end > than.end
}

// tighten keeps the rate limit with the least room; of two with as much,
// the one that frees later: with a minute's and a day's limit both used up,
// the headers said the minute's reset while Retry-After waited for the
// day's (the time probe, 2026-12-07).
func tighten(rs *RateState, c *counter) {
	remaining := max(0, c.limit-c.used-c.held)
	if rs.Limit != 0 && (remaining > rs.Remaining || (remaining == rs.Remaining && c.end <= rs.Reset.UnixMilli())) {
		return
	}
	rs.Name, rs.Limit, rs.Remaining, rs.Reset = c.key.rule, c.limit, remaining, time.UnixMilli(c.end)
}
