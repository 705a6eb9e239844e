package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Scope is whose spend or traffic a limit counts.
type Scope uint8

// Scopes. Budgets use key to global; rate limits any (the config offers
// key to workspace and model; a route's rate_limit node per route is global).
const (
	ScopeKey Scope = iota + 1
	ScopeUser
	ScopeTeam
	ScopeWorkspace
	ScopeGlobal
	ScopeModel
)

var scopeNames = [...]string{"", "key", "user", "team", "workspace", "global", "model"}

func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return "scope(" + fmt.Sprint(uint8(s)) + ")"
}

// ParseScope reads a config scope name.
func ParseScope(s string) (Scope, error) {
	for i, n := range scopeNames {
		if i > 0 && n == s {
			return Scope(i), nil
		}
	}
	return 0, fmt.Errorf("unknown scope %q", s)
}

// Period is how often a counter starts again from zero.
type Period uint8

// Periods. Day, week (from Monday) and month start at midnight in the
// configured time zone; minute windows are aligned to the Unix epoch.
const (
	PeriodTotal Period = iota
	PeriodMinute
	PeriodDay
	PeriodWeek
	PeriodMonth
	numPeriods
)

var periodNames = [...]string{"total", "minute", "day", "week", "month"}

func (p Period) String() string {
	if p < numPeriods {
		return periodNames[p]
	}
	return "period(" + fmt.Sprint(uint8(p)) + ")"
}

// ParsePeriod reads a config period name.
func ParsePeriod(s string) (Period, error) {
	for i, n := range periodNames {
		if n == s {
			return Period(i), nil
		}
	}
	return 0, fmt.Errorf("unknown period %q", s)
}

// Bounds returns the period containing t: its start and end in loc. Total
// has a zero start and end (it never ends).
func (p Period) Bounds(t time.Time, loc *time.Location) (start, end time.Time) {
	t = t.In(loc)
	y, m, d := t.Date()
	switch p {
	case PeriodMinute:
		start = t.Truncate(time.Minute)
		return start, start.Add(time.Minute)
	case PeriodDay:
		return DayStart(y, m, d, loc), DayStart(y, m, d+1, loc)
	case PeriodWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return DayStart(y, m, d-back, loc), DayStart(y, m, d-back+7, loc)
	case PeriodMonth:
		return DayStart(y, m, 1, loc), DayStart(y, m+1, 1, loc)
	}
	return time.Time{}, time.Time{}
}

// DayStart is the first instant of the date y-m-d in loc (m and d may
// overflow, as for time.Date). Where the clocks skip midnight (Santiago,
// Havana, the Azores on their summer-time night) the day begins when they
// jump: time.Date answers an instant of the day before there, which ended
// that day's periods an hour early and dropped its daily rate-limit counts
// (the time probe, 2026-12-07).
func DayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	if t.Hour() == 0 {
		return t
	}
	wy, wm, wd := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Date()
	if ty, tm, td := t.Date(); ty != wy || tm != wm || td != wd {
		_, t = t.ZoneBounds() // the jump over midnight
	}
	return t
}

// BudgetRule caps spend per period for one subject, or for each subject of
// its scope when Subject is empty.
type BudgetRule struct {
	Name  string
	Scope Scope
	// Subject is a key id, a workspace, "workspace/team", "workspace/user",
	// or "" for each.
	Subject string
	Limit   MicroEUR
	Period  Period
	// WarnAt is the share of Limit from which answers carry a warning.
	WarnAt float64
	// Downgrade budgets never refuse: the policy reads them as exceeded
	// and restricts the choice instead.
	Downgrade bool

	s1, s2 string // Subject split at its first "/"
}

// RateRule caps requests and tokens per minute and per day (0: no cap).
type RateRule struct {
	Name              string
	Scope             Scope
	Subject           string // as BudgetRule's; a model id for ScopeModel
	RequestsPerMinute int64
	TokensPerMinute   int64
	RequestsPerDay    int64
	TokensPerDay      int64

	s1, s2 string
}

// Limits is a compiled, immutable set of budgets and rate limits. Swap a
// new one in with Ledger.SetLimits on reload.
type Limits struct {
	loc       *time.Location
	budgets   []BudgetRule
	rates     []RateRule
	downgrade bool // some budget is a downgrade budget
	// budgetIdx and rateIdx find the rules a request meets without
	// reading the others (ruleIndex).
	budgetIdx, rateIdx ruleIndex
}

// ruleIndex finds the rules of one kind that a request's subject meets:
// those of a scope for every subject (no subject given), and those of one
// subject by scope and subject. Each request scanned every rule, and sized
// its counters for all of them: 500 budgets and 300 rate limits of other
// teams and keys cost it 95 µs and 239 KB (the tenancy probe).
type ruleIndex struct {
	each [ScopeModel + 1][]int32
	// few holds the rules of named subjects while there are at most
	// fewNamed of them, scanned in order; named, a map, holds them beyond
	// that. A key's own limits name one subject, the key: a map each for
	// its budgets and its rate limits was 1.3 KB of the 2.2 KB a key's
	// limits took, 5 MB of the heap at 4,000 keys (2026-12-08).
	few   []namedRules
	named map[ruleSubject][]int32
	// hasNamed: some rule of the scope names a subject.
	hasNamed [ScopeModel + 1]bool
}

// fewNamed is how many named subjects ruleIndex scans before it keeps a
// map: comparing a few scopes and short strings costs less than hashing.
const fewNamed = 8

// namedRules are the rules of one named subject.
type namedRules struct {
	ruleSubject
	rules []int32
}

// ruleSubject is a rule's scope and subject, as splitSubject splits it.
type ruleSubject struct {
	scope  Scope
	s1, s2 string
}

// add indexes rule i.
func (x *ruleIndex) add(i int, scope Scope, subject, s1, s2 string) {
	if scope > ScopeModel {
		return
	}
	if subject == "" {
		x.each[scope] = append(x.each[scope], int32(i))
		return
	}
	x.hasNamed[scope] = true
	k := ruleSubject{scope, s1, s2}
	if x.named != nil {
		x.named[k] = append(x.named[k], int32(i))
		return
	}
	for j := range x.few {
		if x.few[j].ruleSubject == k {
			x.few[j].rules = append(x.few[j].rules, int32(i))
			return
		}
	}
	if len(x.few) < fewNamed {
		x.few = append(x.few, namedRules{k, []int32{int32(i)}})
		return
	}
	x.named = make(map[ruleSubject][]int32, len(x.few)+1)
	for _, n := range x.few {
		x.named[n.ruleSubject] = n.rules
	}
	x.few = nil
	x.named[k] = []int32{int32(i)}
}

// of returns the rules of one named subject.
func (x *ruleIndex) of(k ruleSubject) []int32 {
	if x.named != nil {
		return x.named[k]
	}
	for j := range x.few {
		if x.few[j].ruleSubject == k {
			return x.few[j].rules
		}
	}
	return nil
}

// covers reports whether a rule of scope sc meets sub.
func (x *ruleIndex) covers(sc Scope, sub *Subject) bool {
	s1, s2, ok := subjectOf(sc, sub, "")
	return ok && sc <= ScopeModel && (len(x.each[sc]) > 0 || (x.hasNamed[sc] && len(x.of(ruleSubject{sc, s1, s2})) > 0))
}

// BudgetsOf reports whether a budget of scope sc meets sub: the budget
// gauges read only the workspaces and teams that have one (each read is a
// round trip to Redis: the tenancy probe counted 490 a second at 1,000
// workspaces, with no traffic).
func (l *Limits) BudgetsOf(sc Scope, sub Subject) bool { return l.budgetIdx.covers(sc, &sub) }

// matches appends to dst the indexes of the rules a request of sub on
// model meets, in the rules' order.
func (x *ruleIndex) matches(dst []int32, sub *Subject, model string) []int32 {
	for sc := ScopeKey; sc <= ScopeModel; sc++ {
		if len(x.each[sc]) == 0 && !x.hasNamed[sc] {
			continue
		}
		s1, s2, ok := subjectOf(sc, sub, model)
		if !ok {
			continue
		}
		dst = append(dst, x.each[sc]...)
		if x.hasNamed[sc] {
			dst = append(dst, x.of(ruleSubject{sc, s1, s2})...)
		}
	}
	slices.Sort(dst)
	return dst
}

// MaxLimit is the largest budget: counters stay exact in Redis's Lua
// numbers (doubles, exact for integers below 2^53 micro-EUR) with room for
// spend past the limit.
const MaxLimit = MicroEUR(config.MaxBudgetEUR * 1e6)

// NewLimits checks and compiles rules; loc is where days, weeks and months
// start (nil: UTC).
func NewLimits(loc *time.Location, budgets []BudgetRule, rates []RateRule) (*Limits, error) {
	return newLimits(loc, append([]BudgetRule(nil), budgets...), append([]RateRule(nil), rates...))
}

// newLimits is NewLimits keeping budgets and rates, which the caller gives
// up.
func newLimits(loc *time.Location, budgets []BudgetRule, rates []RateRule) (*Limits, error) {
	if loc == nil {
		loc = time.UTC
	}
	l := &Limits{loc: loc, budgets: budgets, rates: rates}
	var errs []error
	for i := range l.budgets {
		b := &l.budgets[i]
		switch {
		case b.Name == "":
			errs = append(errs, fmt.Errorf("budget %d: no name", i))
		case b.Scope < ScopeKey || b.Scope > ScopeGlobal:
			errs = append(errs, fmt.Errorf("budget %s: scope %s cannot hold a budget", b.Name, b.Scope))
		case b.Limit <= 0 || b.Limit > MaxLimit:
			errs = append(errs, fmt.Errorf("budget %s: limit must be positive and at most %s", b.Name, MaxLimit))
		case b.Period == PeriodMinute || b.Period >= numPeriods:
			errs = append(errs, fmt.Errorf("budget %s: period %s", b.Name, b.Period))
		case b.Scope == ScopeGlobal && b.Subject != "":
			errs = append(errs, fmt.Errorf("budget %s: a global budget has no subject", b.Name))
		}
		if b.WarnAt <= 0 || b.WarnAt > 1 {
			b.WarnAt = 0.8
		}
		b.s1, b.s2 = splitSubject(b.Scope, b.Subject)
		l.downgrade = l.downgrade || b.Downgrade
		l.budgetIdx.add(i, b.Scope, b.Subject, b.s1, b.s2)
	}
	for i := range l.rates {
		r := &l.rates[i]
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("rate limit %d: no name", i))
		case r.Scope < ScopeKey || r.Scope > ScopeModel:
			errs = append(errs, fmt.Errorf("rate limit %s: scope %s", r.Name, r.Scope))
		case r.RequestsPerMinute < 0 || r.TokensPerMinute < 0 || r.RequestsPerDay < 0 || r.TokensPerDay < 0:
			errs = append(errs, fmt.Errorf("rate limit %s: negative limit", r.Name))
		}
		r.s1, r.s2 = splitSubject(r.Scope, r.Subject)
		l.rateIdx.add(i, r.Scope, r.Subject, r.s1, r.s2)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// Location is where the limits' days, weeks and months start.
func (l *Limits) Location() *time.Location { return l.loc }

// Budgets returns the budget rules. The slice must not be modified.
func (l *Limits) Budgets() []BudgetRule { return l.budgets }

// RateLimits returns the rate rules. The slice must not be modified.
func (l *Limits) RateLimits() []RateRule { return l.rates }

// splitSubject splits "workspace/name" for the scopes whose subjects live
// inside a workspace, the form counters keep them in.
func splitSubject(s Scope, subject string) (string, string) {
	if s == ScopeTeam || s == ScopeUser {
		if a, b, ok := strings.Cut(subject, "/"); ok {
			return a, b
		}
	}
	return subject, ""
}

// LimitsFromConfig compiles the budgets and rate_limits sections of a
// validated config.
func LimitsFromConfig(c *config.Config) (*Limits, error) {
	loc, err := time.LoadLocation(c.Budgets.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("budgets.timezone: %w", err)
	}
	var budgets []BudgetRule
	for _, b := range c.Budgets.Limits {
		scope, err := ParseScope(b.Scope)
		if err != nil {
			return nil, fmt.Errorf("budget %s: %w", b.Name, err)
		}
		period, err := ParsePeriod(b.Period)
		if err != nil {
			return nil, fmt.Errorf("budget %s: %w", b.Name, err)
		}
		budgets = append(budgets, BudgetRule{Name: b.Name, Scope: scope, Subject: b.Subject, Limit: FromEUR(b.AmountEUR),
			Period: period, WarnAt: b.WarnAt, Downgrade: b.Action == "downgrade"})
	}
	var rates []RateRule
	for _, r := range c.RateLimits {
		scope, err := ParseScope(r.Scope)
		if err != nil {
			return nil, fmt.Errorf("rate limit %s: %w", r.Name, err)
		}
		rates = append(rates, RateRule{Name: r.Name, Scope: scope, Subject: r.Subject,
			RequestsPerMinute: r.RequestsPerMinute, TokensPerMinute: r.TokensPerMinute,
			RequestsPerDay: r.RequestsPerDay, TokensPerDay: r.TokensPerDay})
	}
	return NewLimits(loc, budgets, rates)
}

// KeyLimitsFromConfig compiles a key's own budgets and rate limits (the key
// store's record) in the configured time zone (loc; nil: UTC). Budgets are
// named by their period ("day", …), the rate limit "rate".
func KeyLimitsFromConfig(keyID string, l *config.Limits, loc *time.Location) (*Limits, error) {
	// The store checks a key's limits so; a record written otherwise
	// (by hand, by an older version) is refused, not read loosely
	// (an action "nope" as block, warn_at 3 as the default).
	if errs := l.Check("limits"); len(errs) > 0 {
		return nil, fmt.Errorf("key %s: %w", keyID, errs[0])
	}
	var budgets []BudgetRule
	for i, b := range l.Budgets {
		period, err := ParsePeriod(b.Period)
		if err != nil {
			return nil, fmt.Errorf("key %s budget %d: %w", keyID, i, err)
		}
		name := b.Period
		for _, o := range budgets {
			if o.Name == name {
				name += "-" + strconv.Itoa(i)
			}
		}
		budgets = append(budgets, BudgetRule{Name: name, Limit: FromEUR(b.AmountEUR), Period: period, WarnAt: b.WarnAt,
			Downgrade: b.Action == "downgrade"})
	}
	var rates []RateRule
	if r := l.RateLimit; r != (config.RateLimit{}) {
		rates = append(rates, RateRule{Name: "rate", RequestsPerMinute: r.RequestsPerMinute, TokensPerMinute: r.TokensPerMinute,
			RequestsPerDay: r.RequestsPerDay, TokensPerDay: r.TokensPerDay})
	}
	kl, err := NewKeyLimits(keyID, budgets, rates)
	if err != nil {
		return nil, err
	}
	if loc != nil {
		kl.loc = loc
	}
	return kl, nil
}

// NewKeyLimits compiles a key's own budgets and rate limits (kept with the
// key in the key store) for Request.Extra. Each rule applies to that key
// only, and its name becomes "key.<id>.<name>", which no configured rule
// can take, so its counters are its own.
func NewKeyLimits(keyID string, budgets []BudgetRule, rates []RateRule) (*Limits, error) {
	bs := append([]BudgetRule(nil), budgets...)
	for i := range bs {
		bs[i].Name, bs[i].Scope, bs[i].Subject = "key."+keyID+"."+bs[i].Name, ScopeKey, keyID
	}
	rs := append([]RateRule(nil), rates...)
	for i := range rs {
		rs[i].Name, rs[i].Scope, rs[i].Subject = "key."+keyID+"."+rs[i].Name, ScopeKey, keyID
	}
	return newLimits(nil, bs, rs)
}
