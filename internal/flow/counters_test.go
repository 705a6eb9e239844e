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
	c.RecordArm("support", 6, "", Answer{Latency: time.Minute})
	rows := c.Snapshot()
	if len(rows) != 2 || rows[0].Version != 6 || rows[1].Arm != "rollout/challenger" {
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
