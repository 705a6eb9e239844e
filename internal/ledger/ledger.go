// Package ledger enforces budgets (EUR per period) and rate limits
// (requests and tokens per minute and per day), exactly under concurrency
// and across replicas. A request reserves its worst case against every
// applicable budget and limit at once, all or nothing, before it leaves for
// a provider; its answer settles the reservation to what was used. A
// reservation whose replica dies expires, after its lease, into a charge at
// the reserved amount, so spend is never under-counted.
//
// Two backends keep the counters with the same semantics: memory (one
// replica; spend persisted through a Persister) and Redis (a fleet; one Lua
// script per operation). docs/budgets.md describes the guarantees.
package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/logevery"
)

// Subject is who a request is for: the principal's key, user, team and
// workspace (auth.Principal's fields; empty when unknown).
type Subject struct {
	Key       string
	User      string
	Team      string
	Workspace string
}

// Request is what Reserve checks and holds.
type Request struct {
	// ID identifies the reservation (the decision id); it must be unique.
	// Empty: the ledger makes one.
	ID      string
	Subject Subject
	// Model is the catalog model the request goes to (model rate limits).
	Model string
	// Cost is the worst case: known input tokens plus the output limit, at
	// the model's price (CeilEUR of catalog.Model.CostEUR).
	Cost MicroEUR
	// Tokens is the token estimate counted against token rate limits:
	// input tokens plus the output limit.
	Tokens int64
	// Extra are the key's own limits (from the key store; NewKeyLimits),
	// applied on top of the configured ones. Nil: none.
	Extra *Limits
	// OnlyExtra applies Extra alone, without the configured limits: a
	// route's rate_limit node counts its own requests (flow.Limiter).
	OnlyExtra bool
}

// Usage is what an answer actually used.
type Usage struct {
	Cost   MicroEUR
	Tokens int64
}

// BudgetState is one budget as it stands for a request; the policy input
// and the warning header read it.
type BudgetState struct {
	Name    string
	Scope   Scope
	Subject string // "" for a global budget
	Period  Period
	Limit   MicroEUR
	// Used is settled spend (expired leases included); Reserved is held by
	// requests in flight, this one included once it is reserved.
	Used     MicroEUR
	Reserved MicroEUR
	// Ratio is (Used+Reserved)/Limit, without this request's own hold once
	// it is reserved: how used the budget is as the request found it (the
	// warning, the gauge). Whether the request fits counts its hold.
	Ratio float64
	// Warn is set from WarnAt of the budget; Exceeded once Ratio reaches 1.
	// Both count what requests in flight hold, as the policy reads them:
	// a downgrade starts before a burst's spend has settled.
	Warn     bool
	Exceeded bool
	// Spent is Used/Limit, settled spend alone, and SpentWarn whether it is
	// past WarnAt: what the warning header, the notifications and the
	// gauge say. What requests in flight hold is their worst case, often a
	// hundred times their cost: counted there, it warned of a budget
	// nothing had been spent from and used up the period's one warning (a
	// helper's finding).
	Spent     float64
	SpentWarn bool
	Downgrade bool
	// Reset is when the period ends (zero for a total budget).
	Reset time.Time
}

// RateState is the most constraining rate limit of one kind (requests or
// tokens) for a request: OpenAI's x-ratelimit-{limit,remaining,reset}-*.
// Limit 0 means no limit applies.
type RateState struct {
	Name      string
	Limit     int64
	Remaining int64
	Reset     time.Time
}

// RefusalKind says what refused a request.
type RefusalKind uint8

// Refusal kinds; the edge answers 429 budget_exceeded or rate_limit_exceeded.
const (
	RefusedBudget RefusalKind = iota + 1
	RefusedRequests
	RefusedTokens
)

func (k RefusalKind) String() string {
	switch k {
	case RefusedBudget:
		return "budget"
	case RefusedRequests:
		return "requests"
	case RefusedTokens:
		return "tokens"
	}
	return "none"
}

// Refusal is why a request does not fit. When several limits refuse, it is
// the one that frees up last, so Retry-After is honest.
type Refusal struct {
	Kind    RefusalKind
	Name    string
	Scope   Scope
	Subject string
	// Limit is in micro-EUR for a budget, a count otherwise, per Period.
	Limit  int64
	Period Period
	// Reset is when the refusing period ends (zero: a total budget, which
	// never frees up); RetryAfter is the wait until then, whole seconds, at
	// least one second (zero for a total budget).
	Reset      time.Time
	RetryAfter time.Duration
	// Used, Held and Amount are, for a budget, its settled spend, what
	// requests in flight hold on it, and this request's worst case (micro-
	// EUR): with Used+Amount within Limit, only the holds refused it, and
	// it fits once they settle (InFlight).
	Used, Held, Amount int64
}

// InFlight reports whether a budget refused the request only for what
// requests in flight hold: the spend alone leaves room for its worst case.
func (r *Refusal) InFlight() bool {
	return r.Kind == RefusedBudget && r.Held > 0 && r.Used+r.Amount <= r.Limit
}

// State is the budgets and rate limits a request meets.
type State struct {
	Budgets  []BudgetState
	Requests RateState
	Tokens   RateState
	// Refusal is nil when the request fits.
	Refusal *Refusal
	// Warning is set when a budget is at or over its warn threshold.
	Warning bool
}

// Reservation is a request's hold on its budgets and limits. The edge keeps
// it with the request and calls Settle (or Release) once.
type Reservation struct {
	ID string
	// Allowed: the request fits and is held. False: see State.Refusal.
	Allowed bool
	// Unenforced: the state store was unreachable and the failure mode let
	// the request through unchecked; Settle still charges what it can.
	Unenforced bool
	State

	req      Request
	counters []counter
}

// Settlement says how Settle went.
type Settlement struct {
	// Duplicate: the reservation was already settled or released; nothing
	// was charged again.
	Duplicate bool
	// Late: the lease had expired (charged at the reserved amount); the
	// charge is now corrected to the actual usage.
	Late bool
	// Unmatched: the store had no record of the reservation (unenforced, or
	// lost with a Redis restart); the usage was charged directly.
	Unmatched bool
}

// ErrUnavailable is wrapped by every error that means the state store could
// not be reached; the request's failure mode decides what the caller does.
var ErrUnavailable = errors.New("ledger: state store unavailable")

// UnavailableError is the typed form of ErrUnavailable.
type UnavailableError struct {
	Op  string
	Err error
}

func (e *UnavailableError) Error() string {
	return "ledger: " + e.Op + ": state store unavailable: " + e.Err.Error()
}

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func (e *UnavailableError) Unwrap() error { return e.Err }

// ErrDuplicateID is Reserve's answer to an id that already has a reservation.
var ErrDuplicateID = errors.New("ledger: reservation id already used")

// ErrNotReserved is Move's answer to a reservation that is no longer held
// (settled, released, or expired).
var ErrNotReserved = errors.New("ledger: reservation is not held")

// Options tune a Ledger.
type Options struct {
	// Lease is how long a reservation holds before it expires into a
	// charge. Default 6 minutes.
	Lease time.Duration
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
	// FailOpenBudgets and FailOpenRateLimits admit a request, unchecked,
	// when the store is unreachable. Defaults: budgets closed, rate limits
	// closed (config defaults rate limits to open).
	FailOpenBudgets    bool
	FailOpenRateLimits bool
	Logger             *zap.Logger
}

// Ledger checks and holds requests against Limits in a Backend. It is safe
// for concurrent use; several Ledgers on one Redis share counters exactly.
type Ledger struct {
	backend Backend
	limits  atomic.Pointer[Limits]
	// lease and retention are durations, reloadable (SetLease).
	lease     atomic.Int64
	retention atomic.Int64
	now       func() time.Time
	failOpenB bool
	failOpenR bool
	log       *zap.Logger
	orphans   orphans
	// down is set by a request's reserve or settle the store failed, and
	// cleared by one it answered; failedAt is the last failure (unix ms);
	// unchecked counts requests admitted without a check (failure mode
	// open). Health reads them.
	down      atomic.Bool
	failedAt  atomic.Int64
	unchecked atomic.Uint64
	// uncheckedLog says an outage's unchecked admissions once an interval.
	uncheckedLog logevery.Limiter
}

// ShareFingerprint publishes this replica's config fingerprint in the
// shared store (Redis) and returns the other replicas' that are at most
// fresh old, by replica: replicas that decide by different configs charge
// different prices against one budget (the fleet probe overspent a team's
// budget by 40 % with two).
func (l *Ledger) ShareFingerprint(ctx context.Context, replica, fp string, fresh time.Duration) (map[string]string, error) {
	s, ok := l.backend.(interface {
		shareFingerprint(ctx context.Context, replica, fp string, fresh time.Duration) (map[string]string, error)
	})
	if !ok {
		return nil, ErrNotShared
	}
	return s.shareFingerprint(ctx, replica, fp, fresh)
}

// Health is how the budget store stands, as requests found it: /status
// and the metrics show it (a Redis that is down or refuses stellwerk's
// password is otherwise only in the log).
type Health struct {
	Backend string `json:"backend"` // memory or redis
	// Reachable is false from a request the store did not answer until
	// one it does.
	Reachable     bool       `json:"reachable"`
	LastFailureAt *time.Time `json:"last_failure_at,omitempty"`
	// AdmittedUnchecked counts requests let through without a check while
	// it was unreachable (on_unavailable: open).
	AdmittedUnchecked uint64 `json:"admitted_unchecked"`
	// ToGiveBack are reservations whose reserve failed in transit, waiting
	// for the store to answer so they can be released.
	ToGiveBack int `json:"reservations_to_give_back"`
	// StateLostAt is when this replica last found that Redis had lost
	// stellwerk's state: every budget's period restarted from zero.
	StateLostAt *time.Time `json:"state_lost_at,omitempty"`
}

// Health reports how the store stands.
func (l *Ledger) Health() Health {
	h := Health{Backend: "redis", Reachable: !l.down.Load(), AdmittedUnchecked: l.unchecked.Load(), ToGiveBack: l.orphans.pending()}
	if _, ok := l.backend.(*memory); ok {
		h.Backend = "memory"
	}
	if ms := l.failedAt.Load(); ms != 0 {
		t := time.UnixMilli(ms).UTC()
		h.LastFailureAt = &t
	}
	if r, ok := l.backend.(*closingRedis); ok {
		if ms := r.lostAt.Load(); ms != 0 {
			t := time.UnixMilli(ms).UTC()
			h.StateLostAt = &t
		}
	}
	return h
}

// answered records whether the store answered a request's operation; an
// operation its caller gave up on (ctx) says nothing about the store.
func (l *Ledger) answered(ctx context.Context, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	if err == nil {
		if l.down.Load() {
			l.down.Store(false)
		}
		return
	}
	l.down.Store(true)
	l.failedAt.Store(time.Now().UnixMilli())
}

// New makes a Ledger.
func New(b Backend, lim *Limits, o Options) *Ledger {
	if o.Lease <= 0 {
		o.Lease = 6 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if lim == nil {
		lim, _ = NewLimits(time.UTC, nil, nil)
	}
	l := &Ledger{backend: b, now: o.Now,
		failOpenB: o.FailOpenBudgets, failOpenR: o.FailOpenRateLimits, log: o.Logger.Named("ledger")}
	l.SetLease(o.Lease)
	l.limits.Store(lim)
	if rb := redisOf(b); rb != nil {
		// Redis's health as the state check finds it, every 10 s: with
		// no traffic, stellwerk_budget_store_up stayed 1 after Redis went
		// down and 0 after it came back (the observability probe).
		f := func(err error) { l.answered(context.Background(), err) }
		rb.onCheck.Store(&f)
	}
	return l
}

// SetLimits swaps in new limits (config reload). Reservations made under
// the old ones settle against the counters they hold.
func (l *Ledger) SetLimits(lim *Limits) { l.limits.Store(lim) }

// Limits returns the limits in force.
func (l *Ledger) Limits() *Limits { return l.limits.Load() }

// Lease is how long a reservation holds before it expires into a charge.
func (l *Ledger) Lease() time.Duration { return time.Duration(l.lease.Load()) }

// SetLease changes the lease of reservations made from now on (a reload
// of budgets.lease, or of envoy.request_timeout, which it follows by
// default); those made before keep theirs. Settled reservations are
// remembered for at least a minute, or the lease.
func (l *Ledger) SetLease(d time.Duration) {
	l.lease.Store(int64(d))
	l.retention.Store(int64(max(time.Minute, d)))
}

// retain is how long settled and expired reservations are remembered.
func (l *Ledger) retain() time.Duration { return time.Duration(l.retention.Load()) }

// Close stops the backend (the memory backend saves its spend).
func (l *Ledger) Close(ctx context.Context) error {
	l.orphans.stop()
	return l.backend.close(ctx)
}

// ErrNotShared is Claim's and ShareFingerprint's answer on a backend
// without state shared between replicas (memory).
var ErrNotShared = errors.New("ledger: the memory backend shares no state")

// Claim marks key (a budget event's identity) as told until until (zero:
// for good) and reports whether this call was the first to mark it. On
// Redis the mark is shared by every replica on it, so a fleet tells an
// event once; the memory backend answers ErrNotShared.
func (l *Ledger) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	r, ok := l.backend.(interface {
		claim(context.Context, string, time.Time) (bool, error)
	})
	if !ok {
		return false, ErrNotShared
	}
	return r.claim(ctx, key, until)
}

// Reserve checks req against every applicable budget and rate limit and,
// if all hold, holds its cost and tokens and counts the request, atomically
// in one step. A refusal is not an error: Allowed is false and Refusal says
// why. The error is ErrUnavailable (store unreachable, request refused by
// its failure mode), ErrDuplicateID or the context's.
func (l *Ledger) Reserve(ctx context.Context, req *Request) (*Reservation, error) {
	r := &Reservation{ID: req.ID, req: *req}
	if r.ID == "" {
		r.ID = newID()
		r.req.ID = r.ID
	}
	now := l.now()
	p := plan{id: r.ID, now: now.UnixMilli(), leaseUntil: now.Add(l.Lease()).UnixMilli(), retention: l.retain().Milliseconds()}
	p.counters = l.compile(&r.req, now, false, "")
	if len(p.counters) == 0 {
		r.Allowed, r.Unenforced = true, false
		return r, nil // nothing applies: nothing to hold, Settle is a no-op
	}
	st, err := l.backend.reserve(ctx, &p)
	l.answered(ctx, err)
	if err != nil {
		// The store may have made the reservation and the answer been
		// lost: it is given back once the store answers again. Not when
		// the connection was never made (Redis down): nothing was sent.
		if oe := (*net.OpError)(nil); !errors.As(err, &oe) || oe.Op != "dial" {
			l.orphans.add(l, r.ID)
		}
		return l.unavailable(ctx, r, p.counters, "reserve", err)
	}
	switch st {
	case statusDuplicate:
		return nil, ErrDuplicateID
	case statusRefused:
		r.State = l.state(p.counters, now, true)
	default:
		r.Allowed = true
		r.State = l.state(p.counters, now, false)
	}
	r.counters = p.counters
	return r, nil
}

// unavailable applies the failure modes: a request with a budget (rate
// limit) that fails closed gets the error; otherwise it goes through
// unchecked and is charged at Settle if the store is back.
func (l *Ledger) unavailable(ctx context.Context, r *Reservation, cs []counter, op string, err error) (*Reservation, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var hasBudget, hasRate bool
	for i := range cs {
		if cs[i].key.kind == kindMoney {
			hasBudget = true
		} else {
			hasRate = true
		}
	}
	ue := &UnavailableError{Op: op, Err: err}
	if (hasBudget && !l.failOpenB) || (hasRate && !l.failOpenR) {
		return nil, ue
	}
	l.unchecked.Add(1)
	if ok, n := l.uncheckedLog.Allow(); ok {
		l.log.Warn("state store unavailable: requests admitted unchecked (failure mode open)", zap.Int64("requests", n), zap.Error(err))
	}
	r.Allowed, r.Unenforced, r.counters = true, true, cs
	return r, nil
}

// Settle charges what the request used to every budget and token limit it
// holds, and releases the rest of the reservation. Usage above the
// reservation is charged in full. Settling the same reservation again
// charges nothing (Duplicate). A refused reservation settles to nothing.
func (l *Ledger) Settle(ctx context.Context, r *Reservation, u Usage) (Settlement, error) {
	return l.finish(ctx, r, u, false)
}

// Release gives back a reservation whose request never reached a provider:
// nothing is charged; the request still counts against request limits.
func (l *Ledger) Release(ctx context.Context, r *Reservation) error {
	_, err := l.finish(ctx, r, Usage{}, true)
	return err
}

func (l *Ledger) finish(ctx context.Context, r *Reservation, u Usage, release bool) (Settlement, error) {
	if r == nil || !r.Allowed || len(r.counters) == 0 {
		return Settlement{}, nil
	}
	if u.Cost < 0 {
		u.Cost = 0
	}
	if u.Tokens < 0 {
		u.Tokens = 0
	}
	now := l.now().UnixMilli()
	op := "settle"
	if release {
		op = "release"
	}
	if r.Unenforced {
		if release {
			return Settlement{}, nil
		}
		if err := l.backend.charge(ctx, r.ID, now, l.retain().Milliseconds(), r.counters, int64(u.Cost), u.Tokens); err != nil {
			return Settlement{}, &UnavailableError{Op: "charge", Err: err}
		}
		return Settlement{Unmatched: true}, nil
	}
	st, err := l.backend.settle(ctx, r.ID, now, l.retain().Milliseconds(), int64(u.Cost), u.Tokens, release)
	l.answered(ctx, err)
	if err != nil {
		return Settlement{}, &UnavailableError{Op: op, Err: err}
	}
	switch st {
	case statusDuplicate:
		return Settlement{Duplicate: true}, nil
	case statusLate:
		return Settlement{Late: true}, nil
	case statusUnknown:
		if release {
			return Settlement{Unmatched: true}, nil
		}
		// The store lost the record (a Redis restart without persistence):
		// charge the usage directly so it is not lost.
		if err := l.backend.charge(ctx, r.ID, now, l.retain().Milliseconds(), r.counters, int64(u.Cost), u.Tokens); err != nil {
			return Settlement{}, &UnavailableError{Op: "charge", Err: err}
		}
		return Settlement{Unmatched: true}, nil
	}
	return Settlement{}, nil
}

// Move re-reserves a held reservation for another model (failover): the old
// hold is released and the new worst case held in one atomic step, or, if
// the new one does not fit, nothing changes and the refusal is returned.
// Request limits are not counted again, except those of the new model.
func (l *Ledger) Move(ctx context.Context, r *Reservation, model string, cost MicroEUR, tokens int64) (*Refusal, error) {
	if r == nil || !r.Allowed {
		return nil, ErrNotReserved
	}
	req := r.req
	req.Model, req.Cost, req.Tokens = model, cost, tokens
	now := l.now()
	cs := l.compile(&req, now, true, r.req.Model)
	if r.Unenforced || len(r.counters) == 0 {
		r.req, r.counters = req, cs
		return nil, nil
	}
	p := plan{id: r.ID, now: now.UnixMilli(), leaseUntil: now.Add(l.Lease()).UnixMilli(), retention: l.retain().Milliseconds(),
		counters: cs, move: true}
	st, err := l.backend.reserve(ctx, &p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnavailableError{Op: "move", Err: err}
	}
	switch st {
	case statusGone:
		return nil, ErrNotReserved
	case statusRefused:
		s := l.state(cs, now, true)
		return s.Refusal, nil
	}
	r.req, r.counters = req, cs
	r.State = l.state(cs, now, false)
	return nil, nil
}

// Downgrades reports whether a downgrade budget applies to req's subject
// (configured, or the key's own in req.Extra): the edge then peeks at the
// budgets for the policy input. It reads only the limits, never the store,
// and costs one load and a branch when no downgrade budget is configured.
func (l *Ledger) Downgrades(req *Request) bool {
	for _, lim := range [2]*Limits{l.limits.Load(), req.Extra} {
		if lim == nil || !lim.downgrade {
			continue
		}
		var buf [16]int32
		for _, i := range lim.budgetIdx.matches(buf[:0], &req.Subject, req.Model) {
			if lim.budgets[i].Downgrade {
				return true
			}
		}
	}
	return false
}

// Peek reports the state req would meet, and whether it would fit,
// without holding anything. Leases past their end expire first.
func (l *Ledger) Peek(ctx context.Context, req *Request) (State, error) {
	now := l.now()
	p := plan{now: now.UnixMilli(), retention: l.retain().Milliseconds()}
	p.counters = l.compile(req, now, false, "")
	if len(p.counters) == 0 {
		return State{}, nil
	}
	if err := l.backend.peek(ctx, &p); err != nil {
		if ctx.Err() != nil {
			return State{}, ctx.Err()
		}
		return State{}, &UnavailableError{Op: "peek", Err: err}
	}
	return l.state(p.counters, now, true), nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
