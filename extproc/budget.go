package extproc

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/notify"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// outputBound is the most a request can make the model write: its own
// limit, at most the model's (a provider is never asked for more:
// filter.capOutput), else what the model is sent without one — its own
// limit, or the one Anthropic's required max_tokens gets from the
// translation.
func outputBound(m *catalog.Model, maxTokens int) int {
	switch {
	case maxTokens < 0: // a request without output (embeddings)
		return 0
	case maxTokens > 0:
		return min(maxTokens, m.OutputLimit())
	case m.Provider != nil && m.Provider.WireFormat == "anthropic":
		return min(translate.DefaultMaxTokens, m.OutputLimit())
	}
	return m.OutputLimit()
}

// reserve holds the request's worst case against every budget and rate
// limit it meets, before it leaves: all of them or none. The worst case is
// the dearest model the request may end up on (its plan, with failover), so
// a failover never spends more than was held. It returns the plan the hold
// covers, which is plan itself unless a limit refused it:
//
//   - a budget the plan's worst case does not fit: the fallbacks whose own
//     worst case does not fit what the budget has left are left out (the
//     plan's order kept) and the rest held, so a small request under a
//     small budget is not refused for a dear fallback it would rarely
//     reach; only a first model that does not fit is refused;
//   - a rate limit of the first model, for a request that may go to
//     another model (movable: auto or a route, never a pinned model): the
//     request moves down the plan to the next model and is held there.
//
// Each try is one atomic Reserve of the whole narrowed plan, so a budget
// stays exact under concurrency across replicas and a failover still never
// spends more than was held (holding only the first model and moving the
// hold on failover would make a failover refusable by a budget half way
// through a request, and cost a round trip to the store per attempt). A
// request that fits pays one Reserve, as before.
//
// It answers the request itself when a limit refuses it (429) or the
// state store cannot say (503, unless the failure mode lets it through).
func (p *edge) reserve(led *ledger.Ledger, plan []*catalog.Model, o output, movable bool) ([]*catalog.Model, *extprocv3.ProcessingResponse) {
	pr := p.principal
	extra, err := p.state.limitsOf(&pr, led)
	if err != nil {
		// Fail closed: admitting the request would spend past limits
		// its key was given.
		p.log.Error("the key's own limits cannot be enforced; request refused", zap.String("decision_id", p.id),
			zap.String("key_id", pr.KeyID), zap.Error(err))
		e := apierr.Internal()
		e.Code, e.Final = "key_limits_invalid", true
		e.Message = "this key's budgets or rate limits cannot be enforced, so the request was not sent; an administrator must replace the key (see the stellwerk log)"
		return nil, p.immediate(e)
	}
	var (
		refused   refusal // the refusal to answer with when no model is allowed
		moved     []string
		droppedBy string
		dropped   []string
	)
	for {
		worst, tokens := worstCase(p.class.InputTokens, plan, o)
		r, err := led.Reserve(p.ctx, &ledger.Request{ID: p.id, Model: plan[0].ID, Cost: worst, Tokens: tokens,
			Subject: ledger.Subject{Key: pr.KeyID, User: pr.User, Team: pr.Team, Workspace: pr.Workspace},
			Extra:   extra})
		if err != nil {
			if errors.Is(err, ledger.ErrUnavailable) {
				if ok, n := p.state.storeDown.refused.Allow(); ok {
					p.log.Error("budgets and rate limits cannot be checked; requests refused", zap.String("decision_id", p.id), zap.Int64("requests", n), zap.Error(err))
				}
				return nil, p.immediate(apierr.Unavailable("budget_store_unavailable",
					"budgets and rate limits cannot be checked right now (their state store is unreachable); the request was not sent"))
			}
			p.log.Error("reservation failed", zap.String("decision_id", p.id), zap.Error(err))
			return nil, p.immediate(apierr.Internal())
		}
		if r.Allowed {
			if len(moved) > 0 || len(dropped) > 0 {
				p.planNote = planNote(moved, dropped, droppedBy)
			}
			p.reservation = r
			ObserveBudgets(p.state.Metrics, &r.State)
			if r.Warning {
				p.tellBudgets(&r.State)
			}
			if r.Unenforced {
				if ok, n := p.state.storeDown.unchecked.Allow(); ok {
					p.log.Warn("state store unreachable: requests admitted without budget or rate-limit checks (failure mode open)",
						zap.String("decision_id", p.id), zap.Int64("requests", n))
				}
			}
			return plan, nil
		}
		f := r.Refusal
		this := refusal{r: r, tokens: tokens, plan: plan}
		switch {
		case movable && len(plan) > 1 && f.Kind != ledger.RefusedBudget && f.Scope == ledger.ScopeModel && f.Subject == plan[0].ID:
			// The first model's own rate limit: the next one may take it.
			refused = refused.sooner(this)
			moved = append(moved, plan[0].ID+" (rate limit "+strconv.Quote(f.Name)+")")
			plan = plan[1:]
			continue
		case f.Kind == ledger.RefusedBudget && len(plan) > 1:
			if kept := fitting(p.class.InputTokens, plan, o, f.Limit-f.Used-f.Held); len(kept) < len(plan) {
				for _, m := range plan[1:] {
					if !slices.Contains(kept, m) {
						dropped = append(dropped, m.ID)
					}
				}
				droppedBy, plan = f.Name, kept
				continue
			}
		}
		refused = refused.sooner(this)
		break
	}
	return nil, p.refuse(refused)
}

// refusal is a plan's refused reservation, with the tokens it asked for.
type refusal struct {
	r      *ledger.Reservation
	tokens int64
	plan   []*catalog.Model
}

// sooner is whichever of a and b may be sent again first: a refusal no
// wait lifts (a request larger than the whole limit) comes last.
func (a refusal) sooner(b refusal) refusal {
	if a.r == nil {
		return b
	}
	wait := func(x refusal) time.Duration {
		f := x.r.Refusal
		if f.RetryAfter <= 0 || (f.Kind == ledger.RefusedTokens && x.tokens > f.Limit) || (f.Kind == ledger.RefusedBudget && f.Amount > f.Limit) {
			return time.Duration(1<<63 - 1)
		}
		return f.RetryAfter
	}
	if wait(b) < wait(a) {
		return b
	}
	return a
}

// fitting is plan without the fallbacks whose own worst case is more than
// room, in its order; the first model alone when its own is.
func fitting(in int, plan []*catalog.Model, o output, room int64) []*catalog.Model {
	if w, _ := worstCase(in, plan[:1], o); int64(w) > room {
		return plan[:1]
	}
	kept := make([]*catalog.Model, 1, len(plan))
	kept[0] = plan[0]
	for i := 1; i < len(plan); i++ {
		if w, _ := worstCase(in, plan[i:i+1], o); int64(w) <= room {
			kept = append(kept, plan[i])
		}
	}
	return kept
}

// planNote is the reason's note on what the limits changed in the plan.
func planNote(moved, dropped []string, budget string) string {
	var b strings.Builder
	if len(moved) > 0 {
		b.WriteString("moved past ")
		b.WriteString(strings.Join(moved, ", "))
	}
	if len(dropped) > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString("fallbacks left out for budget ")
		b.WriteString(strconv.Quote(budget))
		b.WriteString(": ")
		b.WriteString(strings.Join(dropped, ", "))
	}
	return b.String()
}

// refuse answers a request no model of its plan could be held for.
func (p *edge) refuse(rf refusal) *extprocv3.ProcessingResponse {
	r, tokens, pr := rf.r, rf.tokens, p.principal
	ObserveBudgets(p.state.Metrics, &r.State)
	p.tellBudgets(&r.State)
	f := r.Refusal
	retry := int((f.RetryAfter + time.Second - 1) / time.Second)
	var e *apierr.Error
	switch f.Kind {
	case ledger.RefusedBudget:
		when := "it does not reset"
		if !f.Reset.IsZero() {
			when = "it resets at " + f.Reset.UTC().Format(time.RFC3339)
		}
		limit := ledger.MicroEUR(f.Limit).String()
		switch {
		case f.InFlight():
			// Only requests in flight hold it: it fits once they settle,
			// in seconds, not at the period's end.
			retry = inFlightRetry
			// Holds of a replica that stopped stay until their lease ends
			// (the fleet probe waited minutes on "a few seconds"): said.
			e = apierr.Exhausted("budget_exceeded", retry,
				"the %s budget %q (%s) has %s held by requests in flight; this request's worst case (%s) fits once they finish: retry in a few seconds "+
					"(what a replica that stopped held is charged when its lease ends, within %s)",
				f.Scope, f.Name, limit, ledger.MicroEUR(f.Held).String(), ledger.MicroEUR(f.Amount).String(), p.state.Ledger.Lease().Round(time.Second))
		case f.Amount > f.Limit:
			// Larger than the whole budget: no wait makes it fit.
			e = apierr.Exhausted("budget_exceeded", 0,
				"this request's worst case (%s: its input and its max_tokens %s) is more than the whole %s budget %q (%s); %s",
				ledger.MicroEUR(f.Amount).String(), worstAt(rf.plan), f.Scope, f.Name, limit, p.smaller(rf.plan, f.Amount))
		case f.Used < f.Limit:
			e = apierr.Exhausted("budget_exceeded", retry,
				"the %s budget %q (%s) has %s left, less than this request's worst case (%s: its input and its max_tokens %s); %s, or wait: %s",
				f.Scope, f.Name, limit, ledger.MicroEUR(f.Limit-f.Used).String(), ledger.MicroEUR(f.Amount).String(), worstAt(rf.plan),
				p.smaller(rf.plan, f.Amount), when)
		default:
			e = apierr.Exhausted("budget_exceeded", retry, "the %s budget %q (%s) is used up; %s", f.Scope, f.Name, limit, when)
		}
		// A total budget never resets, and a request larger than the
		// budget never fits: the same request meets the same answer, and
		// the SDKs would send it again.
		e.Final = !f.InFlight() && (f.Reset.IsZero() || f.Amount > f.Limit)
	case ledger.RefusedTokens:
		if tokens > f.Limit {
			// Larger than the whole limit: retrying after the reset meets
			// the same answer (a helper's n: 100 waited and retried for
			// good).
			e = apierr.Exhausted("rate_limit_exceeded", 0,
				"this request needs up to %d tokens (its input and max_tokens for each choice), more than rate limit %q allows in a whole %s (%d) for this %s; ask for fewer tokens (max_tokens, n)",
				tokens, f.Name, f.Period, f.Limit, f.Scope)
			e.Final = true
			break
		}
		fallthrough
	default:
		e = apierr.Exhausted("rate_limit_exceeded", retry, "rate limit %q reached: %d %s per %s for this %s",
			f.Name, f.Limit, f.Kind, f.Period, f.Scope)
	}
	p.state.Metrics.Rejected(pr.Workspace, f.Kind.String(), f.Scope.String())
	p.log.Info("refused by a limit", zap.String("decision_id", p.id), zap.String("limit", f.Name), zap.Stringer("kind", f.Kind),
		zap.String("workspace", pr.Workspace))
	resp := p.immediate(e)
	if ir := resp.GetImmediateResponse(); ir != nil {
		ir.Headers.SetHeaders = append(ir.Headers.SetHeaders, rateHeaders(&r.State, time.Now())...)
	}
	return resp
}

// worstAt says where a refused plan's worst case is reckoned: its one
// model, or the dearest of them.
func worstAt(plan []*catalog.Model) string {
	if len(plan) == 1 {
		return "on " + plan[0].ID
	}
	return "at the dearest model it may go to"
}

// smaller is the advice to a request whose worst case (worst) does not fit
// a budget: a shorter prompt when its input is most of it (a 138,000-token
// prompt was told to lower its max_tokens, with the input 99.6 % of its
// worst case: the long-context probe), else fewer tokens.
func (p *edge) smaller(plan []*catalog.Model, worst int64) string {
	in := p.out
	in.perChoice = -1 // the input alone: no output
	if w, _ := worstCase(p.class.InputTokens, plan, in); 2*int64(w) > worst {
		return "its input alone (" + w.String() + ") is most of it: the prompt is too large for this budget, send a shorter one (fewer or shorter messages, images or files)"
	}
	return "ask for fewer tokens (a lower max_tokens or max_output_tokens, or fewer choices n)"
}

// inFlightRetry is the Retry-After, in seconds, of a budget refusal that
// only requests in flight cause: they settle within seconds, and the SDKs
// retry after it (they give up on waits past a minute).
const inFlightRetry = 2

// worstCase is the most a request can cost and the most tokens it can
// use on any model of its plan: every choice may write the model's bound,
// every image may cost the model's bound for one, and every inline PDF's
// page its text and its image (catalog.Model.MediaTokens). A prompt that
// marks anything for the provider's cache may be written to it whole, at
// the write's price (Anthropic: 1.25 times the input price for five
// minutes, twice for an hour): held at the input price, a 100,000-token
// prompt written for an hour cost twice its hold (the reasoning probe).
// The provider's web searches are held at what the request allows of them
// (request.WebSearches), each at the model's price for one.
func worstCase(in int, plan []*catalog.Model, o output) (ledger.MicroEUR, int64) {
	var worst ledger.MicroEUR
	var tokens int64
	for _, m := range plan {
		out := outputBound(m, o.perChoice) * o.choices
		in := in + o.media(m)
		cost := m.CostEUR(in, out)
		if o.webSearches > 0 {
			cost = m.UsageEUR(catalog.Tokens{Input: in, Output: out, WebSearches: o.webSearches})
		}
		switch o.cacheWrites {
		case request.CacheWrite1h: // the five-minute marks among them too
			cost = max(cost, m.UsageEUR(catalog.Tokens{Input: in, CacheWrite1h: in, Output: out, WebSearches: o.webSearches}),
				m.UsageEUR(catalog.Tokens{Input: in, CacheWrite: in, Output: out, WebSearches: o.webSearches}))
		case request.CacheWrite5m:
			cost = max(cost, m.UsageEUR(catalog.Tokens{Input: in, CacheWrite: in, Output: out, WebSearches: o.webSearches}))
		}
		worst = max(worst, ledger.CeilEUR(cost))
		tokens = max(tokens, int64(in+out))
	}
	return worst, tokens
}

// plausibleUsage reports whether the usage a provider reported can be its
// answer to a request of bodyLen bytes on m: no count negative (a count too
// large for an int wraps to one), the cached tokens within the prompt, the
// prompt within twice the body (a token is at least a byte, images and PDFs
// count their tokens, and a provider's own preamble, such as Anthropic's
// for tools, is within the slack) or, for a request whose prompt the body
// does not hold (output.opaque: a stored response, a file by id, a server
// tool's results), twice m's context window, the output within outputCap.
// Counts beyond are a broken or hostile provider: one answer would use up
// every budget it meets, or a wrapped count make it free and break the
// spend report's sums (the chaos probe's 10^12 and 2^63−1). Such an answer
// is charged as one without usage. The prompt's bound was the context
// window for every request, so a 10-token prompt reported as 200,000 was
// charged 1,000 times its hold (the hostile-upstream probe).
func plausibleUsage(u meter.Usage, m *catalog.Model, bodyLen int, o output) bool {
	if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.CachedTokens < 0 || u.CacheWriteTokens < 0 || u.CacheWrite1hTokens < 0 ||
		u.CachedTokens+u.CacheWriteTokens+u.CacheWrite1hTokens > u.PromptTokens {
		return false
	}
	maxIn := 2*(bodyLen+o.media(m)) + usageSlack
	if o.opaque {
		maxIn = max(maxIn, 2*m.ContextWindow)
	}
	return u.PromptTokens <= maxIn && u.CompletionTokens <= outputCap(m, o)
}

// outputCap is the most output an answer on m can have: twice what m can
// write for each choice (tokenizers and reasoning counts differ a little
// from the catalog's bounds), with usageSlack. It is the model's bound,
// not the limit the request sent: a client chooses that one, and a
// provider that wrote past it (one that reads another name for it, or
// none) bills what it wrote — an answer charged at the request's 1-token
// limit was nearly free (the red-team probe). A stream stellwerk counts
// past it is ended (streamState.maxOut), a JSON answer refused.
func outputCap(m *catalog.Model, o output) int {
	if o.perChoice < 0 {
		return usageSlack
	}
	return usageSlack + 2*m.OutputLimit()*max(o.choices, 1)
}

// estimateCharge prices stellwerk's own count of an answer (a stream or a
// body without usage, or with usage not believed), its output at most what
// was held for it on the served model: its count has no other end, and a
// provider streaming without end was charged 403 EUR under a 5 EUR budget
// (the hostile-upstream probe). The prompt is the hold's estimate, or the
// provider's count when it gave a plausible one. Source worst_case when the
// bound lowered the output.
func (p *edge) estimateCharge(u meter.Usage) meter.Charge {
	capped := false
	if out := outputBound(p.served, p.out.perChoice) * max(p.out.choices, 1); u.CompletionTokens > out {
		u.CompletionTokens, capped = out, true
	}
	c := meter.Meter(p.served, p.baseline(), u)
	if capped {
		c.Source = meter.WorstCase
	}
	return c
}

// worstCharge is the charge of an answer whose usage is not believed: the
// request's worst case on the served model (what its reservation holds of
// it), its tokens the prompt's estimate and the output bound, source
// worst_case, so that the routing object shows what was charged.
func (p *edge) worstCharge() meter.Charge {
	m := p.served
	worst, _ := worstCase(p.class.InputTokens, []*catalog.Model{m}, p.out)
	u := meter.Usage{PromptTokens: p.promptEstimate(), CompletionTokens: outputBound(m, p.out.perChoice) * max(p.out.choices, 1), Estimated: true}
	c := meter.Meter(m, p.baseline(), u)
	if c.EUR > 0 { // cache writes and searches held above the tokens' price
		c.Amount *= worst.EUR() / c.EUR
	}
	c.EUR, c.Source = worst.EUR(), meter.WorstCase
	c.SavingEUR = c.BaselineEUR - c.EUR
	return c
}

// usageSlack is the tokens plausibleUsage allows beyond its bounds.
const usageSlack = 4096

// keyLimitsEntry is one key's compiled limits and the record they came from.
type keyLimitsEntry struct {
	src *config.Limits
	lim *ledger.Limits
	err error
}

// limitsOf is the principal's own limits (a store key's budgets and rate
// limits), compiled once per version of its record; nil when it has none.
// A record that does not compile (the store validates limits as the ledger
// does, so only a record written by an older version or by hand) is an
// error: the key's limits would otherwise silently stop holding.
func (st *State) limitsOf(pr *auth.Principal, led *ledger.Ledger) (*ledger.Limits, error) {
	if pr.Limits == nil || pr.KeyID == "" {
		return nil, nil
	}
	if e, ok := st.keyLimits.Load(pr.KeyID); ok && e.(keyLimitsEntry).src == pr.Limits {
		return e.(keyLimitsEntry).lim, e.(keyLimitsEntry).err
	}
	lim, err := ledger.KeyLimitsFromConfig(pr.KeyID, pr.Limits, led.Limits().Location())
	st.keyLimits.Store(pr.KeyID, keyLimitsEntry{src: pr.Limits, lim: lim, err: err})
	return lim, err
}

// tellBudgets logs, and tells the webhook, once per budget and period on
// this replica, that a budget the request met is past its warn threshold or
// used up.
func (p *edge) tellBudgets(st *ledger.State) {
	now := time.Now()
	for i := range st.Budgets {
		b := &st.Budgets[i]
		kind := ""
		// Refused for what requests in flight hold is not exhausted: it
		// fits once they settle.
		refused := st.Refusal != nil && st.Refusal.Kind == ledger.RefusedBudget && st.Refusal.Name == b.Name && st.Refusal.Subject == b.Subject &&
			!st.Refusal.InFlight()
		switch {
		case b.Spent >= 1 || refused: // used up, or too little left for a request's worst case
			kind = "budget_exhausted"
		case b.SpentWarn:
			kind = "budget_warning"
		default:
			continue
		}
		ev := notify.Event{Kind: kind, Budget: b.Name, Scope: b.Scope.String(), Subject: b.Subject, Period: b.Period.String(),
			Ratio: b.Spent, Limit: b.Limit.EUR(), Used: b.Used.EUR(), Resets: b.Reset, At: now}
		if p.state.Notify != nil {
			if !p.state.Notify.Tell(ev) {
				continue
			}
		} else if !p.told.first(ev) {
			continue
		}
		p.log.Warn(kind, zap.String("budget", b.Name), zap.String("subject", b.Subject), zap.Float64("ratio", b.Spent),
			zap.String("decision_id", p.id))
	}
}

// toldOnce remembers which budget events this process logged, when no
// webhook does it: one line per budget, subject, kind and period.
type toldOnce struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (t *toldOnce) first(ev notify.Event) bool {
	if t == nil {
		return true
	}
	key := ev.Kind + "\x00" + ev.Budget + "\x00" + ev.Subject
	t.mu.Lock()
	defer t.mu.Unlock()
	if until, ok := t.seen[key]; ok && (until.IsZero() || ev.At.Before(until)) {
		return false
	}
	if t.seen == nil || len(t.seen) > 100_000 {
		t.seen = map[string]time.Time{}
	}
	t.seen[key] = ev.Resets
	return true
}

// rateHeaders are OpenAI's x-ratelimit-* headers for the tightest request
// and token limits a request met, and the budget warning.
func rateHeaders(st *ledger.State, now time.Time) []*corev3.HeaderValueOption {
	var hs []*corev3.HeaderValueOption
	for _, rl := range [...]struct {
		limit, remaining, reset string
		s                       ledger.RateState
	}{{"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests", st.Requests},
		{"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens", st.Tokens}} {
		if rl.s.Limit <= 0 {
			continue
		}
		if hs == nil {
			hs = make([]*corev3.HeaderValueOption, 0, 7)
		}
		hs = append(hs,
			setHeader(rl.limit, strconv.FormatInt(rl.s.Limit, 10)),
			setHeader(rl.remaining, strconv.FormatInt(max(rl.s.Remaining, 0), 10)),
			setHeader(rl.reset, resetIn(rl.s.Reset, now)))
	}
	for _, b := range st.Budgets {
		if b.SpentWarn {
			hs = append(hs, setHeader(header.BudgetWarning, b.Name+"; used="+strconv.FormatFloat(b.Spent, 'f', 2, 64)))
			break
		}
	}
	return hs
}

// resetIn is the time until reset the way OpenAI writes it ("1s", "6m0s"),
// in whole seconds rounded up, as Retry-After is (ledger's RetryAfter):
// rounded to the nearest, a 429's x-ratelimit-reset-requests said 47s
// beside Retry-After: 48, and a client trusting it came back early into
// another 429 (the docs walkthrough).
func resetIn(t time.Time, now time.Time) string {
	d := (max(t.Sub(now), 0) + time.Second - 1).Truncate(time.Second)
	if d < time.Second && !t.IsZero() {
		d = time.Second
	}
	return d.String()
}

// settle records the request's spend row and charges what the served model
// used (an estimate when the provider said nothing) against its
// reservation, freeing the rest; once per request.
//
// The charge is the request's at once (the routing object and the audit
// record read it); writing it down — the spend row, and the ledger's
// settlement, a round trip to Redis in a fleet — waits until the answer
// that carries it has been sent (afterSend), so the client never waits for
// it. Until then the reservation still holds the request's worst case, so
// budgets and rate limits stay exact; a stream that ends first settles in
// finish.
func (p *edge) settle(c meter.Charge, st spend.Status) {
	p.charge, p.charged = c, true // the audit record's usage and cost
	p.unsettled = settlement{c: c, st: st, due: true}
	if p.ending {
		p.afterSend()
	}
}

// settlement is a charge to write down after the answer went out (due).
type settlement struct {
	c   meter.Charge
	st  spend.Status
	due bool
}

// afterSend writes down a charge settle made (serveEdge calls it once the
// answers to a message are sent; finish calls it too).
func (p *edge) afterSend() {
	s := p.unsettled
	if !s.due {
		return
	}
	p.unsettled = settlement{}
	p.writeSettlement(s.c, s.st)
}

// writeSettlement records the spend row and settles the reservation.
func (p *edge) writeSettlement(c meter.Charge, st spend.Status) {
	p.record(c, st)
	r := p.reservation
	if r == nil {
		return
	}
	p.reservation = nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), settleTimeout)
	defer cancel()
	u := ledger.Usage{Cost: ledger.FromEUR(c.EUR), Tokens: int64(c.Usage.PromptTokens + c.Usage.CompletionTokens)}
	if _, err := p.state.Ledger.Settle(ctx, r, u); err != nil {
		if r.Unenforced {
			// Admitted unchecked (failure mode open): nothing is held, no
			// lease will charge it. Say what went uncounted.
			if ok, n := p.state.storeDown.unrecorded.Allow(); ok {
				p.log.Warn("state store unreachable: requests admitted unchecked are not counted against their budgets and rate limits (their spend ledger rows are written)",
					zap.String("decision_id", p.id), zap.Int64("requests", n), zap.Error(err))
			}
			return
		}
		// The lease charges the reserved amount when it expires: spend is
		// never under-counted, and may be over-counted by this request.
		if ok, n := p.state.storeDown.settle.Allow(); ok {
			p.log.Warn("settling requests' spend failed; their reservations are charged when their leases expire, unless the store lost them",
				zap.String("decision_id", p.id), zap.Int64("requests", n), zap.Error(err))
		}
	}
}

// settleTimeout bounds settling: it runs whether or not the client is
// still there (its stream's context may be gone).
const settleTimeout = 2 * time.Second

// endReservation settles what the answer left open when the request's
// stream ends: an answer that started (2xx) but whose usage stellwerk never
// read is charged at the served model's worst case, never zero
// (interrupted if its body never came); otherwise no provider answered and
// nothing is charged (failed, or interrupted when the stream ended before
// any answer: the client went away), and neither is a 2xx that was no
// answer (the client got 502). A request that never left (refused by a
// limit) has no row.
func (p *edge) endReservation() {
	if p.reservation == nil && (p.recorded || p.routedAt.IsZero() || !p.state.readsUsage()) {
		return
	}
	if len(p.respStatus) == 3 && p.respStatus[0] == '2' && !p.broken && p.served != nil {
		// The served model's, not the plan's: the dearest fallback's
		// worst case is up to fifty times more than the answer could cost
		// (a helper's finding).
		worst, _ := worstCase(p.class.InputTokens, []*catalog.Model{p.served}, p.out)
		p.log.Warn("answer's usage unknown; charged at the served model's worst case", zap.String("decision_id", p.id))
		st := spend.Served
		if p.addRouting { // the JSON body was awaited and never came
			st = spend.Interrupted
		}
		p.settle(meter.Charge{EUR: worst.EUR(), Usage: meter.Usage{PromptTokens: p.promptEstimate(), Estimated: true}}, st)
		return
	}
	n := len(p.attempts)
	if p.respStatus == "" && !p.routedAt.IsZero() && p.served != nil && (n == 0 || p.attempts[n-1].Outcome == outcomeAbandoned) {
		// The client went away after the request left and before any
		// answer came: the provider has read the prompt (and may be
		// writing), so the prompt is charged, as an estimate; never zero.
		// With failover, to the attempt under way (leftDuringAttempts).
		u := meter.Usage{PromptTokens: p.promptEstimate(), Estimated: true}
		p.log.Info("client went away before the answer; the prompt is charged as an estimate", zap.String("decision_id", p.id))
		p.settle(meter.Meter(p.served, p.baseline(), u), spend.Interrupted)
		return
	}
	p.release()
}

// release frees a reservation nothing was charged against: the request
// never got an answer from a provider, or only an error. Its spend row
// says failed, at no cost.
func (p *edge) release() {
	p.record(meter.Charge{}, spend.Failed)
	r := p.reservation
	if r == nil {
		return
	}
	p.reservation = nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), settleTimeout)
	defer cancel()
	if err := p.state.Ledger.Release(ctx, r); err != nil {
		if ok, n := p.state.storeDown.release.Allow(); ok {
			p.log.Warn("releasing requests' reservations failed; they are charged when their leases expire, unless the store lost them",
				zap.String("decision_id", p.id), zap.Int64("requests", n), zap.Error(err))
		}
	}
}

// record hands a decided request's spend row to the recorder, once: what
// settle charged (the same rounding), on the model that answered or was
// tried last.
func (p *edge) record(c meter.Charge, st spend.Status) {
	if p.recorded || p.selection == nil || p.served == nil {
		return
	}
	p.recorded = true
	rec := p.state.Spend
	if rec == nil {
		return
	}
	at := p.routedAt
	if at.IsZero() {
		at = time.Now()
	}
	pr, m := &p.principal, p.served
	route, endUser, tag := "", "", ""
	if p.result != nil {
		ch := &p.result.Chat
		// The name (its versions are one route to FinOps), copied: it points
		// into the request's body, which a row waiting in the spend buffer
		// (16,384 of them while the store is down) would keep alive.
		route = strings.Clone(ch.Route)
		endUser, tag = spendLabels(ch, p.state.SpendTag)
	}
	rec.Record(spend.Row{Time: at, DecisionID: p.id, KeyID: pr.KeyID, User: pr.User, Team: pr.Team, Workspace: pr.Workspace,
		Route: route, Model: m.ID, Provider: m.Provider.Name, TokensIn: int64(c.Usage.PromptTokens), TokensOut: int64(c.Usage.CompletionTokens),
		TokensCached: int64(c.Usage.CachedTokens),
		Cost:         ledger.FromEUR(c.EUR), Estimated: c.Usage.Estimated, Status: st, EndUser: endUser, Tag: tag})
}

// spendLabels are a request's end user and tag for its spend row: the
// `user` it sent (the Messages API's metadata.user_id and the Responses
// API's user arrive as chat's), and the value of its metadata's tagKey
// member, each bounded by spend.Label. They are copied out of the body
// (one allocation for both, none without them): a row waits in the spend
// buffer, up to 16,384 of them while the store is down, and a slice of
// the body would hold the whole body, megabytes, with it.
func spendLabels(ch *request.Chat, tagKey string) (endUser, tag string) {
	if ch.UserRaw.Type == gjson.String { // not ch.User, which drops a user past 256 bytes
		endUser = spend.Label(ch.UserRaw.Str)
	}
	if tagKey != "" {
		tag = spend.Label(ch.Metadata[tagKey])
	}
	if endUser == "" && tag == "" {
		return "", ""
	}
	var b strings.Builder
	b.Grow(len(endUser) + len(tag))
	b.WriteString(endUser)
	b.WriteString(tag)
	both := b.String()
	return both[:len(endUser)], both[len(endUser):]
}
