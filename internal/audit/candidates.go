package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/stellwerk/stellwerk/internal/jsonw"
)

// Candidates are a decision's candidate lines. A record of schema version
// 2 writes them by columns, one list per member of Candidate, each list
// in the lines' order:
//
//	"candidates":{"model":["a","b"],"verdict":["chosen","eligible"],"rank":[0,1],…}
//
// model and verdict are always written; any other column only when one of
// its lines has a value (a line without one gets its zero: "", 0). On the
// shipped catalog this is ~45 % fewer bytes than a list of objects (schema
// version 1), which every per-record cost of the audit writer scales with
// (docs/audit.md). Decoding reads both forms, so records written before
// version 2 still replay, export and show in the console.
type Candidates []Candidate

// candidateColumns is the columns' shape, for decoding and as the
// reference encoding (MarshalJSON) the appending encoder is tested
// against. Its members are Candidate's, in Candidate's order.
type candidateColumns struct {
	Model            []string  `json:"model"`
	Provider         []string  `json:"provider,omitempty"`
	Verdict          []string  `json:"verdict"`
	Reason           []string  `json:"reason,omitempty"`
	Rank             []int     `json:"rank,omitempty"`
	Score            []float64 `json:"score,omitempty"`
	EstimatedCostEUR []float64 `json:"estimated_cost_eur,omitempty"`
	Quality          []float64 `json:"quality,omitempty"`
	LatencyMS        []int     `json:"latency_ms,omitempty"`
	Residency        []string  `json:"residency,omitempty"`
}

// MarshalJSON writes the lines by columns (see Candidates).
func (cs Candidates) MarshalJSON() ([]byte, error) {
	if cs == nil {
		return []byte("null"), nil
	}
	col := candidateColumns{Model: make([]string, 0, len(cs)), Verdict: make([]string, 0, len(cs))}
	for _, c := range cs {
		col.Model = append(col.Model, c.Model)
		col.Provider = append(col.Provider, c.Provider)
		col.Verdict = append(col.Verdict, c.Verdict)
		col.Reason = append(col.Reason, c.Reason)
		col.Rank = append(col.Rank, c.Rank)
		col.Score = append(col.Score, c.Score)
		col.EstimatedCostEUR = append(col.EstimatedCostEUR, Money(c.EstimatedCostEUR))
		col.Quality = append(col.Quality, c.Quality)
		col.LatencyMS = append(col.LatencyMS, c.LatencyMS)
		col.Residency = append(col.Residency, c.Residency)
	}
	col.Provider = nilIfZero(col.Provider)
	col.Reason = nilIfZero(col.Reason)
	col.Rank = nilIfZero(col.Rank)
	col.Score = nilIfZero(col.Score)
	col.EstimatedCostEUR = nilIfZero(col.EstimatedCostEUR)
	col.Quality = nilIfZero(col.Quality)
	col.LatencyMS = nilIfZero(col.LatencyMS)
	col.Residency = nilIfZero(col.Residency)
	return jsonw.Marshal(col)
}

func nilIfZero[T comparable](vs []T) []T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return vs
		}
	}
	return nil
}

// errColumns is a columns object whose lists are not all one length.
var errColumns = errors.New("audit: candidates: columns of different lengths")

// UnmarshalJSON reads the lines from either form: columns (schema version
// 2) or a list of objects (version 1).
func (cs *Candidates) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' { // encoding/json passes the value without the space around it
		return json.Unmarshal(b, (*[]Candidate)(cs))
	}
	var col candidateColumns
	if err := json.Unmarshal(b, &col); err != nil {
		return err
	}
	n := len(col.Model)
	if col.Model == nil || colLen(col.Verdict) != n {
		return fmt.Errorf("%w: %d models, %d verdicts", errColumns, colLen(col.Model), colLen(col.Verdict))
	}
	for _, l := range []int{colLen(col.Provider), colLen(col.Reason), colLen(col.Rank), colLen(col.Score),
		colLen(col.EstimatedCostEUR), colLen(col.Quality), colLen(col.LatencyMS), colLen(col.Residency)} {
		if l >= 0 && l != n {
			return fmt.Errorf("%w: %d models, a column of %d", errColumns, n, l)
		}
	}
	out := make(Candidates, n)
	for i := range out {
		c := &out[i]
		c.Model, c.Verdict = col.Model[i], col.Verdict[i]
		c.Provider = at(col.Provider, i)
		c.Reason = at(col.Reason, i)
		c.Rank = at(col.Rank, i)
		c.Score = at(col.Score, i)
		c.EstimatedCostEUR = at(col.EstimatedCostEUR, i)
		c.Quality = at(col.Quality, i)
		c.LatencyMS = at(col.LatencyMS, i)
		c.Residency = at(col.Residency, i)
	}
	*cs = out
	return nil
}

// colLen is a column's length, -1 when it is absent (or null).
func colLen[T any](vs []T) int {
	if vs == nil {
		return -1
	}
	return len(vs)
}

// at is vs[i], or the zero value of an absent column.
func at[T any](vs []T, i int) T {
	if vs == nil {
		var zero T
		return zero
	}
	return vs[i]
}

// tableLines are a CandidateTable's lines with their reasons, for writing
// by columns: the reasons are formatted into one buffer, which the lines'
// Reason strings point into, so the writer neither copies 71 lines nor
// allocates a string per reason. Only the writer's goroutine uses one,
// and only until the record is encoded.
type tableLines struct {
	lines   []Candidate
	reasons []byte
	ends    []int
	// model, provider, verdict and residency are those columns as the
	// last table wrote them: a router's tables list the same catalog in
	// the same order, so they are mostly written again as they were.
	model, provider, verdict, residency strColumnCache
}

// strColumnCache is a string column's values and bytes as last written.
// It may only hold strings that are never changed in place (the catalog's
// and the verdicts' are ordinary Go strings; the lines' reasons point into
// a buffer the next table overwrites, and are never cached).
type strColumnCache struct {
	vals []string
	enc  []byte
}

// fill makes t's lines those of tab; they are valid until the next fill.
func (t *tableLines) fill(tab CandidateTable) []Candidate {
	n := tab.Len()
	t.lines, t.reasons, t.ends = t.lines[:0], t.reasons[:0], t.ends[:0]
	for i := range n {
		t.lines = append(t.lines, tab.Candidate(i))
		t.reasons = tab.AppendReason(t.reasons, i)
		t.ends = append(t.ends, len(t.reasons))
	}
	// t.reasons no longer grows: the strings can point into it.
	start := 0
	for i := range t.lines {
		end := t.ends[i]
		if end > start {
			t.lines[i].Reason = unsafe.String(&t.reasons[start], end-start)
		}
		start = end
	}
	return t.lines
}

// candidateColumns writes the "candidates" member by columns: the same
// bytes as Candidates.MarshalJSON (TestEncodeMatches, TestEncodeTableMatches).
// The lines of a table (tl not nil) write the columns that repeat from
// the table before as they were (TestEncodeTableCache).
func (e *recordEncoder) candidateColumns(cs []Candidate, tl *tableLines) {
	var has struct{ provider, reason, rank, score, cost, quality, latency, residency bool }
	for i := range cs {
		c := &cs[i]
		has.provider = has.provider || c.Provider != ""
		has.reason = has.reason || c.Reason != ""
		has.rank = has.rank || c.Rank != 0
		has.score = has.score || c.Score != 0
		has.cost = has.cost || c.EstimatedCostEUR != 0
		has.quality = has.quality || c.Quality != 0
		has.latency = has.latency || c.LatencyMS != 0
		has.residency = has.residency || c.Residency != ""
	}
	e.Key("candidates")
	o := e.Open()
	var model, provider, verdict, residency *strColumnCache
	if tl != nil {
		model, provider, verdict, residency = &tl.model, &tl.provider, &tl.verdict, &tl.residency
	}
	strColumn(e, "model", cs, true, model, func(c *Candidate) string { return c.Model })
	strColumn(e, "provider", cs, has.provider, provider, func(c *Candidate) string { return c.Provider })
	strColumn(e, "verdict", cs, true, verdict, func(c *Candidate) string { return c.Verdict })
	strColumn(e, "reason", cs, has.reason, nil, func(c *Candidate) string { return c.Reason })
	column(e, "rank", cs, has.rank, integer, func(c *Candidate) int { return c.Rank })
	column(e, "score", cs, has.score, float, func(c *Candidate) float64 { return c.Score })
	column(e, "estimated_cost_eur", cs, has.cost, money, func(c *Candidate) float64 { return c.EstimatedCostEUR })
	column(e, "quality", cs, has.quality, float, func(c *Candidate) float64 { return c.Quality })
	column(e, "latency_ms", cs, has.latency, integer, func(c *Candidate) int { return c.LatencyMS })
	strColumn(e, "residency", cs, has.residency, residency, func(c *Candidate) string { return c.Residency })
	e.Close(o)
}

// column writes one column, each line's value appended by put, when
// write (some line has a value).
func column[T any](e *recordEncoder, k string, cs []Candidate, write bool, put func(*recordEncoder, T), v func(*Candidate) T) {
	if !write {
		return
	}
	e.Key(k)
	list(e, cs, put, v)
}

// list writes one column's list of values.
func list[T any](e *recordEncoder, cs []Candidate, put func(*recordEncoder, T), v func(*Candidate) T) {
	e.B = append(e.B, '[')
	for i := range cs {
		if i > 0 {
			e.B = append(e.B, ',')
		}
		put(e, v(&cs[i]))
	}
	e.B = append(e.B, ']')
}

// strColumn is column for strings, through c when it is not nil: the
// bytes c holds when every value is the one c wrote them from, else the
// column written and kept in c.
func strColumn(e *recordEncoder, k string, cs []Candidate, write bool, c *strColumnCache, v func(*Candidate) string) {
	if !write {
		return
	}
	if c == nil {
		e.Key(k)
		strList(e, cs, v)
		return
	}
	same := len(c.vals) == len(cs)
	for i := 0; same && i < len(cs); i++ {
		same = c.vals[i] == v(&cs[i])
	}
	e.Key(k)
	if same {
		e.B = append(e.B, c.enc...)
		return
	}
	start := len(e.B)
	strList(e, cs, v)
	c.enc = append(c.enc[:0], e.B[start:]...)
	c.vals = c.vals[:0]
	for i := range cs {
		c.vals = append(c.vals, v(&cs[i]))
	}
}

// strList is list for strings: a value equal to the line before's is
// copied from that line's bytes, not escaped again (a reason or a provider
// repeats down a column: "residency: workspace legal requires eu, model
// is us" for most of the shipped catalog).
func strList(e *recordEncoder, cs []Candidate, v func(*Candidate) string) {
	e.B = append(e.B, '[')
	var prev string
	ps, pe := 0, 0
	for i := range cs {
		if i > 0 {
			e.B = append(e.B, ',')
		}
		s := v(&cs[i])
		if i > 0 && s == prev {
			e.B = append(e.B, e.B[ps:pe]...)
			continue
		}
		ps = len(e.B)
		e.B = jsonw.AppendString(e.B, s)
		prev, pe = s, len(e.B)
	}
	e.B = append(e.B, ']')
}

// money appends Money(f) as float would (TestMoneyMatches,
// FuzzMoney), without strconv's search for the shortest digits, which
// a cost's ten significant digits make the slow case: the double nearest
// a decimal of at most fifteen significant digits reads back as no other
// such decimal, so the shortest digits of Money's result are Money's
// integer k itself, placed at its exponent, trailing zeros dropped. What
// float writes in exponent form (below 1e-6) or Money rounds without a
// scale of ten it can hold exactly goes the long way.
func money(e *recordEncoder, f float64) {
	a := math.Abs(f)
	if !(a >= 1e-6 && a < 1e9) {
		float(e, Money(f))
		return
	}
	x := moneyScale(a)
	if x < 0 || x > 15 {
		float(e, Money(f))
		return
	}
	p := math.Pow10(x)
	k := math.Round(f * p)
	if math.Abs(k/p) < 1e-6 {
		float(e, Money(f))
		return
	}
	if k < 0 {
		e.B = append(e.B, '-')
		k = -k
	}
	n, pow := uint64(k), pow10u[x]
	e.B = strconv.AppendUint(e.B, n/pow, 10)
	frac := n % pow
	if frac == 0 {
		return
	}
	for frac%10 == 0 {
		frac /= 10
		pow /= 10
	}
	e.B = append(e.B, '.')
	for p := pow / 10; p > frac; p /= 10 {
		e.B = append(e.B, '0')
	}
	e.B = strconv.AppendUint(e.B, frac, 10)
}

// moneyScale is Money's scale for a in [1e-6, 1e9): 9 − ⌊log₁₀ a⌋, the
// power of ten below a found in a table. Within 10⁻¹² of a power, where
// the last bit of math.Log10 decides which side a is on, it is computed
// as Money computes it; elsewhere ⌊log₁₀ a⌋ is more than 4·10⁻¹³ from an
// integer, hundreds of times math.Log10's error.
func moneyScale(a float64) int {
	n := 0 // pow10f[n] ≤ a < pow10f[n+1]
	for n < len(pow10f)-2 && a >= pow10f[n+1] {
		n++
	}
	if a < pow10f[n]*(1+1e-12) || a > pow10f[n+1]*(1-1e-12) {
		return 9 - int(math.Floor(math.Log10(a)))
	}
	return 9 - (n - 6)
}

// pow10f are the powers of ten from 1e-6 to 1e9.
var pow10f = [...]float64{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

var pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

func integer(e *recordEncoder, n int) { e.B = jsonw.AppendInt(e.B, int64(n)) }

// float appends f; a NaN or an infinity sets e.Err, as encoding/json
// refuses them.
func float(e *recordEncoder, f float64) {
	var err error
	if e.B, err = jsonw.AppendFloat(e.B, f); err != nil && e.Err == nil {
		e.Err = err
	}
}
