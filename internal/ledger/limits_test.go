package ledger

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

func TestPeriodBounds(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	ny, _ := time.LoadLocation("America/New_York")
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	cases := map[string]struct {
		p          Period
		loc        *time.Location
		t          time.Time
		start, end time.Time
	}{
		"day in Berlin, UTC still the day before": {PeriodDay, berlin, time.Date(2025, 6, 30, 22, 30, 0, 0, time.UTC),
			at(berlin, 2025, 7, 1, 0, 0), at(berlin, 2025, 7, 2, 0, 0)},
		"the 23-hour day of the spring DST change": {PeriodDay, berlin, at(berlin, 2025, 3, 30, 12, 0),
			at(berlin, 2025, 3, 30, 0, 0), at(berlin, 2025, 3, 31, 0, 0)},
		"week starts Monday, Sunday evening": {PeriodWeek, ny, at(ny, 2025, 11, 2, 23, 0),
			at(ny, 2025, 10, 27, 0, 0), at(ny, 2025, 11, 3, 0, 0)},
		"week starts Monday, Monday midnight": {PeriodWeek, time.UTC, at(time.UTC, 2025, 3, 10, 0, 0),
			at(time.UTC, 2025, 3, 10, 0, 0), at(time.UTC, 2025, 3, 17, 0, 0)},
		"month across a year": {PeriodMonth, berlin, at(berlin, 2025, 12, 31, 23, 59),
			at(berlin, 2025, 12, 1, 0, 0), at(berlin, 2026, 1, 1, 0, 0)},
		"February in a leap year": {PeriodMonth, time.UTC, at(time.UTC, 2028, 2, 29, 12, 0),
			at(time.UTC, 2028, 2, 1, 0, 0), at(time.UTC, 2028, 3, 1, 0, 0)},
		"minute": {PeriodMinute, berlin, time.Date(2025, 3, 14, 12, 0, 30, 0, time.UTC),
			time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC), time.Date(2025, 3, 14, 12, 1, 0, 0, time.UTC)},
		"total never ends": {PeriodTotal, berlin, at(berlin, 2025, 1, 1, 0, 0), time.Time{}, time.Time{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, e := tc.p.Bounds(tc.t, tc.loc)
			if !s.Equal(tc.start) || !e.Equal(tc.end) {
				t.Fatalf("bounds %s – %s, want %s – %s", s, e, tc.start, tc.end)
			}
		})
	}
}

// Where the clocks skip midnight, a day begins when they jump: every instant
// of two years lies in its own day, week and month, and each day ends where
// the next begins (the time probe: Santiago's day of 2026-09-05 ended at
// 23:00, an hour early, and its daily counts were dropped).
func TestPeriodBoundsWhereMidnightIsSkipped(t *testing.T) {
	santiago, _ := time.LoadLocation("America/Santiago")
	// 2026-09-06 00:00 -04 does not exist: the clocks go to 01:00 -03.
	if s, e := PeriodDay.Bounds(time.Date(2026, 9, 5, 23, 30, 0, 0, santiago), santiago); !e.Equal(time.Date(2026, 9, 6, 4, 0, 0, 0, time.UTC)) ||
		!s.Equal(time.Date(2026, 9, 5, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("Santiago's 2026-09-05: %s – %s, want 04:00Z – next day 04:00Z (01:00 -03)", s, e)
	}
	for _, zone := range []string{"America/Santiago", "America/Havana", "Atlantic/Azores", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); at.Year() < 2028; at = at.Add(15 * time.Minute) {
			for _, p := range []Period{PeriodDay, PeriodWeek, PeriodMonth} {
				s, e := p.Bounds(at, loc)
				if at.Before(s) || !at.Before(e) {
					t.Fatalf("%s %s: %s lies outside %s – %s", zone, p, at.In(loc), s.In(loc), e.In(loc))
				}
				if _, prevEnd := p.Bounds(s.Add(-time.Millisecond), loc); !prevEnd.Equal(s) {
					t.Fatalf("%s %s: the period before ends %s, this one starts %s", zone, p, prevEnd.In(loc), s.In(loc))
				}
			}
		}
	}
}

func TestMoney(t *testing.T) {
	if FromEUR(0.1)+FromEUR(0.2) != FromEUR(0.3) {
		t.Error("0.1 + 0.2 EUR is not 0.3 EUR")
	}
	if got := CeilEUR(0.0000001); got != 1 {
		t.Errorf("CeilEUR of a tenth of a micro-euro = %d, want 1", got)
	}
	if got := CeilEUR(1.5); got != 1_500_000 {
		t.Errorf("CeilEUR(1.5) = %d", got)
	}
	if FromEUR(-1) != 0 || CeilEUR(-1) != 0 || FromEUR(0) != 0 {
		t.Error("negative and zero amounts are not 0")
	}
	// A charge is never rounded to nothing: an embedding at 0.09 µEUR was
	// free (a helper's finding).
	if got := FromEUR(9e-8); got != 1 {
		t.Errorf("FromEUR of 0.09 µEUR = %d, want 1", got)
	}
	var sum MicroEUR
	for range 1_000_000 {
		sum += FromEUR(0.000137) // a short request to a cheap model
	}
	if sum.EUR() != 137 {
		t.Errorf("a million charges of 137 µEUR sum to %v EUR", sum.EUR())
	}
}

func TestLimitsFromConfig(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m1}
providers: [{name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}]
models: [{id: m1, provider: p1, context_window: 1000}]
workspaces: [{name: acme, teams: [{name: ml}]}]
budgets:
  timezone: Europe/Berlin
  limits:
    - {name: ml-month, scope: team, subject: acme/ml, amount_eur: 500, period: month}
    - {name: each-key, scope: key, amount_eur: 5.5, period: day, action: downgrade, warn_at: 0.9}
rate_limits:
  - {name: m1-tpm, scope: model, subject: m1, tokens_per_minute: 100000}
`))
	if err != nil {
		t.Fatal(err)
	}
	l, err := LimitsFromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if l.Location().String() != "Europe/Berlin" || len(l.Budgets()) != 2 || len(l.RateLimits()) != 1 {
		t.Fatalf("limits %+v", l)
	}
	b := l.Budgets()[0]
	if b.Scope != ScopeTeam || b.Limit != 500_000_000 || b.Period != PeriodMonth || b.WarnAt != 0.8 || b.Downgrade || b.s1 != "acme" || b.s2 != "ml" {
		t.Errorf("team budget %+v", b)
	}
	if b := l.Budgets()[1]; b.Limit != 5_500_000 || !b.Downgrade || b.WarnAt != 0.9 || b.Subject != "" {
		t.Errorf("key budget %+v", b)
	}
	if r := l.RateLimits()[0]; r.Scope != ScopeModel || r.Subject != "m1" || r.TokensPerMinute != 100000 {
		t.Errorf("rate limit %+v", r)
	}
}

// TestDowngrades: the edge peeks at budgets for the policy only when a
// downgrade budget applies to the request's subject.
func TestDowngrades(t *testing.T) {
	lim := limits(t, time.UTC, []BudgetRule{
		{Name: "acme-month", Scope: ScopeWorkspace, Subject: "acme", Limit: eur(100), Period: PeriodMonth},
		{Name: "ml-soft", Scope: ScopeTeam, Subject: "acme/ml", Limit: eur(10), Period: PeriodDay, Downgrade: true},
		{Name: "each-user-soft", Scope: ScopeUser, Limit: eur(1), Period: PeriodDay, Downgrade: true},
	}, nil)
	blockOnly := limits(t, time.UTC, []BudgetRule{{Name: "all", Scope: ScopeGlobal, Limit: eur(1), Period: PeriodDay}}, nil)
	keyOwn, err := NewKeyLimits("k1", []BudgetRule{{Name: "soft", Limit: eur(1), Period: PeriodDay, Downgrade: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		lim  *Limits
		req  Request
		want bool
	}{
		"team's downgrade budget":          {lim, Request{Subject: Subject{Workspace: "acme", Team: "ml"}}, true},
		"another team: block budget only":  {lim, Request{Subject: Subject{Workspace: "acme", Team: "ops"}}, false},
		"each user's downgrade budget":     {lim, Request{Subject: Subject{Workspace: "beta", User: "bob"}}, true},
		"no user: the key is its own user": {lim, Request{Subject: Subject{Workspace: "acme", Key: "k1"}}, true},
		"anonymous":                        {lim, Request{Subject: Subject{Workspace: "acme"}}, false},
		"block budgets only":               {blockOnly, Request{Subject: Subject{Workspace: "acme", Team: "ml"}}, false},
		"the key's own downgrade budget":   {blockOnly, Request{Subject: Subject{Key: "k1"}, Extra: keyOwn}, true},
		"nothing configured":               {limits(t, time.UTC, nil, nil), Request{Subject: Subject{Key: "k1", Workspace: "acme"}}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := New(nil, tc.lim, Options{}) // Downgrades never reaches the store
			if got := l.Downgrades(&tc.req); got != tc.want {
				t.Errorf("Downgrades = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestKeyLimitsRecordIsChecked: a key's limits are read as the store
// checks them; a record written otherwise does not compile (the edge then
// refuses the key's requests) instead of being read loosely.
func TestKeyLimitsRecordIsChecked(t *testing.T) {
	for name, l := range map[string]config.Limits{
		"unknown action":  {Budgets: []config.Budget{{AmountEUR: 5, Period: "day", Action: "nope"}}},
		"warn_at above 1": {Budgets: []config.Budget{{AmountEUR: 5, Period: "day", WarnAt: 3}}},
		"huge rate limit": {RateLimit: config.RateLimit{TokensPerMinute: 9223372036854775807}},
		"unknown period":  {Budgets: []config.Budget{{AmountEUR: 5, Period: "fortnight"}}},
	} {
		if _, err := KeyLimitsFromConfig("k", &l, nil); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
	if _, err := KeyLimitsFromConfig("k", &config.Limits{Budgets: []config.Budget{{AmountEUR: 5, Period: "day", Action: "downgrade", WarnAt: 1}},
		RateLimit: config.RateLimit{RequestsPerMinute: 60}}, nil); err != nil {
		t.Errorf("valid limits: %v", err)
	}
}

// TestRuleIndexFindsWhatAScanFinds: the rules a request meets, found by
// the index, are those a scan of every rule finds, in the rules' order.
func TestRuleIndexFindsWhatAScanFinds(t *testing.T) {
	var budgets []BudgetRule
	var rates []RateRule
	subjects := map[Scope][]string{ScopeKey: {"", "k1", "k2"}, ScopeUser: {"", "acme/alice", "acme/bob"},
		ScopeTeam: {"", "acme/ml", "beta/ml"}, ScopeWorkspace: {"", "acme", "beta"}, ScopeGlobal: {""}, ScopeModel: {"", "m1", "m2"}}
	for sc := ScopeKey; sc <= ScopeModel; sc++ {
		for i, sub := range subjects[sc] {
			name := fmt.Sprintf("%s-%d", sc, i)
			if sc != ScopeModel {
				budgets = append(budgets, BudgetRule{Name: name, Scope: sc, Subject: sub, Limit: eur(1), Period: PeriodDay})
			}
			rates = append(rates, RateRule{Name: name, Scope: sc, Subject: sub, RequestsPerMinute: 1})
		}
	}
	budgets = append(budgets, BudgetRule{Name: "k1-again", Scope: ScopeKey, Subject: "k1", Limit: eur(2), Period: PeriodMonth})
	l, err := NewLimits(nil, budgets, rates)
	if err != nil {
		t.Fatal(err)
	}
	// Both forms of the index: 8 named subjects of budgets in a slice, 10
	// of rate limits in a map.
	if l.budgetIdx.named != nil || len(l.budgetIdx.few) != 8 || l.rateIdx.named == nil || len(l.rateIdx.named) != 10 {
		t.Fatalf("budgets: %d few, map %v; rates: %d few, %d in the map", len(l.budgetIdx.few), l.budgetIdx.named != nil, len(l.rateIdx.few), len(l.rateIdx.named))
	}
	scan := func(n int, rule func(i int) (Scope, string, string, string), sub *Subject, model string) []int32 {
		var out []int32
		for i := range n {
			sc, subject, r1, r2 := rule(i)
			if s1, s2, ok := subjectOf(sc, sub, model); ok && (subject == "" || (r1 == s1 && r2 == s2)) {
				out = append(out, int32(i))
			}
		}
		return out
	}
	for _, sub := range []Subject{{Key: "k1", User: "alice", Team: "ml", Workspace: "acme"}, {Key: "k2", Workspace: "beta"},
		{Key: "k3", Team: "ml", Workspace: "beta"}, {}, {Workspace: "acme", User: "bob"}} {
		for _, model := range []string{"", "m1", "m3"} {
			wantB := scan(len(l.budgets), func(i int) (Scope, string, string, string) {
				b := &l.budgets[i]
				return b.Scope, b.Subject, b.s1, b.s2
			}, &sub, model)
			wantR := scan(len(l.rates), func(i int) (Scope, string, string, string) {
				r := &l.rates[i]
				return r.Scope, r.Subject, r.s1, r.s2
			}, &sub, model)
			if got := l.budgetIdx.matches(nil, &sub, model); !slices.Equal(got, wantB) {
				t.Errorf("%+v %q budgets: %v, a scan finds %v", sub, model, got, wantB)
			}
			if got := l.rateIdx.matches(nil, &sub, model); !slices.Equal(got, wantR) {
				t.Errorf("%+v %q rates: %v, a scan finds %v", sub, model, got, wantR)
			}
		}
	}
}

// TestBudgetsOf: which workspaces and teams have a budget of their own,
// named or one for each.
func TestBudgetsOf(t *testing.T) {
	l, err := NewLimits(nil, []BudgetRule{
		{Name: "acme", Scope: ScopeWorkspace, Subject: "acme", Limit: eur(1), Period: PeriodDay},
		{Name: "each-team", Scope: ScopeTeam, Limit: eur(1), Period: PeriodDay},
	}, []RateRule{{Name: "beta", Scope: ScopeWorkspace, Subject: "beta", RequestsPerMinute: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sc   Scope
		sub  Subject
		want bool
	}{
		{ScopeWorkspace, Subject{Workspace: "acme"}, true},
		{ScopeWorkspace, Subject{Workspace: "beta"}, false}, // a rate limit is no budget
		{ScopeTeam, Subject{Workspace: "beta", Team: "ml"}, true},
		{ScopeGlobal, Subject{}, false},
	} {
		if got := l.BudgetsOf(tc.sc, tc.sub); got != tc.want {
			t.Errorf("%s %+v: %v", tc.sc, tc.sub, got)
		}
	}
}
