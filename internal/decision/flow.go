package decision

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/request"
)

// Routes resolves a named route to its compiled flow: version 0 is the
// live version. flowstore.Table implements it in memory.
type Routes interface {
	Resolve(route string, version int64) (*flow.Flow, error)
}

// runFlow resolves the request's route and evaluates it (docs/routes.md,
// "The request path"). It runs after classification, before the policy.
func (r *Router) runFlow(ctx context.Context, req *Request, res *Result, now time.Time) error {
	chat := &res.Chat
	if r.Routes == nil {
		return apierr.NotFound("route_not_found", "model", "the route %q does not exist; named routes are not configured here", apierr.Truncate(chat.Route, 64))
	}
	// A route of other workspaces' is not this caller's to use, nor to
	// learn of (the multi-tenant probe used another's, and used up its
	// rate limit): its live version says whose it is, for every version
	// (an older one pinned by @N, written before the list, was open to
	// every workspace), before any other answer names the route.
	if chat.RouteVersion != 0 {
		if live, err := r.Routes.Resolve(chat.Route, 0); err == nil && !live.Allows(res.Workspace) {
			return routeNotFound(chat.Route)
		}
	}
	f, err := r.Routes.Resolve(chat.Route, chat.RouteVersion)
	if err == nil && !f.Allows(res.Workspace) {
		return routeNotFound(chat.Route)
	}
	if err != nil {
		return resolveError(chat, err)
	}
	in := &flow.Input{RequestID: req.DecisionID, Now: now, Chat: chat, Principal: &req.Principal, Class: &res.Class,
		Headers: req.Headers, Metadata: chat.Metadata, Budgets: req.Budgets, Limiter: req.Limiter}
	if f.NeedsBudgets() && in.Budgets == nil && req.PeekBudgets != nil {
		req.Budgets = req.PeekBudgets(ctx)
		in.Budgets = req.Budgets
	}
	o := f.Evaluate(ctx, in)
	res.Route = o
	if o.End != nil {
		return &apierr.Error{Kind: endKind(o.End.Status), Type: endType(o.End.Status), Code: "route_ended", Message: o.End.Message}
	}
	return nil
}

// resolveError answers a route that cannot serve: one that does not exist
// (or that the key may not use) is not found; one that exists but has
// nothing deployed, or whose pinned version no longer loads, is
// unavailable.
func resolveError(chat *request.Chat, err error) error {
	label := chat.Route
	if chat.RouteVersion != 0 {
		label = chat.Model[len(request.RoutePrefix):]
	}
	switch {
	case errors.Is(err, flowstore.ErrNoRoute):
		return routeNotFound(chat.Route)
	case errors.Is(err, flowstore.ErrNoVersion):
		return apierr.NotFound("route_not_found", "model", "the route %q has no version %d", apierr.Truncate(chat.Route, 64), chat.RouteVersion)
	case errors.Is(err, flowstore.ErrNotDeployed):
		return apierr.Unavailable("route_unavailable", "the route %q has no live version; deploy one (stellwerk routes deploy)", apierr.Truncate(label, 80))
	}
	return apierr.Unavailable("route_unavailable", "the route %q does not load against the configuration in force; see stellwerk routes list", apierr.Truncate(label, 80))
}

func routeNotFound(name string) error {
	return apierr.NotFound("route_not_found", "model", "the route %q does not exist or is not available to you", apierr.Truncate(name, 64))
}

// RoutesFor lists, sorted, the routes with a live version that p may use:
// the route's workspaces and the key's own route list let it (what its
// versions may choose still passes the policy). GET /v1/models lists them,
// so that a client that builds its model picker from the list finds them
// (the peer-switcher probe). nil without named routes.
func (r *Router) RoutesFor(p auth.Principal) []string {
	live, ok := r.Routes.(interface{ Live() map[string]int64 })
	if !ok {
		return nil
	}
	var names []string
	for name := range live.Live() {
		if f, err := r.Routes.Resolve(name, 0); err == nil && f.Allows(p.Workspace) && keyAllowsRoute(p, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// keyAllowsRoute applies a store key's own route list.
func keyAllowsRoute(p auth.Principal, name string) bool {
	return len(p.Routes) == 0 || slices.Contains(p.Routes, name)
}

// endType is the OpenAI error type for an end node's status.
// endKind is what a route's end node says, from the status its author
// wrote (one of flow.EndStatuses); the edge turns it back into that status.
func endKind(status int) apierr.Kind {
	switch status {
	case 403:
		return apierr.KindDenied
	case 404:
		return apierr.KindNotFound
	case 429:
		return apierr.KindExhausted
	case 503:
		return apierr.KindUnavailable
	}
	return apierr.KindInvalid
}

func endType(status int) string {
	switch status {
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 429:
		return "rate_limit_error"
	case 503:
		return "service_unavailable"
	}
	return "invalid_request_error"
}

// routeFacts is the route's part of the policy input.
func routeFacts(o *flow.Outcome) *policy.RouteFacts {
	rf := &policy.RouteFacts{Name: o.Route, Version: o.Version, Path: o.Path, Targets: make([]string, len(o.Targets))}
	for i := range o.Targets {
		t := &o.Targets[i]
		rf.Targets[i] = t.Model
		if t.IsAuto() && rf.Objective == "" {
			rf.Objective = t.Objective
		}
	}
	return rf
}

// selectRoute chooses among a route's targets in order: the first the
// policy allows and that meets the request's needs serves, the following
// ones are its failover order. A pinned target the policy excludes is never
// sent. An auto target selects among the candidates its allow and deny
// lists keep, with its quality floor raising the policy's and its
// objective in force when objectiveFree (neither the request nor the
// policy set another). When
// no target can serve, ordinary auto selection among the allowed
// candidates serves, and the reason says why, unless the target node says
// on_unavailable: refuse (refusal). It sets o.Served.
func selectRoute(base decide.Input, o *flow.Outcome, objectiveFree bool) (decide.Selection, error) {
	var (
		chosen   decide.Selection
		found    bool
		skipped  []string
		rest     []*catalog.Model
		missing  string // a pinned target no longer in the catalog
		byPolicy = true // every target skipped was excluded by the policy
	)
	for i := range o.Targets {
		t := &o.Targets[i]
		asked := t.Model
		if !t.IsAuto() {
			// A version deployed before its model was renamed names it by
			// what is now an alias.
			j := slices.IndexFunc(base.Candidates, func(c policy.Candidate) bool {
				return c.Model.ID == t.Model || slices.Contains(c.Model.Aliases, t.Model)
			})
			switch {
			case j >= 0:
				asked = base.Candidates[j].Model.ID
			case missing == "":
				missing = t.Model
			}
		}
		in := base
		if t.IsAuto() {
			in.Asked = decide.Auto
			in.Candidates = narrow(base.Candidates, t, o)
			in.QualityFloor = max(in.QualityFloor, t.MinQuality)
			if t.Objective != "" && objectiveFree {
				in.Objective = t.Objective
			}
		} else {
			in.Asked = asked
		}
		d, err := decide.Decide(in)
		if err != nil {
			why, excluded := skipReason(t, asked, &d, err)
			skipped = append(skipped, why)
			byPolicy = byPolicy && excluded
			continue
		}
		if !found {
			chosen, found = d, true
			if t.IsAuto() {
				rest = append(rest, d.Fallbacks...) // an auto target's ranking is its own failover order
			}
			continue
		}
		rest = append(rest, d.Model)
		if t.IsAuto() {
			rest = append(rest, d.Fallbacks...)
		}
	}
	var b strings.Builder
	b.WriteString("route ")
	b.WriteString(o.Explain())
	for _, s := range skipped {
		b.WriteString("; ")
		b.WriteString(s)
	}
	if !found && missing != "" {
		// The route's live version is one a reload left serving (the last
		// that loaded), naming a model the catalog no longer has: it is
		// broken, as a replica started since finds it (503 there), and is
		// not served as auto, which took a route pinned to an EU model to
		// a US provider (the catalog probe).
		return decide.Selection{}, apierr.Unavailable("route_unavailable",
			"the route %q names the model %q, which is no longer in the catalog; deploy a version that names another (stellwerk routes list)",
			apierr.Truncate(o.Route, 64), apierr.Truncate(missing, 64))
	}
	if !found && o.Refuse {
		return decide.Selection{}, refusal(o, skipped, byPolicy)
	}
	if !found {
		in := base
		in.Asked = decide.Auto
		d, err := decide.Decide(in)
		if err != nil {
			return d, err
		}
		if len(o.Targets) > 0 {
			b.WriteString("; no target of the route can serve, chosen as for auto: ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.Reason)
		d.Reason = b.String() // the chosen verdict's reason too
		o.Served = flow.ServedFallback
		return d, nil
	}
	o.Served = flow.ServedTarget
	chosen.Fallbacks = nil
	if !base.NoFallback { // the request's policy.fallback: false holds for a route too
		chosen.Fallbacks = dedupe(rest, chosen.Model)
	}
	if len(skipped) > 0 {
		b.WriteString("; fallback ")
	} else {
		b.WriteString(": ")
	}
	b.WriteString(chosen.Model.ID)
	if chosen.Reason != "pinned by request" {
		b.WriteString(" (")
		b.WriteString(chosen.Reason)
		b.WriteString(")")
	}
	chosen.Reason = b.String() // the chosen verdict's reason too
	return chosen, nil
}

// narrow marks the candidates an auto target's allow and deny lists leave
// out. It never allows one the policy excluded.
func narrow(cands []decide.Candidate, t *flow.Target, o *flow.Outcome) []decide.Candidate {
	if len(t.Allow) == 0 && len(t.Deny) == 0 {
		return cands
	}
	out := slices.Clone(cands)
	for i := range out {
		if out[i].Excluded == "" && !permitted(t.Allow, t.Deny, out[i].Model) {
			out[i].Excluded = "not chosen by route " + o.Label() + " (node " + t.Node + ")"
		}
	}
	return out
}

// refusal answers a request none of whose route targets can serve, when
// the target node says on_unavailable: refuse: an experiment's arm is
// then never answered by another arm's model. 403 when the policy
// excluded every target (the same request meets it again), else 503 (a
// cooldown, a failing provider: it may serve again). The message says
// what the route's reason would have said, no more.
func refusal(o *flow.Outcome, skipped []string, byPolicy bool) *apierr.Error {
	node := ""
	if len(o.Path) > 0 {
		node = o.Path[len(o.Path)-1]
	}
	why := strings.Join(skipped, "; ")
	if byPolicy && len(skipped) > 0 {
		e := apierr.Denied("route_target_excluded", "model",
			"route %s: node %s cannot serve this request and refuses a fallback (on_unavailable: refuse): %s", o.Label(), node, why)
		e.Final = true
		return e
	}
	return apierr.Unavailable("route_target_unavailable",
		"route %s: node %s cannot serve this request now and refuses a fallback (on_unavailable: refuse): %s", o.Label(), node, why)
}

// skipReason says why a target could not serve: "sonnet excluded by
// policy (eu residency)", and whether the policy excluded it.
func skipReason(t *flow.Target, asked string, d *decide.Selection, err error) (string, bool) {
	if t.IsAuto() {
		return "auto target " + t.Node + ": no eligible model", false
	}
	for i := range d.Len() {
		if v := d.Line(i); v.ID == asked {
			switch v.Verdict {
			case "excluded":
				return t.Model + " excluded by policy (" + d.LineReason(i) + ")", true
			case "rejected":
				return t.Model + " cannot serve (" + d.LineReason(i) + ")", false
			}
		}
	}
	return t.Model + ": " + apierr.As(err).Message, false
}

// dedupe drops repeats and the chosen model, keeping the first of each.
func dedupe(ms []*catalog.Model, chosen *catalog.Model) []*catalog.Model {
	out := make([]*catalog.Model, 0, len(ms))
	for _, m := range ms {
		if m != chosen && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}
