// Package health remembers which providers, models and credentials failed
// recently, so selection can skip what is in cooldown instead of sending it
// traffic it would refuse.
//
// Two kinds of trouble cool down different scopes (docs/failover.md):
//
//   - an outage (5xx, connection failure, no answer in time) is the
//     provider's as a whole: it cools every model of the provider, for every
//     credential;
//   - a rate limit (429) is one credential's, and for providers that limit
//     per model (OpenAI, Anthropic) one model's: it cools that model (or
//     the provider, when its catalog entry says it limits as a whole) for
//     that credential only. A workspace that brought its own key hits its
//     own limits, so its 429s never cool the shared key, nor the shared
//     key's theirs;
//   - a refused credential (401, 403) is that credential's: it cools every
//     model of the provider for that credential only, until the
//     credential changes (SetCredentials), when the cooldown ends at once.
//
// A scope enters a cooldown when the provider says so (Retry-After) or after
// a run of consecutive failures; a success ends the run, and a client's 4xx
// is neither (callers do not report it). When a cooldown ends, traffic comes
// back gradually: during Policy.Reopen a growing share of requests is let
// through (half-open), and a failure meanwhile starts the cooldown again at
// once. A success ends a cooldown of stellwerk's own counting (not one the
// provider asked for with Retry-After), and a request nothing else may
// serve may probe a cooling scope once a second (Probe): a self-hosted
// server that was overloaded or loading is back with its first answer.
//
// The state is this replica's own: each stellwerk replica learns from the
// attempts it handles. Reads are lock-free: selection asks about every
// model of every request.
package health

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Policy is when a scope cools down and how traffic comes back.
type Policy struct {
	FailuresBeforeCooldown int
	Cooldown               time.Duration
	MaxCooldown            time.Duration // caps Retry-After
	// Reopen is how long after a cooldown traffic takes to come back in
	// full (0: at once).
	Reopen time.Duration
	// Providers override the policy for some providers, by name.
	Providers map[string]Override
}

// Override is one provider's cooldown settings; a field left 0 keeps the
// policy's.
type Override struct {
	FailuresBeforeCooldown int
	Cooldown, Reopen       time.Duration
}

// of is the policy for one provider.
func (p Policy) of(provider string) Policy {
	o, ok := p.Providers[provider]
	if !ok {
		return p
	}
	if o.FailuresBeforeCooldown > 0 {
		p.FailuresBeforeCooldown = o.FailuresBeforeCooldown
	}
	if o.Cooldown > 0 {
		p.Cooldown = o.Cooldown
	}
	if o.Reopen > 0 {
		p.Reopen = o.Reopen
	}
	return p
}

// MinShare is the share of requests a scope gets as its cooldown ends; it
// grows linearly to all of them over Policy.Reopen.
const MinShare = 0.1

// DrawRange bounds the draw a request brings to Admits: a request is let
// through a reopening scope when draw < share·DrawRange.
const DrawRange = 1 << 16

// Target is what one attempt used: a model of a provider, through a
// credential.
type Target struct {
	Provider string
	Model    string
	// Workspace is the workspace whose own key the attempt used; "" for the
	// shared key.
	Workspace string
	// PerModel: the provider keeps its rate limits per model, so a 429
	// cools the model alone.
	PerModel bool
}

// Tracker is safe for concurrent use. A nil Tracker never cools down.
type Tracker struct {
	mu     sync.Mutex // writers
	policy Policy     // under mu
	provs  atomic.Pointer[map[string]*provider]
	now    func() time.Time
	// latest is when the last cooldown or reopening ends (unix ns): while
	// nothing cools down or reopens, a question needs no map lookup.
	latest atomic.Int64
	// publish is told of each cooldown this tracker starts (Share); under mu.
	publish func(Cooldown)
}

// provider is one provider's state. It is never removed from the map, and
// its limits slice is replaced, never modified, so readers need no lock.
type provider struct {
	outage window
	limits atomic.Pointer[[]*limit]
	// creds are the fingerprints of its credentials in force, by
	// workspace ("" the shared key); under Tracker.mu.
	creds map[string]string
}

// limit is one rate-limit scope: a model ("" every model) through a
// credential (workspace "" the shared key). A credential scope (cred set)
// is a refused credential's, every model; cred is the credential's
// fingerprint ("-" for none), so another credential is not held by it.
type limit struct {
	model, workspace string
	cred             string
	w                window
}

// window is a scope's cooldown and the reopening after it.
type window struct {
	until   atomic.Int64 // cooldown end, unix ns; 0 none
	reopen  atomic.Int64 // end of the reopening after it, unix ns
	reasonP atomic.Pointer[string]

	// failures are consecutive; changed under Tracker.mu, read without
	// it by Succeeded, which then has nothing to end (most answers).
	failures atomic.Int32
	// probed is when the last probe went to the scope during its cooldown
	// (unix ns; Probe): one per ProbeInterval.
	probed atomic.Int64
	// asked: the cooldown is the provider's Retry-After, which is
	// honoured to its end (no probe; a success does not end it).
	asked atomic.Bool
}

// ProbeInterval is how often a cooling scope takes a probe: a request
// that nothing else may serve (Probe).
const ProbeInterval = time.Second

// New returns a tracker with policy p.
func New(p Policy) *Tracker {
	t := &Tracker{policy: p, now: time.Now}
	m := map[string]*provider{}
	t.provs.Store(&m)
	return t
}

// SetPolicy changes the policy (on reload); cooldowns in force stay.
func (t *Tracker) SetPolicy(p Policy) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.policy = p
	t.mu.Unlock()
}

// MaxCooldown is the longest a cooldown lasts (the policy's cap on a
// provider's Retry-After); 0 for a nil tracker or no cap.
func (t *Tracker) MaxCooldown() time.Duration {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.policy.MaxCooldown
}

// Quiet reports whether nothing cools down or reopens at now: every
// target is admitted, and a caller asking about many can skip them all.
func (t *Tracker) Quiet(now time.Time) bool {
	return t == nil || now.UnixNano() >= t.latest.Load()
}

// Admits reports whether a request may be sent to a target at now. draw
// (0 ≤ draw < DrawRange) is the request's own, fixed per request: while a
// scope reopens, the requests with the lowest draws get through, a share
// growing from MinShare to all. Lock-free, no allocation.
func (t *Tracker) Admits(tg Target, now time.Time, draw uint32) bool {
	blocked, _ := t.Blocked(tg, now, draw)
	return !blocked
}

// Blocked is Admits' answer with its reason: outage when the provider's
// outage (or its reopening) holds the request back, not a rate limit.
func (t *Tracker) Blocked(tg Target, now time.Time, draw uint32) (blocked, outage bool) {
	if t == nil {
		return false, false
	}
	n := now.UnixNano()
	p := t.holder(tg, n)
	if p == nil {
		return false, false
	}
	if !p.outage.admits(n, draw) {
		return true, true
	}
	if ls := p.limits.Load(); ls != nil {
		for _, l := range *ls {
			if l.applies(tg) && !l.w.admits(n, draw) {
				return true, false
			}
		}
	}
	return false, false
}

// holder is tg's provider when something may hold tg back at n (unix ns):
// nil when nothing cools down or reopens, or the provider never failed.
func (t *Tracker) holder(tg Target, n int64) *provider {
	if t == nil || n >= t.latest.Load() {
		return nil
	}
	if pm := t.provs.Load(); pm != nil {
		return (*pm)[tg.Provider]
	}
	return nil
}

// applies reports whether a rate-limit scope holds a target: its
// credential's, for its model or every model.
func (l *limit) applies(tg Target) bool {
	return l.workspace == tg.Workspace && (l.model == "" || l.model == tg.Model)
}

// Reopens is when a target Blocked at now starts to take requests again:
// the end of the cooldowns that hold it back, or now itself while it is
// reopening (a share of requests gets through); zero when none holds it.
func (t *Tracker) Reopens(tg Target, now time.Time) time.Time {
	n := now.UnixNano()
	p := t.holder(tg, n)
	if p == nil {
		return time.Time{}
	}
	var at int64
	hold := func(w *window) {
		if u := w.until.Load(); u != 0 && n < max(u, w.reopen.Load()) {
			at = max(at, u, n)
		}
	}
	hold(&p.outage)
	if ls := p.limits.Load(); ls != nil {
		for _, l := range *ls {
			if l.applies(tg) {
				hold(&l.w)
			}
		}
	}
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at)
}

func (w *window) admits(now int64, draw uint32) bool {
	until := w.until.Load()
	if until == 0 {
		return true
	}
	if now < until {
		return false
	}
	end := w.reopen.Load()
	if now >= end || end <= until {
		return true
	}
	share := MinShare + (1-MinShare)*float64(now-until)/float64(end-until)
	return float64(draw) < share*DrawRange
}

// Probe reports whether a request that no other model may serve may be
// sent to a target Blocked at now, as a probe: a scope in its cooldown
// takes one per ProbeInterval (the first caller within it gets it), a
// reopening scope every such request (its share only moves traffic to
// other models, and there are none). A probe that succeeds ends the
// cooldown (Succeeded): a self-hosted box that was overloaded or loading
// a model is back as soon as it answers, not a cooldown and a reopening
// later. Lock-free. busy: refused because another request probes it (the
// next may within ProbeInterval), not because the provider asked to wait.
func (t *Tracker) Probe(tg Target, now time.Time) (ok, busy bool) {
	n := now.UnixNano()
	p := t.holder(tg, n)
	if p == nil {
		return true, false
	}
	var held [8]*window // the cooling windows; a probe takes each one's turn
	k := 0
	hold := func(w *window) {
		if u := w.until.Load(); n < u && k < len(held) {
			if w.asked.Load() {
				k = len(held) + 1 // the provider asked to wait: no probe
				return
			}
			held[k] = w
			k++
		}
	}
	hold(&p.outage)
	if ls := p.limits.Load(); ls != nil {
		for _, l := range *ls {
			if l.applies(tg) {
				hold(&l.w)
			}
		}
	}
	if k > len(held) {
		return false, false
	}
	for _, w := range held[:k] {
		last := w.probed.Load()
		if n-last < int64(ProbeInterval) || !w.probed.CompareAndSwap(last, n) {
			return false, true
		}
	}
	return true, false
}

// Succeeded records an answer that was not a failure (a 2xx): it ends the
// provider's run of failures and the target's run of rate limits, and a
// cooldown of either in force (a probe's answer, or an attempt sent before
// it began): the scope reopens from now, over Policy.Reopen.
func (t *Tracker) Succeeded(tg Target) {
	if t == nil {
		return
	}
	pm := t.provs.Load()
	if pm == nil {
		return
	}
	p := (*pm)[tg.Provider]
	if p == nil {
		return
	}
	var n int64 // now, read only while something cools down
	if t.latest.Load() != 0 {
		n = t.now().UnixNano()
	}
	ls := p.limits.Load()
	running := p.outage.ends(n)
	if ls != nil {
		for _, l := range *ls {
			running = running || (l.applies(tg) && l.w.ends(n))
		}
	}
	if !running {
		return // no run of failures to end: no lock on the answer's path
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n = t.now().UnixNano()
	reopen := t.policy.of(tg.Provider).Reopen
	t.succeededLocked(&p.outage, n, reopen)
	if ls := p.limits.Load(); ls != nil {
		for _, l := range *ls {
			if l.applies(tg) {
				t.succeededLocked(&l.w, n, reopen)
			}
		}
	}
}

// ends reports whether a success at n (0: nothing cools anywhere) has
// something of w's to end: a run of failures, or a cooldown of its own
// counting.
func (w *window) ends(n int64) bool {
	return w.failures.Load() != 0 || (n != 0 && n < w.until.Load() && !w.asked.Load())
}

// succeededLocked ends a window's run of failures and its cooldown, if one
// is in force at n: it reopens from n.
func (t *Tracker) succeededLocked(w *window, n int64, reopen time.Duration) {
	w.failures.Store(0)
	if n >= w.until.Load() || w.asked.Load() {
		return
	}
	end := n + int64(reopen)
	w.reopen.Store(end)
	w.until.Store(n)
	if end > t.latest.Load() {
		t.latest.Store(end)
	}
}

// Failed records an outage of the target's provider (a 5xx, a connection
// failure, no answer in time): it counts for the provider as a whole.
// retryAfter > 0 is the provider's own request to wait, honoured up to
// MaxCooldown. It reports whether the provider now cools down.
func (t *Tracker) Failed(tg Target, reason string, retryAfter time.Duration) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	p := t.providerLocked(tg.Provider)
	cooling, started := t.failLocked(tg.Provider, &p.outage, reason, retryAfter)
	t.share(started, Cooldown{Provider: tg.Provider}, &p.outage)
	return cooling
}

// RateLimited records a 429 on the target: it counts for the target's
// credential and, when the provider limits per model, its model alone.
// It reports whether that scope now cools down.
func (t *Tracker) RateLimited(tg Target, reason string, retryAfter time.Duration) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	p := t.providerLocked(tg.Provider)
	model := ""
	if tg.PerModel {
		model = tg.Model
	}
	l := t.limitLocked(p, model, tg.Workspace, "")
	cooling, started := t.failLocked(tg.Provider, &l.w, reason, retryAfter)
	t.share(started, Cooldown{Provider: tg.Provider, RateLimit: true, Model: model, Workspace: tg.Workspace}, &l.w)
	return cooling
}

// noCredential is the fingerprint of a credential that is not configured.
const noCredential = "-"

// CredentialRefused records a 401 or 403 on the target: the provider
// refused the credential it was sent with (the shared key, or the target's
// workspace's own). It counts for that credential, every model of the
// provider, and reports whether the credential now cools down. The
// cooldown lasts until it ends or the credential changes (SetCredentials).
func (t *Tracker) CredentialRefused(tg Target, reason string) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	p := t.providerLocked(tg.Provider)
	cred := p.creds[tg.Workspace]
	if cred == "" {
		cred = noCredential
	}
	l := t.limitLocked(p, "", tg.Workspace, cred)
	cooling, started := t.failLocked(tg.Provider, &l.w, reason, 0)
	t.share(started, Cooldown{Provider: tg.Provider, RateLimit: true, Workspace: tg.Workspace, Credential: cred}, &l.w)
	return cooling
}

// Credential names one provider credential: the shared key (Workspace "")
// or a workspace's own.
type Credential struct {
	Provider, Workspace string
}

// SetCredentials tells the tracker the credentials in force, each by a
// fingerprint that changes when the credential does (never the secret
// itself: it is shared with the other replicas). A refused credential's
// cooldown, and its run of refusals, end when its credential changes:
// the operator's fix is back in routing at once rather than after the
// cooldown and reopening. It returns the credentials whose cooldown or
// run of refusals ended, for the log.
func (t *Tracker) SetCredentials(fps map[Credential]string) []Credential {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range fps {
		t.providerLocked(c.Provider)
	}
	var cleared []Credential
	for name, p := range *t.provs.Load() {
		creds := map[string]string{}
		for c, fp := range fps {
			if c.Provider == name && fp != "" {
				creds[c.Workspace] = fp
			}
		}
		p.creds = creds
		old := p.limits.Load()
		if old == nil {
			continue
		}
		ls := slices.DeleteFunc(slices.Clone(*old), func(l *limit) bool {
			if l.cred == "" {
				return false
			}
			fp := creds[l.workspace]
			if fp == "" {
				fp = noCredential
			}
			if l.cred == fp {
				return false
			}
			if l.w.failures.Load() != 0 || l.w.until.Load() != 0 {
				cleared = append(cleared, Credential{Provider: name, Workspace: l.workspace})
			}
			return true
		})
		if len(ls) != len(*old) {
			p.limits.Store(&ls)
		}
	}
	slices.SortFunc(cleared, func(a, b Credential) int {
		if a.Provider != b.Provider {
			return strings.Compare(a.Provider, b.Provider)
		}
		return strings.Compare(a.Workspace, b.Workspace)
	})
	return cleared
}

// share unlocks mu and, when this tracker just started a cooldown of w,
// tells its publisher.
func (t *Tracker) share(started bool, c Cooldown, w *window) {
	f := t.publish
	if started && f != nil {
		c.Until, c.ReopenedBy, c.Reason, c.Asked = time.Unix(0, w.until.Load()), time.Unix(0, w.reopen.Load()), w.reason(), w.asked.Load()
	}
	t.mu.Unlock()
	if started && f != nil {
		f(c)
	}
}

// limitLocked returns a provider's rate-limit scope, adding it (copy on
// write).
func (t *Tracker) limitLocked(p *provider, model, workspace, cred string) *limit {
	old := p.limits.Load()
	if old != nil {
		for _, x := range *old {
			if x.model == model && x.workspace == workspace && x.cred == cred {
				return x
			}
		}
	}
	l := &limit{model: model, workspace: workspace, cred: cred}
	now := t.now().UnixNano()
	var ls []*limit
	if old != nil {
		// Scopes that are over and forgotten go as a new one comes.
		ls = slices.DeleteFunc(slices.Clone(*old), func(x *limit) bool {
			return x.w.failures.Load() == 0 && x.w.reopen.Load() <= now && x.w.until.Load() <= now
		})
	}
	ls = append(ls, l)
	p.limits.Store(&ls)
	return l
}

// providerLocked returns a provider's state, adding it (copy on write).
// Forget drops the providers keep does not name (a reload removed them):
// their cooldowns and runs of failures, and so their metric series.
func (t *Tracker) Forget(keep func(provider string) bool) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.provs.Load()
	m := make(map[string]*provider, len(old))
	for k, v := range old {
		if keep(k) {
			m[k] = v
		}
	}
	if len(m) != len(old) {
		t.provs.Store(&m)
	}
}

func (t *Tracker) providerLocked(name string) *provider {
	old := *t.provs.Load()
	if p := old[name]; p != nil {
		return p
	}
	m := make(map[string]*provider, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	p := &provider{}
	m[name] = p
	t.provs.Store(&m)
	return p
}

// failLocked counts a failure in a window and starts its cooldown when
// due: at once with a Retry-After, or while it reopens; after
// FailuresBeforeCooldown in a row otherwise. It reports whether the window
// cools down, and whether this failure started (or lengthened) it.
func (t *Tracker) failLocked(provider string, w *window, reason string, retryAfter time.Duration) (cooling, started bool) {
	pol := t.policy.of(provider)
	w.failures.Add(1)
	now := t.now()
	n := now.UnixNano()
	reopening := w.until.Load() != 0 && n >= w.until.Load() && n < w.reopen.Load()
	var d time.Duration
	switch {
	case retryAfter > 0:
		d = min(retryAfter, pol.MaxCooldown)
		reason += ", Retry-After " + retryAfter.String()
	case pol.FailuresBeforeCooldown > 0 && int(w.failures.Load()) >= pol.FailuresBeforeCooldown:
		d = pol.Cooldown
	case reopening:
		d = pol.Cooldown // the provider is not back yet
		reason += ", again while reopening"
	}
	if d > 0 && n+int64(d) > w.until.Load() {
		started = true
		until := n + int64(d)
		end := until + int64(pol.Reopen)
		w.reasonP.Store(&reason)
		w.asked.Store(retryAfter > 0)
		// reopen first: a reader that sees the new until sees its end too.
		w.reopen.Store(end)
		w.until.Store(until)
		if end > t.latest.Load() {
			t.latest.Store(end) // under mu: no lost update
		}
	}
	return w.until.Load() > n, started
}

// Cooling reports whether a provider is in an outage cooldown now, until
// when and why (rate-limit scopes: Snapshot).
func (t *Tracker) Cooling(name string) (until time.Time, reason string, ok bool) {
	if t == nil {
		return time.Time{}, "", false
	}
	n := t.now().UnixNano()
	if n >= t.latest.Load() {
		return time.Time{}, "", false
	}
	p := (*t.provs.Load())[name]
	if p == nil {
		return time.Time{}, "", false
	}
	u := p.outage.until.Load()
	if u <= n {
		return time.Time{}, "", false
	}
	return time.Unix(0, u), p.outage.reason(), true
}

func (w *window) reason() string {
	if r := w.reasonP.Load(); r != nil {
		return *r
	}
	return ""
}

// Scopes of a Status.
const (
	ScopeProvider   = "provider"   // an outage: every model, every credential
	ScopeRateLimit  = "rate_limit" // one credential's rate limit (a model's, or every model's)
	ScopeCredential = "credential" // a credential the provider refused (401, 403): every model
)

// Status is one scope's state, for the admin API and metrics.
type Status struct {
	Provider string `json:"provider"`
	Scope    string `json:"scope"`
	// Model is the rate-limited model ("" every model of the provider).
	Model string `json:"model,omitempty"`
	// Workspace is set when the credential is the workspace's own key.
	Workspace           string    `json:"workspace,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	CoolingUntil        time.Time `json:"cooling_until,omitzero"`
	// ReopenedBy is when traffic is back in full after the cooldown.
	ReopenedBy time.Time `json:"reopened_by,omitzero"`
	Reason     string    `json:"reason,omitempty"`
}

// Snapshot lists scopes with failures, a cooldown or a reopening, outages
// first, then refused credentials, then rate limits, each by provider.
func (t *Tracker) Snapshot() []Status {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.now().UnixNano()
	var out []Status
	add := func(s Status, w *window) {
		s.ConsecutiveFailures = int(w.failures.Load())
		if u := w.until.Load(); u > n {
			s.CoolingUntil, s.Reason = time.Unix(0, u), w.reason()
		}
		if e := w.reopen.Load(); e > n && e > w.until.Load() {
			s.ReopenedBy = time.Unix(0, e)
			if s.Reason == "" {
				s.Reason = w.reason()
			}
		}
		if s.ConsecutiveFailures > 0 || !s.CoolingUntil.IsZero() || !s.ReopenedBy.IsZero() {
			out = append(out, s)
		}
	}
	for name, p := range *t.provs.Load() {
		add(Status{Provider: name, Scope: ScopeProvider}, &p.outage)
		if ls := p.limits.Load(); ls != nil {
			for _, l := range *ls {
				scope := ScopeRateLimit
				if l.cred != "" {
					scope = ScopeCredential
				}
				add(Status{Provider: name, Scope: scope, Model: l.model, Workspace: l.workspace}, &l.w)
			}
		}
	}
	slices.SortFunc(out, func(a, b Status) int {
		if a.Scope != b.Scope {
			rank := func(scope string) int {
				return slices.Index([]string{ScopeProvider, ScopeCredential, ScopeRateLimit}, scope)
			}
			return rank(a.Scope) - rank(b.Scope)
		}
		for _, c := range [][2]string{{a.Provider, b.Provider}, {a.Workspace, b.Workspace}, {a.Model, b.Model}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return out
}
