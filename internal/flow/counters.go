package flow

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellwerk/stellwerk/internal/ledger"
)

// LatencyBuckets are the upper bounds of the latency histogram Counters
// keep per route version and arm (the last bucket is unbounded).
var LatencyBuckets = []time.Duration{
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// Counters count requests, errors, cost and latency per route version,
// split arm and how the arm's targets served (Served), in memory, for the metrics endpoint and the console. The edge
// calls Record once per answered request; readers call Snapshot. Record
// takes no lock once a (route, version, arm, served) has been seen.
type Counters struct {
	m sync.Map // counterKey → *counter
}

type counterKey struct {
	route   string
	version int64
	arm     string
	served  string
}

type counter struct {
	requests, errors atomic.Int64
	cost             atomic.Int64 // micro-EUR
	latency          atomic.Int64 // nanoseconds, summed
	buckets          [10]atomic.Int64
}

// Answer is one answered request of a route, as the edge reports it.
type Answer struct {
	// Err: the request failed (an error answer, every provider failing, a
	// refusal by an end node).
	Err     bool
	Cost    ledger.MicroEUR
	Latency time.Duration
}

// How a request's route targets served it (Outcome.Served, the counters'
// served label): three values, whatever the catalog holds, so the rows
// stay few. A model label would say more, but multiply every arm's series
// by the models a fallback can reach; the audit record names the model.
const (
	// ServedTarget: one of the route's targets for the request (the arm's
	// model, a chain's member, an auto target's pick) was sent.
	ServedTarget = "target"
	// ServedFallback: no target could serve, and selection chose as for
	// auto (a model the arm did not name).
	ServedFallback = "fallback"
	// ServedNone: no model was chosen (an end node, a policy deny, a
	// refusal by on_unavailable: refuse, nothing eligible).
	ServedNone = "none"
)

// Record counts one request of the outcome's route version and arm, by
// how it was served (Served; "" counts as ServedNone).
func (c *Counters) Record(o *Outcome, s Answer) {
	if o == nil {
		return
	}
	c.RecordArm(o.Route, o.Version, o.Arm, o.ServedOrNone(), s)
}

// ServedOrNone is Served, ServedNone when selection did not set it (the
// request was refused before a model was chosen).
func (o *Outcome) ServedOrNone() string {
	if o.Served == "" {
		return ServedNone
	}
	return o.Served
}

// RecordArm is Record for a route, version, arm and served given directly
// (a replica that kept only the labels).
func (c *Counters) RecordArm(route string, version int64, arm, served string, s Answer) {
	k := counterKey{route, version, arm, served}
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, &counter{})
	}
	ct := v.(*counter)
	ct.requests.Add(1)
	if s.Err {
		ct.errors.Add(1)
	}
	ct.cost.Add(int64(s.Cost))
	ct.latency.Add(int64(s.Latency))
	b := 0
	for b < len(LatencyBuckets) && s.Latency > LatencyBuckets[b] {
		b++
	}
	ct.buckets[b].Add(1)
}

// CounterRow is one route version and arm's counts since start.
type CounterRow struct {
	Route   string `json:"route"`
	Version int64  `json:"version"`
	// Arm is node/arm ("" when the path crossed no split).
	Arm string `json:"arm,omitempty"`
	// Served tells the requests the arm's own targets served (target) from
	// those selection served as for auto because none could (fallback) and
	// those no model served (none).
	Served   string          `json:"served"`
	Requests int64           `json:"requests"`
	Errors   int64           `json:"errors"`
	Cost     ledger.MicroEUR `json:"cost_micro_eur"`
	// LatencySum is the total latency; Buckets[i] counts the requests at
	// or under LatencyBuckets[i] (and above the bound before); the last
	// entry those above every bound. Not cumulative.
	LatencySum time.Duration `json:"latency_sum_ns"`
	Buckets    []int64       `json:"latency_buckets"`
}

// Snapshot returns every row, sorted by route, version and arm. Counts of
// one row are read one after the other, not as one atomic picture.
func (c *Counters) Snapshot() []CounterRow {
	var out []CounterRow
	c.m.Range(func(key, value any) bool {
		k, ct := key.(counterKey), value.(*counter)
		r := CounterRow{Route: k.route, Version: k.version, Arm: k.arm, Served: k.served, Requests: ct.requests.Load(), Errors: ct.errors.Load(),
			Cost: ledger.MicroEUR(ct.cost.Load()), LatencySum: time.Duration(ct.latency.Load()), Buckets: make([]int64, len(ct.buckets))}
		for i := range ct.buckets {
			r.Buckets[i] = ct.buckets[i].Load()
		}
		out = append(out, r)
		return true
	})
	slices.SortFunc(out, func(a, b CounterRow) int {
		if c := strings.Compare(a.Route, b.Route); c != 0 {
			return c
		}
		if a.Version != b.Version {
			return int(a.Version - b.Version)
		}
		if c := strings.Compare(a.Arm, b.Arm); c != 0 {
			return c
		}
		return strings.Compare(a.Served, b.Served)
	})
	return out
}

// Prune forgets the rows keep rejects (versions that no longer serve), so
// the table stays as small as the routes in use.
func (c *Counters) Prune(keep func(route string, version int64) bool) {
	c.m.Range(func(key, _ any) bool {
		if k := key.(counterKey); !keep(k.route, k.version) {
			c.m.Delete(key)
		}
		return true
	})
}
