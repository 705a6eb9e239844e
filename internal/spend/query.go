package spend

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/csvcell"
	"github.com/stellwerk/stellwerk/internal/ledger"
)

// Dim is what a report can group by (and filter on).
type Dim string

const (
	DimKey       Dim = "key"
	DimUser      Dim = "user"
	DimTeam      Dim = "team"
	DimWorkspace Dim = "workspace"
	DimRoute     Dim = "route"
	DimModel     Dim = "model"
	DimProvider  Dim = "provider"
	DimStatus    Dim = "status"
	// DimEndUser is the end user the request named, DimTag the value of
	// its metadata member spend.tag names (Row.EndUser, Row.Tag).
	DimEndUser Dim = "end_user"
	DimTag     Dim = "tag"
	// DimDay is the request's date in the report's time zone (YYYY-MM-DD);
	// it groups but does not filter (Since and Until do).
	DimDay Dim = "day"
)

// Dims lists every Dim, in the order the documentation gives them.
var Dims = []Dim{DimKey, DimUser, DimTeam, DimWorkspace, DimRoute, DimModel, DimProvider, DimStatus, DimEndUser, DimTag, DimDay}

// FilterDims are the dims a query can filter on.
var FilterDims = Dims[:len(Dims)-1]

// column is the spend_requests column a dim reads ("" for day).
func (d Dim) column() string {
	switch d {
	case DimKey:
		return "key_id"
	case DimUser:
		return "user_name"
	case DimTeam, DimWorkspace, DimRoute, DimModel, DimProvider, DimStatus, DimEndUser, DimTag:
		return string(d)
	}
	return ""
}

// Query asks for the ledger's sums over [Since, Until), grouped.
type Query struct {
	Since, Until time.Time
	GroupBy      []Dim
	// Location is where days start, for DimDay (nil: UTC).
	Location *time.Location
	// Filter keeps rows whose dim equals the value (all must match).
	Filter map[Dim]string
}

// Sums are what a group of rows adds up to.
type Sums struct {
	Requests     int64 `json:"requests"`
	TokensIn     int64 `json:"tokens_in"`
	TokensOut    int64 `json:"tokens_out"`
	TokensCached int64 `json:"tokens_cached"`
	// Cost is exact; CostEUR is the same in euros for display.
	Cost    ledger.MicroEUR `json:"cost_micro_eur"`
	CostEUR float64         `json:"cost_eur"`
	// Estimated counts the requests whose usage was estimated.
	Estimated int64 `json:"estimated"`
}

func (s *Sums) add(o Sums) {
	s.Requests += o.Requests
	s.TokensIn += o.TokensIn
	s.TokensOut += o.TokensOut
	s.TokensCached += o.TokensCached
	s.Cost += o.Cost
	s.CostEUR = s.Cost.EUR()
	s.Estimated += o.Estimated
}

// Group is one line of a report: the values of the report's GroupBy dims,
// in its order, and their sums.
type Group struct {
	Values []string
	Sums
}

// Report is a query's answer.
type Report struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	TimeZone string    `json:"timezone"`
	GroupBy  []Dim     `json:"group_by"`
	Groups   []Group   `json:"-"`
	Total    Sums      `json:"total"`
}

// MarshalJSON writes the report with each group as one flat object: its
// dims by name, then its sums.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	head, err := json.Marshal((*plain)(r))
	if err != nil {
		return nil, err
	}
	b := append([]byte(`{"object":"spend.report",`), head[1:len(head)-1]...)
	b = append(b, `,"data":[`...)
	for i, g := range r.Groups {
		if i > 0 {
			b = append(b, ',')
		}
		obj, err := groupJSON(r.GroupBy, g)
		if err != nil {
			return nil, err
		}
		b = append(b, obj...)
	}
	return append(b, "]}"...), nil
}

// groupJSON is one group as a flat JSON object.
func groupJSON(dims []Dim, g Group) ([]byte, error) {
	b := []byte{'{'}
	for i, d := range dims {
		k, _ := json.Marshal(string(d))
		v, _ := json.Marshal(g.Values[i])
		b = append(append(append(append(b, k...), ':'), v...), ',')
	}
	s, err := json.Marshal(g.Sums)
	if err != nil {
		return nil, err
	}
	return append(b, s[1:]...), nil
}

// CSVHeader is the first line of a report as CSV.
func (r *Report) CSVHeader() []string {
	h := make([]string, 0, len(r.GroupBy)+6)
	for _, d := range r.GroupBy {
		h = append(h, string(d))
	}
	return append(h, "requests", "tokens_in", "tokens_out", "tokens_cached", "cost_eur", "estimated")
}

// WriteCSV writes the report as CSV: a header line, then one line per
// group. Costs are exact decimal euros (six places).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.CSVHeader()); err != nil {
		return err
	}
	rec := make([]string, 0, len(r.GroupBy)+6)
	for _, g := range r.Groups {
		rec = rec[:0]
		for _, v := range g.Values {
			rec = append(rec, csvcell.Text(v))
		}
		rec = append(rec, strconv.FormatInt(g.Requests, 10), strconv.FormatInt(g.TokensIn, 10), strconv.FormatInt(g.TokensOut, 10),
			strconv.FormatInt(g.TokensCached, 10), DecimalEUR(g.Cost), strconv.FormatInt(g.Estimated, 10))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// maxGroups is the most groups a report holds: a client's user and tag are
// its own word, and a client naming a new one per request would make a
// report grouped by them as large as the ledger.
var maxGroups = 100_000

// DecimalEUR formats micro-euros as an exact decimal ("12.000345").
func DecimalEUR(m ledger.MicroEUR) string {
	sign := ""
	v := int64(m)
	if v < 0 {
		sign, v = "-", -v
	}
	frac := strconv.FormatInt(v%1_000_000, 10)
	return sign + strconv.FormatInt(v/1_000_000, 10) + "." + strings.Repeat("0", 6-len(frac)) + frac
}

const dayMS = 24 * 60 * 60 * 1000

// Query sums the rows of q's range by its groups, ordered by the group
// values (byte order; days in date order). Errors of the database's reachability wrap
// store.ErrUnavailable.
func (s *Store) Query(ctx context.Context, q Query) (*Report, error) {
	if !q.Until.After(q.Since) {
		return nil, &InvalidError{Field: "until", Msg: "must be after since"}
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	rep := &Report{Since: q.Since, Until: q.Until, TimeZone: loc.String(), GroupBy: slices.Clone(q.GroupBy), Groups: []Group{}}
	if rep.GroupBy == nil {
		rep.GroupBy = []Dim{}
	}
	from, to := q.Since.UnixMilli(), q.Until.UnixMilli()
	var sel, where strings.Builder
	args := []any{from, to}
	for _, d := range q.GroupBy {
		switch {
		case d == DimDay:
			sel.WriteString(dayExpr(q.Since, q.Until, loc))
		case d.column() != "":
			sel.WriteString(d.column())
		default:
			return nil, &InvalidError{Field: "group_by", Msg: fmt.Sprintf("unknown dimension %q", d)}
		}
		sel.WriteString(", ")
	}
	filters := make([]Dim, 0, len(q.Filter))
	for d := range q.Filter {
		if d.column() == "" {
			return nil, &InvalidError{Field: string(d), Msg: "cannot filter on this"}
		}
		filters = append(filters, d)
	}
	slices.Sort(filters) // the same query text for the same filters
	for _, d := range filters {
		args = append(args, q.Filter[d])
		fmt.Fprintf(&where, " AND %s = $%d", d.column(), len(args))
	}
	text := "SELECT " + sel.String() + `COUNT(*),
	CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT), CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT),
	CAST(COALESCE(SUM(tokens_cached), 0) AS BIGINT), CAST(COALESCE(SUM(cost_micro_eur), 0) AS BIGINT),
	CAST(COALESCE(SUM(estimated), 0) AS BIGINT)
FROM spend_requests WHERE ts >= $1 AND ts < $2` + where.String()
	if n := len(q.GroupBy); n > 0 {
		pos := make([]string, n)
		for i := range pos {
			pos[i] = strconv.Itoa(i + 1)
		}
		text += " GROUP BY " + strings.Join(pos, ", ")
	}
	rows, err := s.db.SQL.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("spend ledger: %w", classify(err))
	}
	defer rows.Close()
	n := len(q.GroupBy)
	for rows.Next() {
		var g Group
		strs := make([]string, n)
		var day int64
		dest := make([]any, 0, n+6)
		for i, d := range q.GroupBy {
			if d == DimDay {
				dest = append(dest, &day)
			} else {
				dest = append(dest, &strs[i])
			}
		}
		var cost int64
		dest = append(dest, &g.Requests, &g.TokensIn, &g.TokensOut, &g.TokensCached, &cost, &g.Estimated)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("spend ledger: %w", classify(err))
		}
		for i, d := range q.GroupBy {
			if d == DimDay {
				strs[i] = time.Unix(day*(dayMS/1000), 0).UTC().Format(time.DateOnly)
			}
		}
		g.Cost, g.CostEUR, g.Values = ledger.MicroEUR(cost), ledger.MicroEUR(cost).EUR(), strs
		rep.Total.add(g.Sums)
		if n > 0 {
			if len(rep.Groups) == maxGroups {
				return nil, &InvalidError{Field: "group_by", Msg: fmt.Sprintf("the report has more than %d groups: filter it, shorten its period or group by fewer dimensions", maxGroups)}
			}
			rep.Groups = append(rep.Groups, g)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("spend ledger: %w", classify(err))
	}
	// Sorted here, by bytes: PostgreSQL's ORDER BY would follow its
	// collation, and the two backends would disagree.
	slices.SortFunc(rep.Groups, func(a, b Group) int { return slices.Compare(a.Values, b.Values) })
	return rep, nil
}

// dayExpr is SQL for a row's date in loc as days since 1970-01-01: the
// row's time plus its UTC offset, divided by a day. The offset changes only
// at the zone's transitions within [since, until), so the expression is a
// CASE over those (one branch a year or two for a zone with summer time,
// none for UTC), with integer arithmetic both dialects share.
func dayExpr(since, until time.Time, loc *time.Location) string {
	type span struct{ end, off int64 }
	var spans []span
	t := since.In(loc)
	for i := 0; i < 10_000; i++ {
		_, off := t.Zone()
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(until) {
			spans = append(spans, span{off: int64(off) * 1000})
			break
		}
		spans = append(spans, span{end: end.UnixMilli(), off: int64(off) * 1000})
		t = end.In(loc)
	}
	one := func(off int64) string {
		if off == 0 {
			return "ts / " + strconv.Itoa(dayMS)
		}
		return "(ts + (" + strconv.FormatInt(off, 10) + ")) / " + strconv.Itoa(dayMS)
	}
	if len(spans) == 1 {
		return one(spans[0].off)
	}
	var b strings.Builder
	b.WriteString("CASE")
	for _, s := range spans[:len(spans)-1] {
		fmt.Fprintf(&b, " WHEN ts < %d THEN %s", s.end, one(s.off))
	}
	fmt.Fprintf(&b, " ELSE %s END", one(spans[len(spans)-1].off))
	return b.String()
}
