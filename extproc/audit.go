package extproc

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/live"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
)

// auditUnavailable is the answer to a chat request while the audit log
// cannot take records and audit.on_store_down is refuse: nothing is sent
// to a provider that would not be on the record.
func auditUnavailable() *apierr.Error {
	return apierr.Unavailable("audit_unavailable",
		"the audit log cannot record requests right now (its store is unreachable); the request was not sent")
}

// auditRefuses reports whether a chat request must be refused because the
// audit log is down and the config says to refuse rather than spool.
func (st *State) auditRefuses() bool {
	return st.Audit != nil && st.AuditRefuse && !st.Audit.Healthy()
}

// audit hands the request's record to the audit log and to the console's
// live stream, once, when its stream ends: only chat requests that reached
// the body phase have one. Neither waits; the writer fingerprints the body
// off the request path. With nobody watching, the stream costs one atomic
// load.
func (p *edge) audit() {
	l, hub := p.state.Audit, p.state.Live
	watching := hub.Watching()
	if (l == nil && !watching) || !p.bodyPhase || p.audited {
		return
	}
	p.audited = true
	r := p.auditRecord()
	took := time.Since(p.arrived)
	r.TookMS = took.Milliseconds()
	if watching { // before the hand-over: the writer owns r after it
		hub.Publish(live.View(r, took))
	}
	if l != nil {
		l.Record(r)
	}
}

// auditRecord builds the decision record of what happened to the request
// (docs/audit.md, "The record").
func (p *edge) auditRecord() *audit.Record {
	pr := &p.principal
	r := &audit.Record{Kind: audit.KindDecision, ID: p.id, Time: p.arrived, Workspace: pr.Workspace,
		Principal: &audit.Principal{KeyID: pr.KeyID, Team: pr.Team, User: pr.User, Anonymous: !pr.Authenticated, Address: p.clientAddr,
			PreviousSecret: pr.PreviousSecret},
		Request:  &audit.Request{Body: p.reqBody, Path: p.path, Bytes: max(len(p.reqBody), int(p.contentLength))},
		Versions: p.state.Versions, OverheadUS: p.overhead.Microseconds()}
	if res := p.result; res != nil {
		if res.Workspace != "" {
			r.Workspace = res.Workspace
		}
		chat := &res.Chat
		r.Request.Model, r.Request.Stream, r.Request.MaxTokens = cmp.Or(chat.Alias, chat.Model), chat.Stream, chat.MaxTokens
		r.Versions.Policy, r.Versions.PolicySHA256 = res.PolicyVersion, res.PolicyDigest
		if rp := &res.ReqPolicy; rp.Set {
			r.RequestPolicy = &audit.RequestPolicy{Fingerprint: rp.Fingerprint, Policy: json.RawMessage(reqpolicy.Canonical(*rp))}
		}
		if res.PolicyVersion != "" { // the request was classified and the policy ran
			c := &res.Class
			r.Classification = &audit.Classification{Task: c.Task, TaskConfidence: round(c.TaskConfidence, 3), Complexity: c.Complexity,
				Language: c.Language, Sensitivity: c.Sensitivity, Risk: c.Risk, PII: c.PIICounts, Secrets: len(c.Secrets),
				Injection: round(c.Injection.Score, 3), InputTokens: c.InputTokens, Scan: c.Scan, ScanLimit: c.ScanLimit,
				Unread: c.Unread}
			r.Constraint, r.Objective, r.QualityFloor, r.Deny = res.Constraint, res.Policy.Objective, res.Policy.QualityFloor, res.Policy.Deny
			r.Budgets = res.Policy.Downgrade
		}
		if o := res.Route; o != nil {
			r.Route = &audit.Route{Name: o.Route, Version: o.Version, Path: o.Path, Arm: o.Arm, Served: o.ServedOrNone()}
			for _, l := range o.Limits {
				r.Route.Limits = append(r.Route.Limits, audit.RouteLimit{Node: l.Node, Kind: l.Kind.String(), Verdict: l.Verdict.String(),
					Fired: l.Fired, Ratio: l.Ratio})
			}
		}
		in := res.ReplayInputs(&decision.Request{Path: p.path, Headers: p.headers, Principal: p.principal, DecisionID: p.id})
		if res.Selection.Len() > 0 {
			r.Table = (*candidateTable)(&res.Selection)
			if in != nil {
				// The table's latency_ms column has every model's latency:
				// the replay inputs need not repeat the learned ones.
				in.InLatencyTable()
			}
		}
		if in != nil {
			r.Replay = in
		}
	}
	if d := p.selection; d != nil {
		r.Chosen = d.Model.ID
		r.Reason = d.Reason // the decision's; attempts and served show a failover
		if p.planNote != "" {
			r.Reason += "; " + p.planNote // what the limits changed in its plan
		}
		fbs := d.Fallbacks
		if p.plan != nil { // with failover, the plan is the order that was tried
			fbs = p.plan[1:]
		}
		if len(fbs) > 0 {
			r.Fallbacks = make([]string, len(fbs))
			for i, m := range fbs {
				r.Fallbacks[i] = m.ID
			}
		}
	}
	code := p.status // stellwerk's own answer (every attempt failed: 503), else the provider's
	if code == 0 {
		code, _ = strconv.Atoi(p.respStatus)
	}
	if m := p.served; m != nil && p.selection != nil && !p.routedAt.IsZero() && code < 400 {
		// It left for a provider, which answered it or was working on it
		// when the client went away (the prompt is charged to it); after
		// an error the attempts say who was tried.
		r.Served, r.Provider, r.ProviderRequestID = m.ID, m.Provider.Name, p.providerRequestID
	}
	switch {
	case len(p.attempts) > 0:
		r.Attempts = make([]audit.Attempt, len(p.attempts))
		for i := range p.attempts {
			a := &p.attempts[i]
			r.Attempts[i] = audit.Attempt{Model: a.Model, Provider: a.Provider, Status: a.Status, LatencyMS: a.LatencyMS, Outcome: a.Outcome, Reason: a.Reason}
		}
	case !p.routedAt.IsZero() && p.served != nil: // no failover: the one provider it went to
		a := audit.Attempt{Model: p.served.ID, Provider: p.served.Provider.Name, Status: code,
			Outcome: attemptOutcome(code, p.streamBroken != ""), Reason: p.streamBroken}
		if a.Outcome == outcomeAbandoned {
			a.Reason = reasonAbandoned
		}
		r.Attempts = []audit.Attempt{a}
	}
	if p.charged {
		c := &p.charge
		r.Usage = &audit.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens, CachedTokens: c.Usage.CachedTokens,
			CacheWriteTokens: c.Usage.CacheWriteTokens, CacheWrite1hTokens: c.Usage.CacheWrite1hTokens, WebSearches: c.Usage.WebSearches,
			Estimated: c.Usage.Estimated}
		r.Cost = &audit.Cost{EUR: audit.Money(c.EUR), Amount: audit.Money(c.Amount), Currency: c.Currency, Source: c.Source,
			BaselineModel: c.Baseline, BaselineEUR: audit.Money(c.BaselineEUR), SavingEUR: audit.Money(c.SavingEUR)}
		if p.selection != nil {
			r.Cost.EstimatedEUR = audit.Money(p.selection.EstimatedCostEUR)
		}
	}
	if p.keepContent {
		r.Content = p.content()
	}
	r.Status, r.ErrorCode = p.outcome()
	return r
}

// outcome is what the client got: stellwerk's own answer's status and
// error code, else the provider's status (a stream that did not complete
// names how it ended), else no status: the client went away first.
func (p *edge) outcome() (status int, code string) {
	if p.status != 0 {
		return p.status, p.errCode
	}
	if status, _ = strconv.Atoi(p.respStatus); status != 0 {
		if p.stream != nil && p.stream.finished && p.streamEnd != "" && p.streamEnd != "complete" {
			code = streamEndCode(p.streamEnd)
		}
		if p.addRouting && p.ending {
			// A JSON answer whose body never came whole (the provider broke
			// off after its headers, or the client left): the client got
			// no answer, and the record must not read as one (the chaos
			// probe found a 2xx without a code).
			code = "answer_incomplete"
		}
		return status, code
	}
	return 0, "client_closed"
}

// streamEndCode names a stream's end without building the string.
func streamEndCode(end string) string {
	switch end {
	case "incomplete":
		return "stream_incomplete"
	case "interrupted":
		return "stream_interrupted"
	}
	return "stream_" + end
}

// content is the request's messages and the answer's text for a workspace
// that opted in, every secret and item of personal data replaced by a
// typed placeholder before the record leaves the edge.
func (p *edge) content() *audit.Content {
	c := &audit.Content{Redacted: map[string]int{}}
	if res := p.result; res != nil {
		res.Chat.MessageList.ForEach(func(_, m gjson.Result) bool {
			text := m.Get("content")
			if text.IsArray() {
				var b strings.Builder
				text.ForEach(func(_, part gjson.Result) bool {
					if t := part.Get("text"); t.Type == gjson.String {
						if b.Len() > 0 {
							b.WriteByte('\n')
						}
						b.WriteString(t.Str)
					}
					return true
				})
				c.Messages = append(c.Messages, audit.ContentMessage{Role: m.Get("role").String(), Text: classify.Redact(b.String(), c.Redacted)})
				return true
			}
			c.Messages = append(c.Messages, audit.ContentMessage{Role: m.Get("role").String(), Text: classify.Redact(text.String(), c.Redacted)})
			return true
		})
		// An embeddings input or completions prompt: each string as the
		// user's (token ids are not text and are left out).
		in := res.Chat.Input
		if !in.IsArray() {
			in = gjson.Parse("[" + in.Raw + "]") // a string alone ("" when absent: no member)
		}
		in.ForEach(func(_, v gjson.Result) bool {
			if v.Type == gjson.String {
				c.Messages = append(c.Messages, audit.ContentMessage{Role: "user", Text: classify.Redact(v.Str, c.Redacted)})
			}
			return true
		})
	}
	answer := p.answer
	if st := p.stream; st != nil && st.answer != nil {
		answer = st.answer.String()
	}
	c.Answer = classify.Redact(answer, c.Redacted)
	if len(c.Redacted) == 0 {
		c.Redacted = nil
	}
	return c
}

// candidateTable is a decision's verdicts as its audit record's candidate
// table: the writer copies each line and formats each reason into the
// record's bytes, so the request path does neither. Nothing changes the
// decision after the record is handed over (a result is never reused).
type candidateTable decide.Selection

func (t *candidateTable) Len() int { return (*decide.Selection)(t).Len() }

func (t *candidateTable) Candidate(i int) audit.Candidate {
	v := (*decide.Selection)(t).Line(i)
	return audit.Candidate{Model: v.ID, Provider: v.Provider, Verdict: v.Verdict, Rank: v.Rank, Score: v.Score,
		EstimatedCostEUR: v.EstimatedCostEUR, Quality: v.Quality, LatencyMS: v.LatencyMS, Residency: v.Residency}
}

func (t *candidateTable) AppendReason(dst []byte, i int) []byte {
	return (*decide.Selection)(t).AppendReason(dst, i)
}

// Detached is the table outside the decision it is part of, which holds
// the parsed request and so its body (audit.Record.Detach).
func (t *candidateTable) Detached() audit.CandidateTable {
	c := *t
	return &c
}
