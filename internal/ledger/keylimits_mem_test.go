package ledger

import (
	"fmt"
	"runtime"
	"testing"
)

// TestKeyLimitsSize: a key's own limits (a monthly budget and a rate limit,
// as a platform hands keys out) stay small, since the key table holds them
// for every key: at 4,000 keys they were 10 MB of a 58 MB heap
// (docs/benchmarks.md, 2026-12-08). They took 2,216 bytes in 13
// allocations, most of it two maps of one entry each (ruleIndex) and a
// copy of the rules made twice; now 896 in 9. Bytes allocated, not a
// timing: the same for every run of the same code.
func TestKeyLimitsSize(t *testing.T) {
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-%04d-k%03d", i/20, i%20)
	}
	budgets := []BudgetRule{{Name: "month", Limit: eur(5000), Period: PeriodMonth}}
	rates := []RateRule{{Name: "rate", RequestsPerMinute: 600}}
	keep := make([]*Limits, n)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i, id := range ids {
		l, err := NewKeyLimits(id, budgets, rates)
		if err != nil {
			t.Fatal(err)
		}
		keep[i] = l
	}
	runtime.ReadMemStats(&m1)
	runtime.KeepAlive(keep)
	bytes, allocs := float64(m1.TotalAlloc-m0.TotalAlloc)/n, float64(m1.Mallocs-m0.Mallocs)/n
	t.Logf("%.0f B in %.1f allocations per key", bytes, allocs)
	if bytes > 1024 || allocs > 9.5 {
		t.Errorf("a key's limits take %.0f B in %.1f allocations; want at most 1,024 B in 9", bytes, allocs)
	}
	// They still find the key's rules, and only for the key.
	l := keep[7]
	if got := l.budgetIdx.matches(nil, &Subject{Key: ids[7], Workspace: "tenant-0000"}, "m"); len(got) != 1 {
		t.Errorf("key %s meets budgets %v of its limits, want [0]", ids[7], got)
	}
	if got := l.rateIdx.matches(nil, &Subject{Key: ids[8]}, "m"); len(got) != 0 {
		t.Errorf("key %s meets rate limits %v of %s's limits", ids[8], got, ids[7])
	}
}
