package audit

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stellwerk/stellwerk/internal/store"
)

// TestRouteReport: a route's report per version and split arm, from a
// fixture of 700 decisions over two writers (more than a page): other
// routes, requests without a route and records outside the range are left
// out; errors, own target and fallback, percentiles and cost are each
// arm's. The probe needed the JSONL export and a script for this table.
func TestRouteReport(t *testing.T) {
	conform(t, func(t *testing.T, db *store.DB) {
		st := openStore(t, db)
		base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		type fact struct {
			v        int64
			arm      string
			took     int64
			eur      float64
			err, own bool
			// byChosen: the chosen model served, and the record does not
			// say route.served fallback (the report's own without targets).
			byChosen bool
		}
		var facts []fact
		for _, replica := range []string{"r1", "r2"} {
			o := testOptions(t)
			o.Replica = replica
			l := openLog(t, st, testSigner("a"), o)
			for i := range 350 {
				r := decision(i, "support")
				r.ID = fmt.Sprintf("%s-%d", replica, i)
				r.Time = base.Add(time.Duration(i) * time.Second)
				r.TookMS = int64(i*7%1000) + 1
				switch {
				case i == 0: // before the range
					r.Time = base.Add(-time.Hour)
					r.Route = &Route{Name: "exp", Version: 3, Path: []string{"rollout[control]", "strong"}, Arm: "control"}
				case i%10 == 1:
					r.Route = &Route{Name: "billing", Version: 3, Path: []string{"rollout[control]", "strong"}, Arm: "control"}
				case i%10 == 2: // no route
				default:
					f := fact{v: 3, arm: "control", took: r.TookMS, eur: 0.001}
					if i >= 250 {
						f.v = 4
					}
					r.Route = &Route{Name: "exp", Version: f.v, Path: []string{"rollout[control]", "strong"}, Arm: "control"}
					r.Chosen, r.Served = "gpt-4o", "gpt-4o"
					if i%2 == 1 {
						f.arm, f.eur = "challenger", 0.0005
						r.Route.Path, r.Route.Arm = []string{"rollout[challenger]", "challenger"}, "challenger"
						r.Chosen, r.Served = "sonnet", "sonnet"
						switch i % 8 {
						case 3: // failed
							r.Status, r.Served, r.ErrorCode, f.eur = 502, "", "provider_error", 0
						case 5: // the chain's fallback served
							r.Served = "gpt-4o"
						case 7: // the policy excluded sonnet: gpt-4o chosen
							r.Chosen, r.Served = "gpt-4o", "gpt-4o"
							if replica == "r2" { // r1's records are from before route.served
								r.Route.Served = "fallback"
							}
						}
					}
					r.Cost.EUR = f.eur
					if f.eur == 0 {
						r.Cost = nil
					}
					f.err = r.Status >= 400
					f.own = !f.err && r.Served == map[string]string{"strong": "gpt-4o", "challenger": "sonnet"}[r.Route.Path[1]]
					f.byChosen = !f.err && r.Served == r.Chosen && r.Route.Served != "fallback"
					facts = append(facts, f)
				}
				if !l.Record(r) {
					t.Fatalf("record %d dropped", i)
				}
			}
			closeLog(t, l)
		}
		// What the report must say, summed here the plain way.
		want := map[[2]string]*ArmReport{}
		tooks := map[[2]string][]int64{}
		for _, f := range facts {
			k := [2]string{fmt.Sprint(f.v), f.arm}
			a := want[k]
			if a == nil {
				a = &ArmReport{Version: f.v, Arm: f.arm}
				want[k] = a
			}
			a.Requests++
			tooks[k] = append(tooks[k], f.took)
			a.CostEUR += f.eur
			switch {
			case f.err:
				a.Errors++
			case f.own:
				a.ServedOwn++
			default:
				a.ServedFallback++
			}
		}
		var wantArms []ArmReport
		for k, a := range want {
			ts := tooks[k]
			slices.Sort(ts)
			a.P50MS, a.P95MS = ts[(len(ts)+1)/2-1], ts[int(math.Ceil(0.95*float64(len(ts))))-1]
			a.ErrorRate = float64(a.Errors) / float64(a.Requests)
			a.CostPerRequestEUR = a.CostEUR / float64(a.Requests)
			wantArms = append(wantArms, *a)
		}
		target := func(v int64, node string) string {
			return map[string]string{"strong": "gpt-4o", "challenger": "sonnet"}[node]
		}
		rep, err := st.RouteReport(context.Background(), RouteQuery{Route: "exp", From: base, To: base.Add(time.Hour), Target: target})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Records != 698 || rep.Requests != int64(len(facts)) || len(rep.Arms) != 4 {
			t.Fatalf("records %d (want 698), requests %d (want %d), arms %d", rep.Records, rep.Requests, len(facts), len(rep.Arms))
		}
		if rep.Arms[0].Version != 4 || rep.Arms[0].Arm != "challenger" || rep.Arms[3].Version != 3 || rep.Arms[3].Arm != "control" {
			t.Errorf("arms not newest version first, then by name: %+v", rep.Arms)
		}
		byKey := func(a, b ArmReport) bool { return a.Version < b.Version || a.Version == b.Version && a.Arm < b.Arm }
		opts := cmp.Options{cmpopts.SortSlices(byKey), cmpopts.IgnoreUnexported(ArmReport{}), cmpopts.IgnoreFields(ArmReport{}, "ErrorRateCI95"),
			cmpopts.EquateApprox(0, 1e-9)}
		if d := cmp.Diff(wantArms, rep.Arms, opts); d != "" {
			t.Errorf("arms (-want +got):\n%s", d)
		}
		for _, a := range rep.Arms {
			if lo, hi := a.ErrorRateCI95[0], a.ErrorRateCI95[1]; lo > a.ErrorRate || hi < a.ErrorRate || (a.Arm == "challenger") != (lo > 0) {
				t.Errorf("%d %s: error rate %.3f outside its interval [%f, %f]", a.Version, a.Arm, a.ErrorRate, lo, hi)
			}
		}

		// --version, and without a target function: the chosen model is
		// the arm's own, so only the failover (i%8 == 5) and the records
		// that say route.served fallback (r2's i%8 == 7) are fallbacks.
		rep, err = st.RouteReport(context.Background(), RouteQuery{Route: "exp", Version: 4, From: base})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Arms) != 2 || rep.Arms[0].Arm != "challenger" || rep.Arms[1].Arm != "control" {
			t.Fatalf("version 4: %+v", rep.Arms)
		}
		c := rep.Arms[0]
		if w := want[[2]string{"4", "challenger"}]; c.ServedOwn+c.ServedFallback != w.ServedOwn+w.ServedFallback || c.ServedFallback >= w.ServedFallback ||
			c.ServedFallback == 0 {
			t.Errorf("without targets: own %d, fallback %d; with them own %d, fallback %d", c.ServedOwn, c.ServedFallback, w.ServedOwn, w.ServedFallback)
		}
		var byChosen int64
		for _, f := range facts {
			if f.v == 4 && f.arm == "challenger" && f.byChosen {
				byChosen++
			}
		}
		if c.ServedOwn != byChosen {
			t.Errorf("without targets: own %d, want %d (the chosen model served, route.served not fallback)", c.ServedOwn, byChosen)
		}
		// A route with no request in the range: no arm.
		if rep, err := st.RouteReport(context.Background(), RouteQuery{Route: "nope"}); err != nil || len(rep.Arms) != 0 || rep.Records != 700 {
			t.Errorf("no such route: %v %+v", err, rep)
		}
	})
}

// TestWilson: the interval against published values (Newcombe 1998, table
// I: 0/10, 1/29, 81/263).
func TestWilson(t *testing.T) {
	for name, c := range map[string]struct {
		k, n   int64
		lo, hi float64
	}{
		"0/10":   {0, 10, 0, 0.2775},
		"1/29":   {1, 29, 0.0061, 0.1718},
		"81/263": {81, 263, 0.2553, 0.3662},
	} {
		got := wilson(c.k, c.n)
		if math.Abs(got[0]-c.lo) > 6e-5 || math.Abs(got[1]-c.hi) > 6e-5 {
			t.Errorf("%s: %v, want [%v, %v]", name, got, c.lo, c.hi)
		}
	}
}
