package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stellwerk/stellwerk/internal/jsonw"
	"github.com/stellwerk/stellwerk/internal/jsonw/jsonwtest"
)

// reflectRecord is the reference: encoding/json of Record with HTML
// escaping off, which the appending encoder must reproduce byte for byte.
func reflectRecord(r *Record) ([]byte, error) { return jsonwtest.Reflect(r) }

// replays are the values the replay member gets: nil, a map, a list.
var replays = []any{nil, map[string]any{"decision_id": "d", "latency_ms": map[string]int{"b": 2, "a": 1}, "html": "<&>"}, []any{1.5, "x"}}

// TestEncodeMatches fills every exported member of a record (through
// reflection, so a member added later is filled too) with random values,
// zero about a third of the time, and compares the two encoders.
func TestEncodeMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	failed := 0
	for i := 0; i < n; i++ {
		var r Record
		jsonwtest.Fill(rng, reflect.ValueOf(&r).Elem(), 0, replays...)
		want, werr := reflectRecord(&r)
		got, gerr := jsonRecord(&r)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("record %d: error %v, encoding/json's %v", i, gerr, werr)
		}
		if werr != nil {
			failed++
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d differs\n got: %s\nwant: %s", i, got, want)
		}
	}
	if failed == 0 || failed > n/4 {
		t.Errorf("%d of %d records could not be encoded: the filler should make a few (NaN, years beyond 9999) and no more", failed, n)
	}
}

// TestEncodeDecision: the shape of a routed decision, the record the writer
// sees thousands of times a second.
func TestEncodeDecision(t *testing.T) {
	r := decision(7, "support")
	want, err := reflectRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jsonRecord(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("err %v\n got: %s\nwant: %s", err, got, want)
	}
}

// catalogDecision is a decision record on the shipped catalog's scale: 71
// candidate lines, most of them rejected with a reason.
func catalogDecision() *Record {
	r := decision(7, "support")
	for len(r.Candidates) < 71 {
		c := r.Candidates[len(r.Candidates)%8]
		c.Model += fmt.Sprint("-", len(r.Candidates))
		c.Verdict, c.Reason = "rejected", "quality: 0.32 for summarization is below 90% of the best eligible model"
		r.Candidates = append(r.Candidates, c)
	}
	return r
}

// benchmarkEncoders compares the appending encoder with encoding/json on r.
func benchmarkEncoders(b *testing.B, r *Record) {
	for _, enc := range []struct {
		name string
		f    func(*Record) ([]byte, error)
	}{{"append", jsonRecord}, {"encoding_json", reflectRecord}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.f(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeDecision: a decision record on the shipped catalog's
// scale with replay inputs, as a generic map of 71 learned latencies (the
// record's decision.Inputs write themselves: BenchmarkInputsJSON).
func BenchmarkEncodeDecision(b *testing.B) {
	r := catalogDecision()
	lat := map[string]int{}
	for i, c := range r.Candidates {
		lat[c.Model] = 20 + i
	}
	r.Replay = map[string]any{"v": 1, "decision_id": r.ID, "path": "/v1/chat/completions", "model": "auto", "latency_ms": lat}
	benchmarkEncoders(b, r)
}

// BenchmarkEncodeNoReplay: the same record without replay inputs.
func BenchmarkEncodeNoReplay(b *testing.B) { benchmarkEncoders(b, catalogDecision()) }

// lines is a CandidateTable over ready lines, as a router's would be.
type lines []Candidate

func (l lines) Len() int { return len(l) }
func (l lines) Candidate(i int) Candidate {
	c := l[i]
	c.Reason = ""
	return c
}
func (l lines) AppendReason(dst []byte, i int) []byte { return append(dst, l[i].Reason...) }

// TestEncodeTableMatches: a record whose candidates come as a table is
// written with the same bytes as the record with those lines in
// Candidates (and as encoding/json writes that one), reasons that need
// escaping and reasons longer than the writer's scratch buffer included;
// CandidateList gives the lines back.
func TestEncodeTableMatches(t *testing.T) {
	r := catalogDecision()
	r.Candidates[3].Reason = `excluded by "residency" <eu> & on_prem` + "\n\u2028"
	r.Candidates[5].Reason = fmt.Sprint("policy: ", bytes.Repeat([]byte("a long reason "), 40))
	r.Candidates[6].Reason = ""
	want, err := reflectRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	tab := *r
	tab.Candidates, tab.Table = nil, lines(r.Candidates)
	got, err := jsonRecord(&tab)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("err %v\n got: %s\nwant: %s", err, got, want)
	}
	if l := tab.CandidateList(); !reflect.DeepEqual(l, r.Candidates) {
		t.Fatalf("CandidateList %+v", l)
	}
	if l := r.CandidateList(); &l[0] != &r.Candidates[0] {
		t.Fatal("CandidateList copies Candidates")
	}
}

// BenchmarkEncodeTable: BenchmarkEncodeNoReplay's record with its
// candidates as a table, as the edge hands decisions over: the writer
// copies each line and appends its reason (here, as a router's table
// does, from ready lines).
func BenchmarkEncodeTable(b *testing.B) {
	r := catalogDecision()
	r.Candidates, r.Table = nil, lines(r.Candidates)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jsonRecord(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEncodeTableCache: a table's columns written again from the last
// table's bytes are the bytes they would be written as — for the same
// lines, a model changed at the end, verdicts changed, fewer lines, equal
// strings from other allocations, and reasons (never cached) changed in a
// reused buffer.
func TestEncodeTableCache(t *testing.T) {
	tl := new(tableLines)
	steps := []func(cs []Candidate) []Candidate{
		func(cs []Candidate) []Candidate { return cs },
		func(cs []Candidate) []Candidate { return cs },
		func(cs []Candidate) []Candidate { cs[len(cs)-1].Model = "new-model"; return cs },
		func(cs []Candidate) []Candidate { cs[0].Verdict, cs[1].Verdict = "rejected", "chosen"; return cs },
		func(cs []Candidate) []Candidate { return cs[:5] },
		func(cs []Candidate) []Candidate {
			for i := range cs {
				cs[i].Provider = strings.Clone(cs[i].Provider)
				cs[i].Reason = fmt.Sprint("changed ", i)
			}
			return cs
		},
		func(cs []Candidate) []Candidate { cs[2].Residency = "onprem"; return cs },
		func(cs []Candidate) []Candidate { return cs },
	}
	hits := 0
	for i, step := range steps {
		cs := step(catalogDecision().Candidates)
		want, err := jsonw.Marshal(struct {
			C Candidates `json:"candidates"`
		}{cs})
		if err != nil {
			t.Fatal(err)
		}
		// An equal string of its own: still there after the step if the
		// column was written from the cache.
		var mark string
		if len(tl.model.vals) > 0 {
			mark = strings.Clone(tl.model.vals[0])
			tl.model.vals[0] = mark
		}
		e := recordEncoder{}
		o := e.Open()
		e.candidateColumns(tl.fill(lines(cs)), tl)
		e.Close(o)
		if !bytes.Equal(e.B, want) {
			t.Fatalf("step %d\n got: %s\nwant: %s", i, e.B, want)
		}
		if mark != "" && unsafe.StringData(tl.model.vals[0]) == unsafe.StringData(mark) {
			hits++
		}
		clear(tl.lines)
	}
	if hits < 3 { // steps 1, 5 (providers) and 7 at least
		t.Errorf("the cache was used %d times", hits)
	}
}

// TestMoney: amounts keep ten significant digits and lose float64's
// noise, at every scale a cost can have; what cannot be rounded passes.
func TestMoney(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0.0011282879999999999, "0.001128288"},
		{0.00021491200000000002, "0.000214912"},
		{0.0046901600000000005, "0.00469016"},
		{0.1 + 0.2, "0.3"},
		{7.157600000000001e-06, "0.0000071576"},
		{1.2345678912345e-09, "1.234567891e-9"},
		{-0.0011282879999999999, "-0.001128288"},
		{12345.678912345, "12345.67891"},
		{3e25, "3e+25"},
		{1.234567891234e-30, "1.234567891e-30"},
		{0, "0"},
	} {
		b, err := json.Marshal(Money(c.in))
		if err != nil || string(b) != c.want && fmt.Sprint(Money(c.in)) != c.want {
			t.Errorf("Money(%v) = %s (%v), want %s", c.in, b, err, c.want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if g := Money(f); !(g == f || math.IsNaN(g) && math.IsNaN(f)) {
			t.Errorf("Money(%v) = %v", f, g)
		}
	}
	// Every value prints in at most ten significant digits.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		f := math.Exp(rng.Float64()*60-45) * (rng.Float64()*2 - 1)
		s := strconv.FormatFloat(Money(f), 'e', -1, 64)
		mant := strings.TrimLeft(strings.SplitN(s, "e", 2)[0], "-")
		if digits := len(strings.ReplaceAll(mant, ".", "")); digits > 10 {
			t.Fatalf("Money(%v) = %s: %d digits", f, s, digits)
		}
		if d := math.Abs(Money(f)-f) / math.Abs(f); d > 5e-10 {
			t.Fatalf("Money(%v) = %v: off by %g", f, Money(f), d)
		}
	}
}

// TestMoneyMatches: money writes the bytes float writes for Money's
// result — costs as the router makes them (a price per million tokens
// times a token count), every magnitude around Money's scales and the
// exponent form's edge, and the values next to powers of ten, where
// rounding carries into another digit.
func TestMoneyMatches(t *testing.T) {
	vals := []float64{0, 1, -1, 1e-6, 9.9999999999e-7, 1e-6 * (1 - 1e-12), 0.1 + 0.2, 0.0011282879999999999,
		7.157600000000001e-06, 6.2192e-06, 999999999.99999, 123456789.987, 1e9, 1e-7, 0.00045548096}
	for p := -9; p <= 10; p++ {
		x := math.Pow10(p)
		vals = append(vals, x, -x, math.Nextafter(x, 0), math.Nextafter(x, 2*x), x*0.99999999995, x*0.999999999949, x*(1-1e-11))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		vals = append(vals, math.Exp(rng.Float64()*40-20)*(rng.Float64()*2-1))
		// input tokens × a price per million, plus output tokens × another
		in, out := float64(rng.IntN(200000)), float64(rng.IntN(8000))
		pin, pout := float64(rng.IntN(60000))/1000, float64(rng.IntN(120000))/1000
		vals = append(vals, (in*pin+out*pout)/1e6, (in*pin+out*pout)/1e6*0.92)
	}
	for _, f := range vals {
		if got, want := moneyBytes(f), floatBytes(Money(f)); got != want {
			t.Fatalf("money(%v) = %s, float(Money) = %s", f, got, want)
		}
	}
}

func FuzzMoney(f *testing.F) {
	for _, v := range []float64{0.0011282879999999999, 1e-6, 999999999.5, -3.25, 0.00045548096} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		if got, want := moneyBytes(v), floatBytes(Money(v)); got != want {
			t.Fatalf("money(%v) = %s, float(Money) = %s", v, got, want)
		}
	})
}

func moneyBytes(f float64) string {
	var e recordEncoder
	money(&e, f)
	if e.Err != nil {
		return "error: " + e.Err.Error()
	}
	return string(e.B)
}

func floatBytes(f float64) string {
	var e recordEncoder
	float(&e, f)
	if e.Err != nil {
		return "error: " + e.Err.Error()
	}
	return string(e.B)
}

// BenchmarkCostColumn is the cost column of a record on the shipped
// catalog's scale: 71 costs as the router makes them.
func BenchmarkCostColumn(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	costs := make([]float64, 71)
	for i := range costs {
		costs[i] = (412*float64(rng.IntN(60000))/1000 + 300*float64(rng.IntN(120000))/1000) / 1e6
	}
	for _, c := range []struct {
		name string
		put  func(*recordEncoder, float64)
	}{{"money", money}, {"float_of_Money", func(e *recordEncoder, f float64) { float(e, Money(f)) }}} {
		b.Run(c.name, func(b *testing.B) {
			var e recordEncoder
			for b.Loop() {
				e.B = e.B[:0]
				for _, f := range costs {
					c.put(&e, f)
				}
			}
		})
	}
}

// TestMoneyScale: the table's scale is Money's, on both sides of every
// power of ten the table holds and between them.
func TestMoneyScale(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	check := func(a float64) {
		if a < 1e-6 || a >= 1e9 {
			return
		}
		if got, want := moneyScale(a), 9-int(math.Floor(math.Log10(a))); got != want {
			t.Fatalf("moneyScale(%v) = %d, Money's scale %d", a, got, want)
		}
	}
	for _, p := range pow10f {
		x := p
		for range 64 {
			check(x)
			x = math.Nextafter(x, 0)
		}
		x = p
		for range 64 {
			check(x)
			x = math.Nextafter(x, math.Inf(1))
		}
		check(p * (1 + 1e-12))
		check(p * (1 - 1e-12))
	}
	for range 1000000 {
		check(math.Exp(rng.Float64()*37 - 14))
	}
}
