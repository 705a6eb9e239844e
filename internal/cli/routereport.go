package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/store"
)

// report is `routes report ROUTE`: per version and split arm, what the
// audit log says the route's requests did since a time. It reads every
// decision record of the range (audit.Store.RouteReport), so only opening
// the store is bounded, as for audit export.
func (r *routesCLI) report(ctx context.Context, name string, version int64, since, until time.Time, format string) error {
	if !flow.NameRE.MatchString(name) {
		return usageError(r.stderr, fmt.Errorf("routes report takes a route NAME, not %q", name))
	}
	octx, cancel := boundStore(ctx)
	db, err := store.Open(octx, r.cfg.State, os.Getenv)
	if err != nil {
		cancel()
		return storeTimedOut(octx, err)
	}
	defer db.Close()
	st, err := audit.OpenStore(octx, db)
	if err == nil {
		var fs *flowstore.Store
		if fs, err = flowstore.Open(octx, db); err == nil {
			r.st = fs
		}
	}
	cancel()
	if err != nil {
		return storeTimedOut(octx, err)
	}
	rep, err := st.RouteReport(ctx, audit.RouteQuery{Route: name, Version: version, From: since, To: until, Target: r.targets(ctx, name)})
	if err != nil {
		return fmt.Errorf("routes report: %w", err)
	}
	if format == "json" {
		return writeJSONTo(r.stdout, rep)
	}
	return reportTable(r, rep)
}

// targets is the model each target node of the route's stored versions
// serves by first (a pinned model node, or a chain's first pinned model):
// an arm's own target. A version not in the store, or an auto target, has
// none, and the report takes the model its decision chose.
func (r *routesCLI) targets(ctx context.Context, name string) func(int64, string) string {
	own := map[int64]map[string]string{}
	if r.st == nil {
		return nil
	}
	vs, err := r.st.Versions(ctx, name)
	if err != nil {
		return nil // a route deleted, or one never stored here: chosen is the arm's own
	}
	for _, v := range vs {
		full, err := r.st.Get(ctx, name, v.Version)
		if err != nil {
			continue
		}
		doc, err := flow.Parse(name+"@"+strconv.FormatInt(v.Version, 10), []byte(full.Document))
		if err != nil {
			continue
		}
		byID := map[string]flow.NodeDoc{}
		for _, n := range doc.Nodes {
			byID[n.ID] = n
		}
		m := map[string]string{}
		for _, n := range doc.Nodes {
			first := n
			if len(n.Chain) > 0 {
				first = byID[n.Chain[0]]
			}
			if first.Model != "" && first.Model != "auto" {
				m[n.ID] = first.Model
			}
		}
		own[v.Version] = m
	}
	return func(v int64, node string) string { return own[v][node] }
}

func reportTable(r *routesCLI, rep *audit.RouteReport) error {
	span := "all records"
	switch {
	case !rep.From.IsZero() && !rep.To.IsZero():
		span = "from " + rep.From.UTC().Format(time.RFC3339) + " to " + rep.To.UTC().Format(time.RFC3339)
	case !rep.From.IsZero():
		span = "since " + rep.From.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(r.stdout, "route %s, %s: %d requests of %d decisions\n", rep.Route, span, rep.Requests, rep.Records)
	if len(rep.Arms) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "VERSION\tARM\tREQUESTS\tERRORS\tERROR RATE (95% CI)\tOWN\tFALLBACK\tP50 MS\tP95 MS\tµEUR/REQ\tTOTAL EUR\t")
	for _, a := range rep.Arms {
		arm := a.Arm
		if arm == "" {
			arm = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f%% (%.1f–%.1f)\t%d\t%d\t%d\t%d\t%.1f\t%.6f\t\n", a.Version, arm, a.Requests, a.Errors,
			100*a.ErrorRate, 100*a.ErrorRateCI95[0], 100*a.ErrorRateCI95[1], a.ServedOwn, a.ServedFallback, a.P50MS, a.P95MS,
			a.CostPerRequestEUR*1e6, a.CostEUR)
	}
	return tw.Flush()
}
