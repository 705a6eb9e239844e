package telemetry

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request is what became of one request, as the edge knows it when its
// stream ends. Every string must be a bounded value: a configured
// workspace, a catalog model id, "auto", a provider name, an error code.
type Request struct {
	// Operation is the OTel gen_ai.operation.name: chat (also the
	// Responses API), embeddings, text_completion; "" is chat.
	Operation    string
	Workspace    string
	RequestModel string // what the client asked for: "auto", a catalog id or "other" ("" when not parsed)
	Model        string // the model that answered or was tried last ("" when none was)
	Provider     string
	Status       int    // what the client got; 0 when it went away before any answer
	ErrorCode    string // stellwerk's error code, "" when the provider's answer went through
	// Answered: a provider's answer reached the client (the request
	// duration and tokens are the provider's).
	Answered bool
	// Metered: usage and cost were settled (reported or estimated).
	Metered                   bool
	InputTokens, OutputTokens int
	CostEUR, BaselineEUR      float64
	// Duration is from the request's arrival to its stream's end; TTFT,
	// for a stream, to its first answer chunk (0: not a stream).
	Duration, TTFT time.Duration
	Overhead       Overhead
}

// operation is Operation, chat when unset. The value is one of a fixed
// set (a bounded label).
func (r *Request) operation() string {
	switch r.Operation {
	case "embeddings", "text_completion":
		return r.Operation
	}
	return "chat"
}

// Overhead is the router's own time on a request, by stage; a stage that
// did not run is 0.
type Overhead struct {
	Authenticate time.Duration // request headers: the key, header checks
	Decide       time.Duration // parse, classify, policy, select
	Reserve      time.Duration // budgets and rate limits
	Total        time.Duration // every request phase until the request was decided
	// The parts of Decide (decision.Timing): the body parsed and the caller
	// admitted; the classifier; the candidates, the policy input and the
	// policy; a named route's flow and selection.
	Parse, Classify, Policy, Select time.Duration
}

// seriesKey is one combination of the per-request labels.
type seriesKey struct {
	workspace, requestModel, model, provider, class, code string
	op                                                    string
}

// series holds the label children of one seriesKey, resolved once.
type series struct {
	requests            prometheus.Counter
	cost, baseline      prometheus.Counter
	tokensIn, tokensOut prometheus.Observer
	duration, ttft      prometheus.Observer
}

func (m *Metrics) newSeries(k seriesKey) (seriesKey, *series) {
	k = seriesKey{strings.Clone(k.workspace), strings.Clone(k.requestModel), strings.Clone(k.model), strings.Clone(k.provider),
		k.class, strings.Clone(k.code), k.op}
	s := &series{requests: m.requests.WithLabelValues(k.workspace, k.model, k.provider, k.class, k.code)}
	if k.model == "" {
		return k, s
	}
	s.cost = m.cost.WithLabelValues(k.workspace, k.model, k.provider)
	s.baseline = m.baseline.WithLabelValues(k.workspace, k.model, k.provider)
	g := []string{k.op, k.provider, k.requestModel, k.model}
	s.duration, s.ttft = m.duration.WithLabelValues(g...), m.ttft.WithLabelValues(g...)
	s.tokensIn = m.tokens.WithLabelValues(append(g, "input")...)
	s.tokensOut = m.tokens.WithLabelValues(append(g, "output")...)
	return k, s
}

// Finish records one request. It allocates nothing once its label
// combination was seen.
func (m *Metrics) Finish(r *Request) {
	if m == nil {
		return
	}
	k := seriesKey{r.Workspace, r.RequestModel, r.Model, r.Provider, statusClass(r.Status), r.ErrorCode, r.operation()}
	if k.model == "" {
		k.requestModel = "" // no gen_ai series: one combination fewer
	}
	s := m.series.get(k)
	s.requests.Inc()
	for i, d := range [...]time.Duration{r.Overhead.Authenticate, r.Overhead.Decide, r.Overhead.Reserve, r.Overhead.Total,
		r.Overhead.Parse, r.Overhead.Classify, r.Overhead.Policy, r.Overhead.Select} {
		if d > 0 {
			m.overhead[i].Observe(d.Seconds())
		}
	}
	if r.Model == "" {
		return
	}
	if r.Metered {
		s.cost.Add(max(r.CostEUR, 0))
		s.baseline.Add(max(r.BaselineEUR, 0))
		s.tokensIn.Observe(float64(r.InputTokens))
		if r.Operation != "embeddings" { // an embedding writes no tokens: a 0 per request skewed the output distribution
			s.tokensOut.Observe(float64(r.OutputTokens))
		}
	}
	if r.Answered {
		s.duration.Observe(r.Duration.Seconds())
		if r.TTFT > 0 {
			s.ttft.Observe(r.TTFT.Seconds())
		}
	}
}

var statusClasses = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// statusClass is "2xx" for 200; "none" when the client got no answer.
func statusClass(code int) string {
	if c := code / 100; code > 0 && c < len(statusClasses) {
		return statusClasses[c]
	}
	return "none"
}

type attemptKey struct{ provider, model, outcome string }

// Attempt records one attempt on a provider: outcome is served or failed.
func (m *Metrics) Attempt(provider, model, outcome string) {
	if m == nil {
		return
	}
	m.attemptC.get(attemptKey{provider, model, outcome}).Inc()
}

// Denied records a deny reason of the policy.
func (m *Metrics) Denied(reason string) {
	if m == nil {
		return
	}
	m.denialC.get(Rule(reason)).Inc()
}

// Excluded records the rules that excluded candidate models from one
// request, each once (exclude is the policy's model → reason).
func (m *Metrics) Excluded(exclude map[string]string) {
	if m == nil || len(exclude) == 0 {
		return
	}
	var buf [8]string
	seen := buf[:0]
	for _, reason := range exclude {
		rule := Rule(reason)
		if slices.Contains(seen, rule) {
			continue
		}
		if len(seen) < cap(buf) {
			seen = append(seen, rule)
		}
		m.exclusionC.get(rule).Inc()
	}
}

type findingKey struct{ detector, typ string }

// Found records n findings of one classifier: detector is pii, secret or
// scan (a cap that cut the scan short, typ naming it).
func (m *Metrics) Found(detector, typ string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.findingC.get(findingKey{detector, typ}).Add(float64(n))
}

// InjectionScore records the prompt-injection score of a chat request.
func (m *Metrics) InjectionScore(score float64) {
	if m == nil {
		return
	}
	m.injection.Observe(score)
}

type budgetKey struct{ name, scope, subject string }

// BudgetRatio records how much of a budget is used; scope and subject are
// the budget's (subject "" for a global one). Callers pass only budgets
// whose subjects the config bounds (global, workspace, team).
func (m *Metrics) BudgetRatio(name, scope, subject string, ratio float64) {
	if m == nil {
		return
	}
	m.budgetC.get(budgetKey{name, scope, subject}).Set(ratio)
}

// KeepBudgets removes the gauges of budgets not named in keep (a reload
// removed them from the config).
func (m *Metrics) KeepBudgets(keep map[string]bool) {
	if m == nil {
		return
	}
	c := &m.budgetC
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old == nil {
		return
	}
	n := make(map[budgetKey]prometheus.Gauge, len(*old))
	for k, g := range *old {
		if keep[k.name] {
			n[k] = g
		} else {
			m.budget.DeleteLabelValues(k.name, k.scope, k.subject)
		}
	}
	c.m.Store(&n)
}

type rejectionKey struct{ workspace, kind, scope string }

// PrecreateRejections makes, at 0, the limit-rejection series a config can
// produce: each workspace with each kind and scope pair (budget/team,
// requests/key, …). A series made at a workspace's first refusal hid that
// refusal from rate() and increase(), and from an alert on them (the
// dashboards probe).
func (m *Metrics) PrecreateRejections(workspaces []string, pairs [][2]string) {
	if m == nil {
		return
	}
	ks := make([]rejectionKey, 0, len(workspaces)*len(pairs))
	for _, ws := range workspaces {
		for _, p := range pairs {
			ks = append(ks, rejectionKey{ws, p[0], p[1]})
		}
	}
	// In one copy of the cache: one get each copied it whole each time, and
	// a thousand workspaces' start took 5.7 s here (the tenancy probe).
	m.rejectionC.addAll(ks)
}

// Rejected records a request a limit refused: kind is budget, requests or
// tokens; scope the limit's.
func (m *Metrics) Rejected(workspace, kind, scope string) {
	if m == nil {
		return
	}
	m.rejectionC.get(rejectionKey{workspace, kind, scope}).Inc()
}

// RefusedKeyStates are the states a store key is refused for, the values
// of stellwerk_refused_keys_total's state label.
var RefusedKeyStates = [...]string{"revoked", "rotated_out", "expired"}

// RefusedKey counts a request whose store key was refused for its state,
// one of RefusedKeyStates.
func (m *Metrics) RefusedKey(state string) {
	if m == nil {
		return
	}
	for i, st := range RefusedKeyStates {
		if st == state {
			m.refusedKeys[i].Inc()
		}
	}
}

// Rule is the rule a policy reason names: its text before the first colon
// ("residency: restricted data requires eu" → "residency"), when that is a
// short lowercase name; "other" for anything else, so that free text never
// becomes a label.
func Rule(reason string) string {
	for i := 0; i < len(reason) && i <= 32; i++ {
		switch c := reason[i]; {
		case c == ':':
			if i == 0 {
				return "other"
			}
			return reason[:i]
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-', c == ' ', c == '.':
		default:
			return "other"
		}
	}
	return "other"
}

// maxRules caps the rules (and classifier types) a counter keeps apart; a
// policy with more distinct reason prefixes counts the rest as other.
const maxRules = 64

// cache maps a label combination to its resolved children. Reads take no
// lock (the map is replaced whole, copy on write); label combinations are
// few and mostly seen in the first minutes.
type cache[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
	// make resolves a new combination, and returns the key to keep: its
	// strings cloned, since a request's may point into its body.
	make func(K) (K, V)
	// limit > 0 caps the combinations; past it, new ones count as other.
	limit int
	other K
}

func (c *cache[K, V]) get(k K) V {
	m := c.m.Load()
	if m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
		if c.limit > 0 && len(*m) >= c.limit {
			k = c.other
			if v, ok := (*m)[k]; ok {
				return v
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	n := make(map[K]V, 1+lenOf(old))
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		for k, v := range *old {
			n[k] = v
		}
	}
	k, v := c.make(k)
	n[k] = v
	c.m.Store(&n)
	return v
}

// addAll resolves every combination of ks not cached yet, copying the
// cache once (the limit is not applied: for combinations made at start).
func (c *cache[K, V]) addAll(ks []K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	n := make(map[K]V, len(ks)+lenOf(old))
	if old != nil {
		for k, v := range *old {
			n[k] = v
		}
	}
	for _, k := range ks {
		if _, ok := n[k]; !ok {
			k, v := c.make(k)
			n[k] = v
		}
	}
	c.m.Store(&n)
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
