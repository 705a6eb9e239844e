package decide

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
)

// TestRejectionFormat: reasons are written by appends, and must read as
// the fmt forms they replaced, to the byte: recorded decisions replay by
// comparing them.
func TestRejectionFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := func() float64 {
		switch rng.IntN(5) {
		case 0:
			return 0
		case 1:
			return rng.Float64()
		case 2:
			return rng.Float64() * 1e6
		case 3:
			return -rng.Float64() * 10
		}
		return math.Round(rng.Float64()*100) / 100
	}
	for i := 0; i < 20000; i++ {
		a, b := vals(), vals()
		task := []string{"chat", "summarization", "code", ""}[rng.IntN(4)]
		want := map[uint8]string{
			rejContext:  fmt.Sprintf("context: needs about %d tokens, window is %d", int(a), int(b)),
			rejCost:     fmt.Sprintf("cost: estimated %.6f EUR exceeds the limit of %.6f EUR", a, b),
			rejLatency:  fmt.Sprintf("latency: %d ms is over the request's sla_ms %d", int(a), int(b)),
			rejQuality:  fmt.Sprintf("quality: %.2f for %s is below the floor %.2f", a, task, b),
			rejRelative: fmt.Sprintf("quality: %.2f for %s is below %.0f%% of the best eligible model", a, task, 100*b),
		}
		for k, w := range want {
			if got := (rejection{kind: k, a: a, b: b}).format(task); got != w {
				t.Fatalf("kind %v, %v %v: %q, want %q", k, a, b, got, w)
			}
		}
	}
}

// TestAppendReason: the reason the audit writer appends for a candidate,
// and the line Line gives, are Table's, for every kind of rejection, a
// policy exclusion, a model stellwerk cannot send, an eligible candidate
// (no reason) and the chosen one (the decision's reason, even when it is
// set after the decision, as a named route's explanation is).
func TestAppendReason(t *testing.T) {
	var d Selection
	d.task = "code"
	for k := uint8(rejNone); k <= rejRelative; k++ {
		m := &catalog.Model{ID: fmt.Sprint("m", k), Provider: &catalog.Provider{Name: "p", Residency: "eu"}}
		d.cands = append(d.cands, Candidate{Model: m, EstimatedCostEUR: float64(k), Quality: 0.5, LatencyMS: int(k)})
		l := line{verdict: vRejected, rej: rejection{kind: k, a: 0.4 + float64(k), b: 0.9}}
		if k == rejNone {
			l = line{verdict: vEligible, rank: 2, score: 0.25}
		}
		d.lines = append(d.lines, l)
	}
	add := func(c Candidate, l line) {
		c.Model = &catalog.Model{ID: fmt.Sprint("x", len(d.cands)), Provider: &catalog.Provider{Name: "q"}}
		d.cands, d.lines = append(d.cands, c), append(d.lines, l)
	}
	add(Candidate{Excluded: "not in the eu"}, line{verdict: vExcluded})
	add(Candidate{Unsupported: "provider credential not configured"}, line{verdict: vRejected})
	add(Candidate{}, line{verdict: vChosen, rank: 1})
	d.Reason = "route support: set afterwards"
	tab := d.Table()
	if len(tab) != d.Len() {
		t.Fatalf("Table has %d lines, Len %d", len(tab), d.Len())
	}
	want := map[int]string{len(tab) - 3: "not in the eu", len(tab) - 2: "provider credential not configured", len(tab) - 1: d.Reason}
	for i, v := range tab {
		if got := string(d.AppendReason([]byte("x"), i)[1:]); got != v.Reason {
			t.Errorf("line %d: AppendReason %q, Table %q", i, got, v.Reason)
		}
		if w, ok := want[i]; ok && v.Reason != w {
			t.Errorf("line %d: reason %q, want %q", i, v.Reason, w)
		}
		if i > int(rejUnsupported) && i <= int(rejRelative) && v.Reason == "" {
			t.Errorf("line %d (rejection kind %d) has no reason", i, i)
		}
		l := d.Line(i)
		l.Reason = v.Reason
		if l != v {
			t.Errorf("line %d: Line %+v, Table %+v", i, l, v)
		}
	}
	if v := tab[0]; v.Verdict != "eligible" || v.Reason != "" || v.Rank != 2 || v.Score != 0.25 || v.Provider != "p" || v.Residency != "eu" {
		t.Errorf("eligible line %+v", v)
	}
	if v := tab[len(tab)-1]; v.Verdict != "chosen" || v.Rank != 1 {
		t.Errorf("chosen line %+v", v)
	}
}

// TestHundredths: appendHundredths writes what strconv writes with two
// decimals, for runs of every hundredth and thousandth (the halves among
// them), random values, and both neighbouring floats of each.
func TestHundredths(t *testing.T) {
	check := func(f float64) {
		t.Helper()
		want := strconv.AppendFloat(nil, f, 'f', 2, 64)
		if got := appendHundredths(nil, f); string(got) != string(want) {
			t.Fatalf("%v (%#x): got %s, want %s", f, math.Float64bits(f), got, want)
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	var vals []float64
	for k := range 200000 {
		vals = append(vals, float64(k)/100, float64(k)/1000, float64(k)/3)
	}
	for range 200000 {
		vals = append(vals, rng.Float64(), rng.Float64()*1e6, -rng.Float64(), rng.Float64()*2e6)
	}
	vals = append(vals, 0, math.Copysign(0, -1), 0.125, 2.675, 1.005, 999999.995, 1e6, math.NaN(), math.Inf(1))
	for _, f := range vals {
		check(f)
		check(math.Nextafter(f, math.Inf(1)))
		check(math.Nextafter(f, math.Inf(-1)))
	}
}

func BenchmarkHundredths(b *testing.B) {
	buf := make([]byte, 0, 32)
	for _, c := range []struct {
		name string
		f    func([]byte, float64) []byte
	}{{"append", appendHundredths}, {"strconv", func(b []byte, f float64) []byte { return strconv.AppendFloat(b, f, 'f', 2, 64) }}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				buf = c.f(buf[:0], 0.68)
			}
		})
	}
}
