package config

import (
	"fmt"
	"slices"
	"strings"
)

// Limits are the budgets and rate limits of one scope: a virtual key in the
// key store, or (later) a user, team, workspace or the whole installation in
// this file. Plain data; the ledger enforces it.
type Limits struct {
	Budgets   []Budget  `yaml:"budgets,omitempty" json:"budgets,omitempty"`
	RateLimit RateLimit `yaml:"rate_limit,omitempty" json:"rate_limit,omitzero"`
}

// Budget caps spend in EUR over a period.
type Budget struct {
	// AmountEUR is the cap, in the catalog's currency.
	AmountEUR float64 `yaml:"amount_eur" json:"amount_eur"`
	// Period is day, week, month or total.
	Period string `yaml:"period" json:"period"`
	// Action at 100%: block (429 budget_exceeded, the default) or
	// downgrade (the policy restricts to cheaper models).
	Action string `yaml:"action,omitempty" json:"action,omitempty"`
	// WarnAt is the fraction that warns (0: the default, 0.8).
	WarnAt float64 `yaml:"warn_at,omitempty" json:"warn_at,omitempty"`
}

// RateLimit caps requests and tokens per minute and per day (0: no limit).
type RateLimit struct {
	RequestsPerMinute int64 `yaml:"requests_per_minute,omitempty" json:"requests_per_minute,omitempty"`
	TokensPerMinute   int64 `yaml:"tokens_per_minute,omitempty" json:"tokens_per_minute,omitempty"`
	RequestsPerDay    int64 `yaml:"requests_per_day,omitempty" json:"requests_per_day,omitempty"`
	TokensPerDay      int64 `yaml:"tokens_per_day,omitempty" json:"tokens_per_day,omitempty"`
}

// IsZero reports whether nothing is limited.
func (l Limits) IsZero() bool { return len(l.Budgets) == 0 && l.RateLimit == RateLimit{} }

// MaxRateLimit bounds a rate limit's count, as configured rate limits
// are: counters stay exact in Redis's Lua numbers.
const MaxRateLimit = 1e15

// Check returns every problem of l, each naming its field under prefix.
func (l Limits) Check(prefix string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for i, b := range l.Budgets {
		f := fmt.Sprintf("%s.budgets[%d]", prefix, i)
		if !(b.AmountEUR >= MinBudgetEUR) || b.AmountEUR > MaxBudgetEUR {
			bad(f+".amount_eur", "must be at least %g and at most %.0f, got %v", MinBudgetEUR, float64(MaxBudgetEUR), b.AmountEUR)
		}
		if !slices.Contains(budgetPeriods, b.Period) {
			bad(f+".period", "%q is not one of %s", b.Period, strings.Join(budgetPeriods, ", "))
		}
		if b.Action != "" && !slices.Contains(budgetActions, b.Action) {
			bad(f+".action", "%q is not one of %s", b.Action, strings.Join(budgetActions, ", "))
		}
		if !(b.WarnAt >= 0 && b.WarnAt <= 1) {
			bad(f+".warn_at", "must be within [0, 1] (0: 0.8), got %v", b.WarnAt)
		}
	}
	r := l.RateLimit
	for name, v := range map[string]int64{"requests_per_minute": r.RequestsPerMinute, "tokens_per_minute": r.TokensPerMinute,
		"requests_per_day": r.RequestsPerDay, "tokens_per_day": r.TokensPerDay} {
		if v < 0 || v > MaxRateLimit {
			bad(prefix+".rate_limit."+name, "must be between 0 (no limit) and 10^15")
		}
	}
	return errs
}
