package flow

import (
	"context"
	"sync"

	"github.com/stellwerk/stellwerk/internal/ledger"
)

// LedgerLimiter counts rate_limit nodes in the ledger (memory, or Redis
// across replicas): each node is a rate rule named RateLimit.Counter(),
// scoped by its Per, that only that node's requests meet. A request is
// reserved under its decision id and released at once: it counts, and no
// money is held. When the ledger is unreachable and its rate-limit failure
// mode lets requests through unchecked, the verdict is Unavailable and the
// node's own fail mode decides.
type LedgerLimiter struct {
	Ledger *ledger.Ledger

	rules sync.Map // *RateLimit → *ledger.Limits, compiled once per node
}

// Take counts one request at one node.
func (ll *LedgerLimiter) Take(ctx context.Context, l *RateLimit, in *Input) (Verdict, error) {
	lim, err := ll.limits(l)
	if err != nil {
		return Unavailable, err
	}
	req := ledger.Request{ID: in.RequestID + "/" + l.Node, Extra: lim, OnlyExtra: true}
	if p := in.Principal; p != nil {
		req.Subject = ledger.Subject{Key: p.KeyID, Team: p.Team, Workspace: p.Workspace}
	}
	if l.Per == PerUser {
		// The same user a sticky split follows: the key's, else the body's.
		req.Subject.User = stickyUserOf(in)
	}
	r, err := ll.Ledger.Reserve(ctx, &req)
	switch {
	case err != nil:
		return Unavailable, err
	case !r.Allowed:
		return Over, nil
	case r.Unenforced:
		return Unavailable, nil
	}
	// Counted; nothing to hold. A release that fails leaves a lease that
	// expires with the same count.
	_ = ll.Ledger.Release(ctx, r)
	return Under, nil
}

// limits compiles the node's rule once.
func (ll *LedgerLimiter) limits(l *RateLimit) (*ledger.Limits, error) {
	if v, ok := ll.rules.Load(l); ok {
		return v.(*ledger.Limits), nil
	}
	scope := map[Per]ledger.Scope{PerKey: ledger.ScopeKey, PerUser: ledger.ScopeUser, PerTeam: ledger.ScopeTeam,
		PerWorkspace: ledger.ScopeWorkspace, PerRoute: ledger.ScopeGlobal}[l.Per]
	lim, err := ledger.NewLimits(nil, nil, []ledger.RateRule{{Name: l.Counter(), Scope: scope,
		RequestsPerMinute: l.RequestsPerMinute, RequestsPerDay: l.RequestsPerDay}})
	if err != nil {
		return nil, err
	}
	v, _ := ll.rules.LoadOrStore(l, lim)
	return v.(*ledger.Limits), nil
}
