package flow

import (
	"sync"
	"testing"
	"time"
)

func TestCounters(t *testing.T) {
	var c Counters
	o := &Outcome{Route: "support", Version: 7, Arm: "rollout/challenger"}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 250 {
				c.Record(o, Answer{Err: i%50 == 0, Cost: 10, Latency: time.Duration(i) * time.Millisecond})
			}
		})
	}
	wg.Wait()
	c.RecordArm("support", 6, "", ServedTarget, Answer{Latency: time.Minute})
	rows := c.Snapshot()
	if len(rows) != 2 || rows[0].Version != 6 || rows[1].Arm != "rollout/challenger" || rows[1].Served != ServedNone {
		t.Fatalf("rows %+v", rows)
	}
	r := rows[1]
	if r.Requests != 1000 || r.Errors != 20 || r.Cost != 10000 {
		t.Errorf("row %+v", r)
	}
	// 0–50 ms: 51 per goroutine; 51–100: 50; 101–249: 149.
	if r.Buckets[0] != 204 || r.Buckets[1] != 200 || r.Buckets[2] != 596 || rows[0].Buckets[len(LatencyBuckets)] != 1 {
		t.Errorf("buckets %v / %v", r.Buckets, rows[0].Buckets)
	}
	c.Prune(func(_ string, v int64) bool { return v == 7 })
	if rows := c.Snapshot(); len(rows) != 1 || rows[0].Version != 7 {
		t.Errorf("after prune %+v", rows)
	}
}

// TestCountersServed: an arm's requests that its own target served and
// those another model served as its fallback are separate rows, so the
// arm's figures describe its model (the experimentation probe counted the
// control model's answers as the challenger's).
func TestCountersServed(t *testing.T) {
	var c Counters
	target := &Outcome{Route: "ab", Version: 1, Arm: "split/challenger", Served: ServedTarget}
	fallback := &Outcome{Route: "ab", Version: 1, Arm: "split/challenger", Served: ServedFallback}
	c.Record(target, Answer{Cost: 5})
	c.Record(fallback, Answer{Cost: 7})
	c.Record(fallback, Answer{Cost: 7})
	rows := c.Snapshot()
	if len(rows) != 2 || rows[0].Served != ServedFallback || rows[0].Requests != 2 || rows[0].Cost != 14 ||
		rows[1].Served != ServedTarget || rows[1].Requests != 1 || rows[1].Cost != 5 {
		t.Fatalf("rows %+v", rows)
	}
}
