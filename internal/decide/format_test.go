package decide

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
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

// TestAppendReason: the reason the audit writer appends for a candidate is
// the one Table fills in, for every kind of rejection, a policy exclusion
// and an eligible candidate (none), and it leaves the decision unchanged.
func TestAppendReason(t *testing.T) {
	d := Decision{task: "code", Candidates: make([]Verdict, 0, rejRelative+2)}
	for k := uint8(rejNone); k <= rejRelative; k++ {
		d.Candidates = append(d.Candidates, Verdict{ID: fmt.Sprint("m", k)})
		d.rejections = append(d.rejections, rejection{kind: k, a: 0.4 + float64(k), b: 0.9})
	}
	d.Candidates = append(d.Candidates, Verdict{ID: "policy", Verdict: "excluded", Reason: "not in the eu"})
	d.rejections = append(d.rejections, rejection{})
	got := make([]string, len(d.Candidates))
	for i := range d.Candidates {
		got[i] = string(d.AppendReason([]byte("x"), i)[1:])
		if d.Candidates[i].Reason != "" && i != len(d.Candidates)-1 {
			t.Fatalf("AppendReason filled in line %d", i)
		}
	}
	for i, v := range d.Table() {
		if got[i] != v.Reason {
			t.Errorf("line %d: AppendReason %q, Table %q", i, got[i], v.Reason)
		}
		if v.Reason == "" && d.rejections[i].kind > rejUnsupported {
			t.Errorf("line %d (kind %d) has no reason", i, d.rejections[i].kind)
		}
	}
}
