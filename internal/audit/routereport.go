package audit

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/tidwall/gjson"
)

// RouteQuery selects the decisions of one named route for RouteReport.
type RouteQuery struct {
	Route string
	// Version, when not 0, keeps only that version's requests.
	Version  int64
	From, To time.Time // [From, To); zero: unbounded
	// Target is the model an arm's own target serves by: the first pinned
	// model of the node its path ends at (a model node, or a chain's
	// first), in the route version that ran. "" (an auto target, a version
	// not known): the model the decision chose is its own, and another
	// that served after failover is a fallback.
	Target func(version int64, node string) string
}

// RouteReport is what the audit log says a route's versions and split
// arms did over a time range: read from the decisions' records, so it
// holds for every replica and survives restarts, unlike the in-memory
// traffic of GET /admin/routes/{name}.
type RouteReport struct {
	Route string    `json:"route"`
	From  time.Time `json:"from,omitzero"`
	To    time.Time `json:"to,omitzero"`
	// Records is how many decision records of the range were read (of
	// every route and none), Requests how many took this route.
	Records  int64       `json:"records"`
	Requests int64       `json:"requests"`
	Arms     []ArmReport `json:"arms"`
}

// ArmReport is one version and split arm of a route (Arm "": a path
// through no split).
type ArmReport struct {
	Version  int64  `json:"version"`
	Arm      string `json:"arm"`
	Requests int64  `json:"requests"`
	// Errors are the requests not served: status 400 or more, no status
	// (the client went away), or no model served.
	Errors    int64   `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	// ErrorRateCI95 is the 95 % Wilson score interval of ErrorRate, each
	// request taken as an independent trial (sticky splits repeat users:
	// then it is too narrow).
	ErrorRateCI95 [2]float64 `json:"error_rate_ci95"`
	// ServedOwn are the served requests that the arm's own target served
	// (RouteQuery.Target), ServedFallback those another model served: a
	// chain's fallback, a target the policy excluded, a failover.
	ServedOwn      int64 `json:"served_own"`
	ServedFallback int64 `json:"served_fallback"`
	// P50MS and P95MS are the nearest-rank percentiles of took_ms (arrival
	// to record) over every request of the arm, errors included.
	P50MS int64 `json:"p50_ms"`
	P95MS int64 `json:"p95_ms"`
	// CostEUR is the sum of the records' cost.eur, CostPerRequestEUR that
	// over Requests.
	CostEUR           float64 `json:"cost_eur"`
	CostPerRequestEUR float64 `json:"cost_per_request_eur"`

	took []int64
}

// reportPage is how many records RouteReport reads at a time: the records
// of a range are streamed, never all in memory; what is kept is one
// took_ms per request of the route (8 bytes), for the percentiles.
const reportPage = 256

var reportFields = []string{"route.name", "route.version", "route.arm", "route.path", "status", "chosen", "served", "took_ms", "cost.eur", "route.served"}

// RouteReport reads every decision record of the range, in pages, and
// sums those of q.Route per version and arm. The store has no index on
// the route (it is inside the record's bytes), so a range of a busy log is
// read whole: a week of a million decisions takes as long as exporting it.
func (s *Store) RouteReport(ctx context.Context, q RouteQuery) (*RouteReport, error) {
	rep := &RouteReport{Route: q.Route, From: q.From, To: q.To, Arms: []ArmReport{}}
	type armKey struct {
		v   int64
		arm string
	}
	arms := map[armKey]*ArmReport{}
	f := Filter{From: q.From, To: q.To, Kind: KindDecision}
	var after *Cursor
	for {
		es, next, err := s.Query(ctx, f, after, reportPage)
		if err != nil {
			return nil, err
		}
		for i := range es {
			if es[i].Pruned || es[i].Body == nil {
				continue
			}
			rep.Records++
			r := gjson.GetManyBytes(es[i].Body, reportFields...)
			if r[0].Str != q.Route {
				continue
			}
			v := r[1].Int()
			if q.Version != 0 && v != q.Version {
				continue
			}
			k := armKey{v, r[2].Str}
			a := arms[k]
			if a == nil {
				a = &ArmReport{Version: v, Arm: k.arm}
				arms[k] = a
			}
			rep.Requests++
			a.Requests++
			a.took = append(a.took, r[7].Int())
			a.CostEUR += r[8].Float()
			status, chosen, served := r[4].Int(), r[5].Str, r[6].Str
			if status == 0 || status >= 400 || served == "" {
				a.Errors++
				continue
			}
			own := ""
			if q.Target != nil {
				if p := r[3].Array(); len(p) > 0 {
					own = q.Target(v, p[len(p)-1].Str)
				}
			}
			if own == "" {
				own = chosen
			}
			// route.served (since 2026-12-08) says when selection served the
			// arm as for auto because none of its targets could: a fallback
			// whatever the version's document, which may be gone.
			if served == own && r[9].Str != "fallback" { // Route.Served
				a.ServedOwn++
			} else {
				a.ServedFallback++
			}
		}
		if next == nil {
			break
		}
		after = next
	}
	for _, a := range arms {
		a.finish()
		rep.Arms = append(rep.Arms, *a)
	}
	slices.SortFunc(rep.Arms, func(a, b ArmReport) int {
		return cmp.Or(cmp.Compare(b.Version, a.Version), cmp.Compare(a.Arm, b.Arm))
	})
	return rep, nil
}

func (a *ArmReport) finish() {
	slices.Sort(a.took)
	a.P50MS, a.P95MS = nearestRank(a.took, 50), nearestRank(a.took, 95)
	a.took = nil
	a.CostEUR = Money(a.CostEUR)
	if a.Requests > 0 {
		a.CostPerRequestEUR = Money(a.CostEUR / float64(a.Requests))
		a.ErrorRate = float64(a.Errors) / float64(a.Requests)
		a.ErrorRateCI95 = wilson(a.Errors, a.Requests)
	}
}

// nearestRank is the p-th percentile of sorted xs: the smallest value
// with at least p % of the values at or below it.
func nearestRank(xs []int64, p int) int64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(p)/100*float64(len(xs)))) - 1
	return xs[max(i, 0)]
}

// wilson is the 95 % Wilson score interval of k successes in n trials,
// which, unlike the normal approximation, stays inside [0, 1] and is not
// empty at k = 0 (what an error rate of a healthy arm usually is).
func wilson(k, n int64) [2]float64 {
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	round := func(x float64) float64 { return math.Round(x*1e6) / 1e6 }
	return [2]float64{round(max(c-h, 0)), round(min(c+h, 1))}
}
