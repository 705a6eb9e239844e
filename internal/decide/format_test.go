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
