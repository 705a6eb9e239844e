package extproc

import (
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// observe records what became of the request in the metrics and its
// span, when its stream ends (docs/observability.md): chat requests, and
// every request stellwerk refused at the edge; model listings are not
// counted. Every metric label is a bounded value: the workspace, catalog
// ids, provider names, error codes.
func (p *edge) observe() {
	m, tr := p.state.Metrics, p.state.Traces
	if (m == nil && tr == nil) || (!p.endpoint.routed() && p.status == 0) {
		return
	}
	r := p.outcomeFacts()
	if tr != nil {
		d := telemetry.Decision{ID: p.id, Attempts: max(len(p.attempts), 1), TraceParent: p.traceParent, TraceState: p.traceState,
			Arrived: p.arrived}
		if res := p.result; res != nil {
			d.PolicyVersion, d.Stream = res.PolicyVersion, res.Chat.Stream
		}
		if p.selection != nil {
			d.Reason = p.reason()
		}
		tr.Record(&r, &d)
	}
	if m == nil {
		return
	}
	m.Finish(&r)
	p.observeAttempts(m)
	if res := p.result; res != nil && res.PolicyVersion != "" { // classified, and the policy ran
		observeClass(m, &res.Class)
		for _, reason := range res.Policy.Deny {
			m.Denied(reason)
		}
		m.Excluded(res.Policy.Exclude)
	}
}

// outcomeFacts is what became of the request, for the metrics and its span.
func (p *edge) outcomeFacts() telemetry.Request {
	r := telemetry.Request{Workspace: p.workspace, Overhead: p.stages}
	switch p.endpoint {
	case epEmbeddings:
		r.Operation = "embeddings"
	case epCompletions:
		r.Operation = "text_completion"
	case epCountTokens:
		r.Operation = "count_tokens"
	}
	r.Status, r.ErrorCode = p.outcome()
	if !p.arrived.IsZero() {
		r.Duration = time.Since(p.arrived)
	}
	if res := p.result; res != nil && res.Workspace != "" {
		r.Workspace = res.Workspace
	}
	if p.bodyPhase {
		r.Overhead.Total = p.overhead
	}
	if s := p.served; s != nil && p.selection != nil && !p.routedAt.IsZero() { // it left for a provider
		r.Model, r.Provider, r.RequestModel = s.ID, s.Provider.Name, p.requestModel()
		r.Answered = p.respStatus != ""
		if p.stream != nil && !p.firstChunk.IsZero() && !p.arrived.IsZero() {
			r.TTFT = p.firstChunk.Sub(p.arrived)
		}
	}
	if p.charged {
		c := &p.charge
		r.Metered, r.InputTokens, r.OutputTokens = true, c.Usage.PromptTokens, c.Usage.CompletionTokens
		// In whole micro-euros, as the ledger and the budgets settle it:
		// the counter sums to what /admin/spend shows (unrounded, it was 5 %
		// off on a cheap model's requests, a helper's finding).
		r.CostEUR, r.BaselineEUR = ledger.FromEUR(c.EUR).EUR(), ledger.FromEUR(c.BaselineEUR).EUR()
		if c.Baseline == "" {
			// No saving claimed (an embedding: no chat baseline embeds; a
			// catalog without a baseline): the baseline is what it cost, so
			// baseline − cost counts none rather than a loss of the whole
			// cost (the observability probe's dashboard).
			r.BaselineEUR = r.CostEUR
		}
	}
	return r
}

// requestModel is what the client asked for as a label: auto, a catalog
// id, or other (a name the catalog does not know never becomes a label).
func (p *edge) requestModel() string {
	id := p.result.Chat.Model
	if id == decide.Auto {
		return id
	}
	if m, ok := p.state.Router.Catalog.Lookup(id); ok {
		return m.ID
	}
	return "other"
}

// outcomeAbandoned is an attempt the client left before its answer began,
// and reasonAbandoned the edge's reason for it.
const (
	outcomeAbandoned = "abandoned"
	reasonAbandoned  = "the client went away before the provider answered"
)

// attemptOutcome names the one attempt of a request without failover by
// the provider's status, as recordAttempt names a plan's: served, failed
// (an outage, a rate limit, a refused credential, a stream it broke off),
// rejected (a 4xx about the request), or abandoned: no status, the client
// went away before an answer began. That is no provider's failure: 300
// clients giving up on a slow provider read as 300 of its failures on the
// error-ratio alert (the capacity probe, 2026-12-07).
func attemptOutcome(code int, streamBroken bool) string {
	switch {
	case code == 0:
		return outcomeAbandoned
	case code == 429 || code >= 500 || credentialRefused(code) || streamBroken:
		return "failed"
	case code >= 400:
		return "rejected"
	}
	return "served"
}

// observeAttempts records the request's attempts on providers: the
// failover plan's as reported, or the one provider it went to.
func (p *edge) observeAttempts(m *telemetry.Metrics) {
	switch {
	case len(p.attempts) > 0:
		for i := range p.attempts {
			a := &p.attempts[i]
			m.Attempt(a.Provider, a.Model, a.Outcome)
		}
	case p.served != nil && p.selection != nil && !p.routedAt.IsZero():
		code, _ := strconv.Atoi(p.respStatus)
		m.Attempt(p.served.Provider.Name, p.served.ID, attemptOutcome(code, p.streamBroken != ""))
	}
}

// observeClass records what the classifiers found.
func observeClass(m *telemetry.Metrics, c *classify.Result) {
	for typ, n := range c.PIICounts {
		m.Found("pii", typ, n)
	}
	for i := range c.Secrets {
		m.Found("secret", c.Secrets[i].Type, 1)
	}
	if c.Scan == classify.ScanTruncated {
		m.Found("scan", c.ScanLimit, 1)
	}
	m.InjectionScore(c.Injection.Score)
}

// ObserveBudgets records how used the budgets of st are: those of one
// workspace, one team, or everyone (the config bounds them; a key's or
// user's budgets would be a series per key or user, and so would a team
// budget a key without a team meets as its own, subject key:<id>). A
// reservation reports those it met; serve reads them from the store every
// few seconds too.
func ObserveBudgets(m *telemetry.Metrics, st *ledger.State) {
	if m == nil {
		return
	}
	for i := range st.Budgets {
		b := &st.Budgets[i]
		switch b.Scope {
		case ledger.ScopeGlobal, ledger.ScopeWorkspace, ledger.ScopeTeam:
			if !strings.HasPrefix(b.Subject, ledger.KeySubject) {
				m.BudgetRatio(b.Name, b.Scope.String(), b.Subject, b.Spent)
			}
		}
	}
}
