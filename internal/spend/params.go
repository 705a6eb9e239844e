package spend

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/store"
)

// InvalidError is a query parameter that does not parse; Field names it.
type InvalidError struct {
	Field, Msg string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

// Params are a report's parameters as text: the query string of
// GET /admin/spend and the flags of `stellwerk spend` are the same names.
type Params struct {
	// Since and Until bound the range, Until exclusive. Each is an RFC 3339
	// time, a date (YYYY-MM-DD, midnight in the time zone), "now", or a
	// duration before now ("36h", "7d"). Defaults: Until now, Since 30
	// days before Until.
	Since, Until string
	// GroupBy is a comma-separated list of Dims.
	GroupBy string
	// TimeZone is an IANA zone for dates and days; default the caller's
	// (budgets.timezone).
	TimeZone string
	// Filter keeps rows whose dim has this value.
	Filter map[Dim]string
}

// defaultRange is the range of a report that names no since.
const defaultRange = 30 * 24 * time.Hour

// Resolve checks the parameters together and makes a Query; every problem
// is reported (errors.Join of *InvalidError).
func (p Params) Resolve(now time.Time, defaultTZ string) (Query, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	tz := p.TimeZone
	if tz == "" {
		tz = defaultTZ
	}
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || strings.EqualFold(tz, "local") {
		bad("tz", "%q is not an IANA time zone (e.g. Europe/Berlin)", tz)
		loc = time.UTC
	}
	q := Query{Location: loc}
	q.Until = now
	if p.Until != "" {
		if q.Until, err = ParseTime(p.Until, now, loc); err != nil {
			bad("until", "%v", err)
		}
	}
	q.Since = q.Until.Add(-defaultRange)
	if p.Since != "" {
		if q.Since, err = ParseTime(p.Since, now, loc); err != nil {
			bad("since", "%v", err)
		}
	}
	if len(errs) == 0 && !q.Until.After(q.Since) {
		bad("until", "must be after since (%s)", q.Since.Format(time.RFC3339))
	}
	for _, s := range strings.Split(p.GroupBy, ",") {
		s = strings.TrimSpace(strings.ToLower(s))
		if s == "" {
			continue
		}
		d := Dim(s)
		if !slices.Contains(Dims, d) {
			bad("group_by", "unknown dimension %q; use any of %s", s, dimList(Dims))
			continue
		}
		if !slices.Contains(q.GroupBy, d) {
			q.GroupBy = append(q.GroupBy, d)
		}
	}
	// Team and user names are a workspace's own: two workspaces' "ml"
	// teams are two teams, so they are grouped with their workspace (a
	// helper's report had summed them as one). So are end users: the
	// apps of two workspaces name their own "user-1".
	if i := slices.IndexFunc(q.GroupBy, func(d Dim) bool { return d == DimTeam || d == DimUser || d == DimEndUser }); i >= 0 && !slices.Contains(q.GroupBy, DimWorkspace) {
		q.GroupBy = slices.Insert(q.GroupBy, i, DimWorkspace)
	}
	for d, v := range p.Filter {
		if !slices.Contains(FilterDims, d) {
			bad(string(d), "cannot filter on this; filter on any of %s", dimList(FilterDims))
			continue
		}
		if q.Filter == nil {
			q.Filter = map[Dim]string{}
		}
		q.Filter[d] = v
	}
	// team=acme/ml names the team as budgets do: workspace acme's ml.
	if ws, team, ok := strings.Cut(q.Filter[DimTeam], "/"); ok {
		if w, set := q.Filter[DimWorkspace]; set && w != ws {
			bad("team", "%q is in workspace %q, not %q", q.Filter[DimTeam], ws, w)
		}
		q.Filter[DimWorkspace], q.Filter[DimTeam] = ws, team
	}
	if len(errs) > 0 {
		return Query{}, errors.Join(errs...)
	}
	return q, nil
}

func dimList(ds []Dim) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// ParseTime reads a report's bound: an RFC 3339 time, a date (midnight in
// loc), "now", or a duration before now: a Go duration ("36h", "90m") or a
// number of days ("7d").
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		y, m, d := t.Date()
		return ledger.DayStart(y, m, d, loc), nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 && days <= 100*366 {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2025-06-01T00:00:00Z), a date (2025-06-01), now, or a duration ago (36h, 7d)", truncate(s, 64))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// classify marks the database's unreachability (store.ErrUnavailable).
func classify(err error) error { return store.Classify(err) }
