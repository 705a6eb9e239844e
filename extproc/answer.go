// The provider's answer: the status and headers the caller is told about,
// and the JSON body the routing object goes into.

package extproc

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3conf "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// responseHeaders tells the caller what stellwerk decided, and asks Envoy
// for the body of a successful, unencoded JSON answer so the routing object
// can go into it. Streams (SSE) are never buffered.
func (p *edge) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	rh := readResponseHeaders(h)
	// x-request-id: the provider's own when it sends one (its support
	// knows it), the decision's otherwise; the SDKs show it as the
	// request's id, and none came back (the SDK probe). Envoy's ext_proc
	// applies ADD_IF_ABSENT as an overwrite, so the provider's was
	// replaced (the agentic-clients probe): the edge looks itself.
	hs := make([]*corev3.HeaderValueOption, 1, 3)
	hs[0] = setHeader(header.DecisionID, p.id)
	if !rh.requestID {
		hs = append(hs, setHeader(header.RequestID, p.id))
	}
	if p.anthropicErrors && !rh.anthropicRequestID {
		// The anthropic SDKs read request-id (Anthropic's own header):
		// their _request_id and APIStatusError.request_id were None (the
		// agent probe). An Anthropic-wire provider's own passes on.
		hs = append(hs, setHeader(header.AnthropicRequestID, p.id))
	}
	d := p.selection
	if d == nil {
		return continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs})
	}
	status, ctype, encoding := rh.status, rh.ctype, rh.encoding
	if rh.relabeled {
		hs = append(hs, setHeader("content-type", "application/json"))
	}
	code, _ := strconv.Atoi(status)
	remove := []string{header.Served, header.Overflow, header.UpstreamFlags, header.FirstModel, "x-envoy-attempt-count"}
	ours := len(remove)
	remove = p.providerHeaders(h, remove)
	p.providerRequestID = rh.providerID
	for i := len(remove) - 1; i >= ours; i-- {
		// A provider's request id that holds its credential goes; the
		// decision's stands in (none came back: the red team).
		if k := strings.ToLower(remove[i]); k == header.RequestID || k == header.AnthropicRequestID {
			p.providerRequestID = "" // nor is it recorded
			if k == header.RequestID || p.anthropicErrors {
				hs = append(hs, setHeader(k, p.id))
				remove = slices.Delete(remove, i, i+1)
			}
		}
	}
	if rh.retryAfter != "" && code >= 400 {
		// The provider's Retry-After as stellwerk's cooldown reads it:
		// whole seconds, at most failover.max_cooldown; one that does not
		// parse is dropped (a helper's finding: "abc", "-5" and 999999
		// reached the client as sent).
		d := retryAfter(rh.retryAfter, time.Now())
		if c := p.state.Router.Health.MaxCooldown(); c > 0 {
			d = min(d, c)
		}
		if d > 0 {
			hs = append(hs, setHeader("retry-after", strconv.Itoa(int((d+time.Second-1)/time.Second))))
		} else {
			remove = append(remove, "retry-after")
		}
	} else if rh.retryAfter != "" {
		// On an answer it means nothing; on a 2xx a client's backoff could
		// read 999999999 from it (the hostile-upstream probe).
		remove = append(remove, "retry-after")
	}
	if rh.shouldRetry && !sdkRetries(code) {
		// The OpenAI SDKs obey x-should-retry over the status: a
		// provider's "true" on its 400 had the SDK send the request twice
		// more, each routed, held against the budget and logged (the
		// hostile-upstream probe). Where the SDKs retry anyway, its
		// "false" may stop them; stellwerk sets its own on its errors.
		remove = append(remove, "x-should-retry")
	}
	if p.plan != nil {
		// The first attempt, which the edge rewrote, has no filter on its
		// way: the edge records its answer here, and its error too when it
		// went straight to its provider (otherwise Envoy's upstream log
		// reports the failures, upstreamlog.go).
		first := p.rewrote && rh.served == "" && rh.attemptCount <= 1
		if first && (p.direct || !retryable(code)) {
			recordAttempt(&p.filter, 0, p.plan[0], p.workspace, attemptResult{status: code, flags: rh.flags, retryAfter: rh.retryAfter,
				stream: strings.HasPrefix(ctype, "text/event-stream"), elapsed: time.Since(p.routedAt)})
		}
		servedIdx := -1 // the plan index that answered, if the answer is not a failure
		if i, err := strconv.Atoi(rh.served); err == nil && i >= 0 && i < len(p.plan) && !retryable(code) {
			servedIdx = i
			p.served = p.plan[i]
		} else if first && !retryable(code) {
			servedIdx = 0
		}
		p.attempts = attemptsFor(p.plan, rh.attemptCount, servedIdx, code, p.takeAttempts(rh.attemptCount))
		if retryable(code) && len(p.attempts) > 0 {
			last := &p.attempts[len(p.attempts)-1]
			if last.Status == 0 && rh.flags != "" {
				last.Reason = failureReason(code, rh.flags)
			}
			p.served = p.plan[len(p.attempts)-1]
			wait := 0
			if rh.retryAfter == "" {
				wait = p.cooledFor()
			}
			if h.EndOfStream {
				e := p.allAttemptsFailed(nil)
				if e.RetryAfter == 0 {
					e.RetryAfter = wait
				}
				return p.immediate(e)
			}
			if wait > 0 {
				hs = append(hs, setHeader("retry-after", strconv.Itoa(wait)))
			}
			// Read the last provider's error (the egress filter made it
			// OpenAI-shaped) to quote it in stellwerk's answer.
			p.failed = true
			hs = append(hs, setHeader(":status", strconv.Itoa(p.failedStatus())), setHeader("content-type", "application/json"),
				setHeader(header.Attempts, strconv.Itoa(len(p.attempts))), setHeader(header.PolicyVersion, p.result.PolicyVersion))
			hs = p.routeHeaders(hs)
			// The model named is the last the request was sent to; an
			// attempt stellwerk did not send (no credential) names none.
			for i := len(p.attempts) - 1; i >= 0; i-- {
				if p.attempts[i].Outcome != "not_sent" {
					m := p.plan[i]
					hs = append(hs, setHeader(header.Model, m.ID), setHeader(header.Provider, m.Provider.Name))
					break
				}
			}
			if p.attemptsFinal() {
				hs = append(hs, setHeader("x-should-retry", "false"))
			}
			resp := continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs, RemoveHeaders: append(remove, "content-encoding")})
			resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
			return resp
		}
	}
	m := p.served
	if code >= 300 && code < 400 {
		// No API stellwerk serves redirects, and its Location was
		// removed: the SDKs raised APIStatusError 302 with an empty body
		// (the hostile-upstream probe). A provider behind a login page,
		// or moved.
		return p.immediate(p.badAnswer("answered with a redirect (" + status + ")"))
	}
	if p.plan == nil && credentialRefused(code) {
		// Without failover: the provider's answer is not the client's to
		// see (its 401 would tell the client its own key is wrong, and its
		// text may name part of stellwerk's).
		// Envoy answers the same when it has no credential to inject (its
		// secret never arrived): the log names both causes.
		p.log.Error("the provider refused stellwerk's credential, or Envoy had none to send (stellwerk xds dump shows whether its secret is current)",
			zap.String("decision_id", p.id), zap.String("provider", m.Provider.Name), zap.Int("status", code))
		e := apierr.Upstream("provider_credential_refused",
			"the provider %s refused the gateway's credential for it (%d); the request was not served (operators: see the stellwerk log)",
			m.Provider.Name, code)
		e.Final = true
		return p.immediate(e)
	}
	if p.plan == nil && modelNotFound(code) && (rh.flags == "" || rh.flags == "-") {
		// Without failover: as with it (allAttemptsFailed), the operator's
		// catalog, and the provider's words name its own model name.
		p.log.Error("the provider does not serve the model it was sent: check the model's provider_model, or pull it",
			zap.String("decision_id", p.id), zap.String("provider", m.Provider.Name), zap.String("model", m.ID),
			zap.String("provider_model", m.ProviderModel))
		e := apierr.Upstream("provider_model_not_found",
			"the provider %s does not serve the model %s (404); the request was not served (operators: see the stellwerk log)",
			m.Provider.Name, m.ID)
		e.Final = true
		return p.immediate(e)
	}
	hs = append(hs,
		setHeader(header.Model, m.ID),
		setHeader(header.Provider, m.Provider.Name),
		setHeader(header.Reason, p.reason()),
		setHeader(header.PolicyVersion, p.result.PolicyVersion),
	)
	hs = p.routeHeaders(hs)
	if m != d.Model {
		hs = append(hs, setHeader(header.FallbackFrom, d.Model.ID))
	}
	if len(p.attempts) > 1 {
		hs = append(hs, setHeader(header.Attempts, strconv.Itoa(len(p.attempts))))
		// The decision record of a failover: every attempt, then who served.
		p.log.Info("failed over", zap.String("decision_id", p.id), zap.String("served_by", m.ID), zap.Any("attempts", p.attempts))
	}
	if r := p.reservation; r != nil {
		hs = append(hs, rateHeaders(&r.State, time.Now())...)
	}
	remove = slices.DeleteFunc(remove, func(k string) bool { // a header stellwerk sets is not removed too
		return slices.ContainsFunc(hs, func(h *corev3.HeaderValueOption) bool { return strings.EqualFold(h.GetHeader().GetKey(), k) })
	})
	resp := continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs, RemoveHeaders: remove})
	p.respStatus = status
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "text/event-stream") && p.result != nil && !p.result.Chat.Stream &&
		(p.endpoint == epChat || p.endpoint == epCompletions || p.endpoint == epEmbeddings) {
		// An event stream for a request that asked for one JSON answer:
		// the SDKs fail to decode it as the answer (the hostile-upstream
		// probe). A JSON answer to a stream request passes: it may be the
		// provider's error, which the SDKs read.
		return p.immediate(p.noAnswer("an event stream for a request that asked for one answer"))
	}
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "text/event-stream") && !h.EndOfStream &&
		(encoding == "" || encoding == "identity") {
		// Follow the stream (event by event, never buffered whole) for its usage.
		p.stream = &streamState{hideUsage: !p.wantUsage, checkEnd: true, scrub: p, maxOut: outputCap(m, p.out)}
		// Its events may change (translated, a usage chunk dropped, an end
		// added): a provider's content-length would cut it.
		mut := resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
		mut.RemoveHeaders = append(mut.RemoveHeaders, "content-length")
		if p.keepContent {
			p.stream.answer = &strings.Builder{}
		}
		switch {
		case p.endpoint == epResponses && p.anthropic: // Anthropic events → chat chunks → Responses events
			p.stream.conv = translate.NewAnthropicResponsesStream(translate.ResponsesEcho(p.reqBody, "reasoning"))
		case p.anthropic:
			p.stream.conv = translate.NewAnthropicStream(p.wantUsage)
		case p.endpoint == epResponses && m.NativeResponses(): // passed through, read in place
			p.stream.native = translate.NewResponsesFollower()
		case p.endpoint == epResponses:
			p.stream.conv = translate.NewResponsesStream().WithEcho(translate.ResponsesEcho(p.reqBody))
		case p.fromChat:
			p.stream.conv = translate.NewMessagesStream().WithToolNames(p.toolNames)
		case p.endpoint == epMessages: // Anthropic's events, natively or from the egress listener's translation
			p.stream.messages = true
		}
		if p.endpoint == epMessages {
			p.stream.endEvent = incompleteMessagesEvent
		}
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_STREAMED}
	}
	if (p.anthropic || p.fromChat) && strings.HasPrefix(ctype, "application/json") && !h.EndOfStream &&
		(encoding == "" || encoding == "identity") {
		// Answers and errors both come back in Anthropic's shape: translate.
		p.translate = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	compressed := encoding != "" && encoding != "identity"
	if compressed && len(status) == 3 && status[0] == '2' && !p.failed {
		// Asked for none (identityEncoding), a provider compressed its
		// answer anyway: stellwerk can neither read its usage, nor
		// translate it, nor take a credential out of it. A gzipped
		// Anthropic answer reached the anthropic SDK as a 200 with no text
		// (the provider-wire probe).
		return p.immediate(p.noAnswer("a compressed body (content-encoding: " + apierr.Truncate(encoding, 32) + ") though it was asked for none"))
	}
	if code >= 400 && (compressed || !strings.HasPrefix(ctype, "application/json") && !strings.HasPrefix(ctype, "text/event-stream")) {
		// Envoy's own text replies (provider unreachable, no cluster) and
		// providers' non-JSON errors (a proxy's HTML page) get the OpenAI
		// error shape, or Anthropic's on /v1/messages; with failover the
		// egress listener's local reply config shapes Envoy's own, and a
		// provider's that is not retried reaches here (it passed verbatim:
		// the chaos probe). A compressed error is replaced too: stellwerk
		// cannot read it for a credential it echoes (an attacker's pass).
		if h.EndOfStream {
			return p.immediate(apierr.ProviderError(code))
		}
		p.reshape = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
		resp.GetResponseHeaders().GetResponse().GetHeaderMutation().SetHeaders = append(hs, setHeader("content-type", "application/json"))
		resp.GetResponseHeaders().GetResponse().GetHeaderMutation().RemoveHeaders = append(remove, "content-encoding")
		return resp
	}
	if code >= 400 && strings.HasPrefix(ctype, "application/json") && !h.EndOfStream && !p.failed &&
		(encoding == "" || encoding == "identity") {
		// A provider's JSON error passes on (its words are the client's
		// to read), but never with a credential it echoes: read it whole.
		p.scrubError = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	if p.plan == nil && len(status) == 3 && status[0] == '2' && !p.routedAt.IsZero() {
		// Time to the provider's first bytes: what the latency objective
		// and sla_ms compare (streams: first chunk; JSON: the whole answer).
		// With failover, each egress attempt measures its own provider.
		p.state.Router.Latency.Observe(m.ID, strings.HasPrefix(ctype, "text/event-stream"), time.Since(p.routedAt))
	}
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "application/json") && h.EndOfStream && !p.failed {
		// A success with no answer at all: the SDKs fail to decode it, and
		// would count it a success (a helper's finding).
		return p.immediate(p.noAnswer("an empty body"))
	}
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "application/json") &&
		(encoding == "" || encoding == "identity") && !h.EndOfStream {
		p.addRouting = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	return resp
}

// visibleExclusions counts the models the policy excluded that the caller
// may see: those it may not are not counted to it (the security probe).
func (p *edge) visibleExclusions() int {
	r := p.result
	if r == nil || len(r.Policy.Exclude) == 0 {
		return 0
	}
	vis := p.state.Router.Visible(p.principal)
	n := 0
	for id := range r.Policy.Exclude {
		if m, ok := p.state.Router.Catalog.Lookup(id); ok && vis.Has(id) && decision.KeyAllows(p.principal, m) {
			n++
		}
	}
	return n
}

// credentialsMissing: no attempt was sent, for want of a credential.
func (p *edge) credentialsMissing() bool {
	return len(p.attempts) > 0 && !slices.ContainsFunc(p.attempts, func(a attempt) bool { return a.Outcome != "not_sent" || a.unsentForNoCluster() })
}

// statusOverloaded is Anthropic's "overloaded_error" status.
const statusOverloaded = 529

// allAnswered: every attempt sent was answered status (429: rate limited;
// 529: Anthropic's overloaded).
func (p *edge) allAnswered(status int) bool {
	sent := 0
	for _, a := range p.attempts {
		if a.Outcome == "not_sent" {
			continue
		}
		if a.Status != status {
			return false
		}
		sent++
	}
	return sent > 0
}

// allTimedOut: every attempt sent timed out waiting for its provider.
func (p *edge) allTimedOut() bool {
	sent := 0
	for _, a := range p.attempts {
		if a.Outcome == "not_sent" {
			continue
		}
		if !strings.HasPrefix(a.Reason, timeoutReason) {
			return false
		}
		sent++
	}
	return sent > 0
}

// cooledFor is the Retry-After, in seconds, of an answer whose every
// attempt failed and whose providers did not say when to come back: when
// the first model of the plan that its failures put in a cooldown takes
// requests again (0 when none cools down, or the answer is final). The
// first 503 after a cooldown began had none, the next ones (refused by
// selection) had it (the on-prem probe).
func (p *edge) cooledFor() int {
	if p.attemptsFinal() {
		return 0
	}
	now := time.Now()
	var first time.Time
	for i := range p.attempts {
		if i >= len(p.plan) {
			break
		}
		at := p.state.Router.Health.Reopens(attemptTarget(p.state, p.plan[i], p.workspace), now)
		if !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if first.IsZero() {
		return 0
	}
	return max(1, int((first.Sub(now)+time.Second-1)/time.Second))
}

// attemptsFinal: every attempt failed in a way sending the request again
// repeats (a credential the provider refused, one never sent for want of a
// credential), so the SDKs are told not to retry.
func (p *edge) attemptsFinal() bool {
	return len(p.attempts) > 0 && !slices.ContainsFunc(p.attempts, func(a attempt) bool {
		return !credentialRefused(a.Status) && !modelNotFound(a.Status) && (a.Outcome != "not_sent" || a.unsentForNoCluster())
	})
}

// failedStatus is the status of the answer when every provider of the
// plan failed (allAttemptsFailed), which the response headers carry
// before the body is written: 502 when nothing could be sent for want of a
// credential, 429 or 529 when every provider said so, 504 when every one
// timed out, else 503.
func (p *edge) failedStatus() int {
	switch {
	case p.credentialsMissing(), p.allAnswered(http.StatusNotFound):
		return http.StatusBadGateway
	case p.allAnswered(http.StatusTooManyRequests):
		return http.StatusTooManyRequests
	case p.allAnswered(statusOverloaded):
		return statusOverloaded
	case p.allTimedOut():
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

// allAttemptsFailed is the answer when every provider of the plan failed
// before its answer started: which were tried, why, and that no other model
// was allowed. A request never reaches a model outside its decision.
// providerErr is the last provider's answer, quoted when it is an error.
func (p *edge) allAttemptsFailed(providerErr []byte) *apierr.Error {
	// A provider's words on a refused credential are not quoted: they may
	// name part of the key ("Incorrect API key provided: sk-proj-****abcd");
	// nor on a model it does not serve: they name its own model name
	// (`model "llama3.1:8b" not found`), which an auto caller is not told.
	if msg := gjson.GetBytes(providerErr, "error.message"); msg.Type == gjson.String && msg.Str != "" && len(p.attempts) > 0 &&
		!credentialRefused(p.attempts[len(p.attempts)-1].Status) && !modelNotFound(p.attempts[len(p.attempts)-1].Status) {
		last := &p.attempts[len(p.attempts)-1]
		// A provider (or a gateway before it) may echo what it was sent:
		// never stellwerk's credential, nor a key of a known shape.
		text, _ := p.scrubText(msg.Str)
		last.Reason += ": " + apierr.Truncate(classify.Redact(text, nil), 200)
	}
	excluded := ""
	if n := p.visibleExclusions(); n > 0 {
		r := p.result
		excluded = fmt.Sprintf("; %d other models are excluded by policy", n)
		if c := r.Constraint; c != "" {
			excluded += " (" + c + ")"
		}
	}
	p.log.Warn("all attempts failed", zap.String("decision_id", p.id), zap.Any("attempts", p.attempts))
	if !p.credentialsMissing() && p.allAnswered(http.StatusNotFound) {
		// Every provider tried does not serve its model: the operator's
		// catalog, not the client's request, nor an outage to retry.
		e := apierr.Upstream("provider_model_not_found",
			"no provider tried serves its model: %s%s; the request was not served (operators: check each model's provider_model, or pull it)",
			summarizeAttempts(p.attempts), excluded)
		e.Final = true
		p.status, p.errCode = apierr.HTTPStatus(e), e.Code
		return e
	}
	switch p.failedStatus() {
	case http.StatusBadGateway:
		// Nothing was sent: a setup error, named as without failover (a
		// pinned model's provider without a key; a helper's finding).
		names := make([]string, 0, len(p.attempts))
		for _, a := range p.attempts {
			if !slices.Contains(names, a.Provider) {
				names = append(names, a.Provider)
			}
		}
		e := apierr.Upstream("provider_credential_missing",
			"no credential is configured for provider %s; the request was not sent (operators: see the stellwerk log)", strings.Join(names, ", "))
		e.Final = true
		p.status, p.errCode = apierr.HTTPStatus(e), e.Code
		return e
	case http.StatusTooManyRequests:
		// Every provider tried said 429: the SDKs' RateLimitError, with
		// the provider's Retry-After, rather than a server error (the SDK
		// probe: a pinned model's 429 reached apps as a 503).
		e := apierr.ProviderError(http.StatusTooManyRequests)
		e.Message = fmt.Sprintf("every model this request may use is rate limiting requests: %s%s", summarizeAttempts(p.attempts), excluded)
		p.status, p.errCode = apierr.HTTPStatus(e), e.Code
		return e
	case statusOverloaded:
		// Every provider tried was Anthropic's, overloaded: the
		// anthropic SDKs' OverloadedError, which Claude Code answers by
		// backing off or switching models (a 503 api_error hid it; the
		// agentic-clients probe).
		e := apierr.ProviderError(statusOverloaded)
		e.Code = "provider_overloaded"
		e.Message = fmt.Sprintf("every model this request may use is overloaded: %s%s", summarizeAttempts(p.attempts), excluded)
		p.status, p.errCode = apierr.HTTPStatus(e), e.Code
		return e
	case http.StatusGatewayTimeout:
		// Every provider tried timed out: the 504 a client gets from a
		// gateway (and from stellwerk in clusters mode), which the SDKs
		// raise as a timeout, rather than "no model may serve it" for a
		// pinned model that was eligible (the peer-switcher probe).
		e := apierr.ProviderError(http.StatusGatewayTimeout)
		e.Message = fmt.Sprintf("every model this request may use timed out: %s%s", summarizeAttempts(p.attempts), excluded)
		p.status, p.errCode = apierr.HTTPStatus(e), e.Code
		return e
	}
	p.status, p.errCode = http.StatusServiceUnavailable, "no_eligible_model"
	e := apierr.Unavailable("no_eligible_model", "every model this request may use failed: %s%s", summarizeAttempts(p.attempts), excluded)
	e.Final = p.attemptsFinal()
	return e
}

// responseBody adds the routing object to a complete JSON object. A body
// larger than Envoy's buffer arrives partial and is passed through as is.
func (p *edge) responseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if p.stream != nil {
		return p.streamBody(b)
	}
	if p.reshape { // the first (usually only) chunk: an error page fits Envoy's buffer
		p.reshape = false
		code, _ := strconv.Atoi(p.respStatus)
		e := apierr.ProviderError(code)
		p.status, p.errCode = apierr.HTTPStatus(e), e.Code
		return replaceResponseBody(p.errorJSON(e))
	}
	if p.failed && b.EndOfStream {
		p.failed = false
		return replaceResponseBody(p.errorJSON(p.allAttemptsFailed(b.Body)))
	}
	if p.scrubError {
		// A JSON error larger than Envoy's buffer comes in parts (the
		// first without end of stream): each is scrubbed, none can be
		// translated.
		p.scrubError = !b.EndOfStream
		p.translate = p.translate && b.EndOfStream // false from a first part on
		body, changed := b.Body, false
		if p.translate { // an Anthropic error in the OpenAI shape, or the reverse
			p.translate, changed = false, true
			body, _ = p.translateAnswer(body) // an error: never "no answer"
		} else if b.EndOfStream && p.respStatus == "400" && translate.ContextOverflow(body) &&
			gjson.GetBytes(body, "error.code").Str != "context_length_exceeded" {
			// A self-hosted server's overflow (vLLM, llama.cpp) with no
			// larger model after it: the code the SDKs and apps know it by.
			body, changed = translate.OverflowError(body), true
		}
		if nb, ok := p.scrub(body); ok {
			body, changed = nb, true
		}
		if changed {
			return replaceResponseBody(body)
		}
		return continueResponseBody()
	}
	if p.translate && !b.EndOfStream {
		// Larger than Envoy's buffer: its headers are on their way, and
		// what Envoy passes on is the provider's own API (the chaos
		// probe's SDKs read an Anthropic message as a completion without
		// choices). Only the operator can fix it: say so.
		p.translate = false
		p.log.Error("an answer to translate is larger than Envoy's buffer and passes on untranslated; raise envoy.max_request_bytes or have the client stream",
			zap.String("decision_id", p.id), zap.String("model", p.served.ID), zap.Int64("max_request_bytes", p.state.MaxRequestBytes))
	}
	if (!p.addRouting && !p.translate) || !b.EndOfStream {
		if p.addRouting && !b.EndOfStream {
			if !p.partial {
				// Passed on in parts, it cannot be judged whole: a success,
				// as its headers said (it counted neither: the health probe).
				p.answerHealth("")
			}
			p.partial = true // larger than Envoy's buffer: passed on in parts
			if nb, held := p.scrubAnswer(b.Body); held {
				return replaceResponseBody(nb)
			}
		}
		return continueResponseBody()
	}
	body, _ := p.scrubAnswer(b.Body)
	// A byte-order mark before the JSON (some servers write one): read,
	// and passed on, without it (it was a 502).
	body = bytes.TrimPrefix(body, utf8BOM)
	if p.translate {
		p.translate = false
		var noAnswer string
		if body, noAnswer = p.translateAnswer(body); noAnswer != "" && !p.partial {
			return p.immediate(p.noAnswer(noAnswer)) // Envoy holds the headers of a body it read whole
		}
		if !p.addRouting {
			return replaceResponseBody(body)
		}
	}
	p.addRouting = false
	if p.partial {
		return replaceResponseBody(body) // the rest of an answer too large to read whole
	}
	if !gjson.ValidBytes(body) || !isObject(body) {
		// A success whose body is not the JSON object it claims to be: the
		// SDKs fail to decode it and would count it a success (a helper's
		// finding). stellwerk's 502 says what happened.
		return p.immediate(p.noAnswer("a body that is not a JSON object")) // Envoy holds the headers of a body it read whole
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259): the Python SDK raised UnicodeDecodeError
		// on such a 200, no APIError (the hostile-upstream probe); requests
		// are held to it too (400 invalid_json).
		return p.immediate(p.noAnswer("a body that is not UTF-8"))
	}
	if e := gjson.GetBytes(body, "error"); e.IsObject() && !isAnswer(body) {
		// A gateway that reports a refusal as a success: an error, not an
		// answer (it reached the client as a 200 without choices, charged
		// the worst case, the provider counted healthy).
		return p.immediate(p.noAnswer("an error: " + apierr.Truncate(e.Get("message").String(), 200)))
	}
	p.answerHealth("")
	native := p.endpoint == epResponses && p.served.NativeResponses()
	if p.keepContent {
		switch {
		case native:
			p.answer = gjson.GetBytes(body, `output.#(type=="message").content.0.text`).String()
		case p.endpoint == epCompletions:
			p.answer = gjson.GetBytes(body, "choices.0.text").String()
		case p.endpoint == epMessages:
			p.answer = gjson.GetBytes(body, `content.#(type=="text").text`).String()
		default:
			p.answer = gjson.GetBytes(body, "choices.0.message.content").String()
		}
	}
	// One read of the usage: the charge settled, recorded and shown.
	c, charged := p.jsonCharge(body)
	if p.overlong {
		return p.immediate(p.noAnswer("an answer longer than the model can write")) // Envoy holds the headers of a body it read whole
	}
	if p.endpoint == epMessages && !charged && !gjson.GetBytes(body, "usage").Exists() {
		// A provider that reported none (a chat model's answer translated):
		// the request's end charges the worst case; the SDKs read a usage
		// object.
		if nb, err := sjson.SetRawBytes(body, "usage", []byte(`{"input_tokens":0,"output_tokens":0}`)); err == nil {
			body = nb
		}
	}
	if charged && (p.reservation != nil || p.state.readsUsage()) {
		p.settle(c, spend.Served)
	}
	var cp *meter.Charge
	if charged {
		cp = &c
	}
	ro := p.routing(cp)
	if p.endpoint == epResponses && !native {
		var dropped []string
		if p.served != nil && p.served.Provider.WireFormat == "anthropic" {
			dropped = []string{"reasoning"} // not given to the model: not echoed as if applied
		}
		rb, err := translate.ChatToResponse(body, translate.ResponsesEcho(p.reqBody, dropped...))
		if err != nil {
			p.log.Warn("chat answer not translatable to a response", zap.String("decision_id", p.id), zap.Error(err))
			return replaceResponseBody(apierr.Upstream("provider_bad_response", "the provider's answer could not be translated").JSON())
		}
		body = rb
	}
	if ro == nil {
		return replaceResponseBody(body)
	}
	nb, err := withRouting(body, ro)
	if err != nil {
		return replaceResponseBody(body)
	}
	return replaceResponseBody(nb)
}

// providerHeaders appends to remove the provider's response headers a
// client must not get. A client gets what describes the answer (its type,
// length, encoding, caching), the provider's request id and its advice on
// retrying; every other header goes: the account stellwerk uses (OpenAI's
// organization and project, Anthropic's organization id), cookies for the
// provider's domain, the shared account's rate limits, and whatever names
// the provider's infrastructure (via, server, x-ms-region, apim-request-id:
// until 2026-12-07 a list of known ones went and the rest passed, the HTTP
// red team). One that passes still goes when its value holds the
// credential stellwerk sent to a provider of the plan (a gateway that
// echoes it; found by a helper).
func (p *edge) providerHeaders(h *extprocv3.HttpHeaders, remove []string) []string {
	for _, hv := range h.GetHeaders().GetHeaders() {
		if !providerHeaderPasses(hv.Key) {
			remove = append(remove, hv.Key)
			continue
		}
		v := hv.Value
		if len(hv.RawValue) > 0 { // a view: nothing of it is kept
			v = unsafe.String(unsafe.SliceData(hv.RawValue), len(hv.RawValue))
		}
		if _, held := p.scrubText(v); held || (hv.Key == header.RequestID || hv.Key == header.AnthropicRequestID) && !plainID(v) {
			remove = append(remove, hv.Key)
		}
	}
	return remove
}

// plainID reports whether a provider's request id reaches the client as
// it is: at most 128 characters, letters, digits and ._:+=/- (OpenAI's
// req_…, Anthropic's, UUIDs). A 60 KB id, or one holding <script>,
// reached the client as sent (the hostile-upstream probe); the decision's
// stands in for it.
func plainID(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == ':' || c == '+' || c == '=' || c == '/' || c == '-':
		default:
			return false
		}
	}
	return true
}

// providerHeaderPasses says whether a provider's answer header reaches
// the client (providerHeaders). Envoy gives names in lower case; its
// pseudo-headers (:status) are not the provider's to remove here. No
// x-stellwerk-* header of an answer passes: the edge reads those the
// egress filter and Envoy add (x-stellwerk-served, …) and sets every one
// the client gets itself, and a provider's own (x-stellwerk-fallback-from,
// x-stellwerk-budget-warning, x-stellwerk-cost: 0) reached the client as
// sent (the red team of 2026-12-07).
func providerHeaderPasses(k string) bool {
	switch k {
	case "content-type", "content-length", "content-encoding", "transfer-encoding", "date",
		"x-request-id", "request-id", // the provider's request id, for its support
		"retry-after", "x-should-retry", // bounded or decided by stellwerk (retryAfter)
		"openai-processing-ms", "openai-version":
		return true
	}
	return strings.HasPrefix(k, ":")
}

// scrubText replaces in s the credential of each provider the request may
// have been sent to (the one served, those of its plan); held reports that
// s had one.
func (p *edge) scrubText(s string) (out string, held bool) {
	out = s
	scrub := func(m *catalog.Model) {
		var h bool
		if out, h = m.Provider.Scrub(out); h {
			held = true
		}
		// The workspace's own key for the provider, when it brings one.
		if len(p.state.WorkspaceKeys) > 0 && p.workspace != "" {
			if out, h = catalog.ScrubSecret(out, p.state.WorkspaceKeys[WorkspaceProvider{p.workspace, m.Provider.Name}]); h {
				held = true
			}
		}
	}
	if p.served != nil {
		scrub(p.served)
	}
	for _, m := range p.plan {
		scrub(m)
	}
	return out, held
}

// scrub is scrubText on a provider's body.
func (p *edge) scrub(body []byte) ([]byte, bool) {
	out, held := p.scrubText(unsafe.String(unsafe.SliceData(body), len(body)))
	if !held {
		return body, false
	}
	return []byte(out), true
}

// scrubAnswer is scrub on a success, or a part of one larger than Envoy's
// buffer: a provider, or a gateway before it, that echoes its credential
// in the answer's content (a credential split across two parts is not
// found).
func (p *edge) scrubAnswer(body []byte) ([]byte, bool) {
	nb, held := p.scrub(body)
	if held {
		p.log.Warn("the provider's answer held the credential stellwerk sent it; replaced with [credential]",
			zap.String("decision_id", p.id), zap.String("provider", p.served.Provider.Name))
	}
	return nb, held
}

// noAnswer is the error for a provider's 2xx answer that is none: what
// says how it failed.
func (p *edge) noAnswer(what string) *apierr.Error {
	return p.badAnswer("answered with success but " + what)
}

// badAnswer is the error for a provider's answer that is neither an
// answer nor an error stellwerk can pass on: what it did says how. It
// counts against the provider and is charged nothing.
func (p *edge) badAnswer(what string) *apierr.Error {
	m := p.served
	p.broken = true // not served: charged nothing, as a provider's error is
	p.answerHealth(what)
	p.log.Warn("the provider's answer was none", zap.String("decision_id", p.id), zap.String("model", m.ID),
		zap.String("provider", m.Provider.Name), zap.String("answer", what))
	return apierr.Upstream("provider_bad_response", "the provider %s %s; the request was not served", m.Provider.Name, what)
}

// sdkRetries: the OpenAI SDKs retry this status unless told otherwise
// (x-should-retry: false).
func sdkRetries(code int) bool { return code == 408 || code == 409 || code == 429 || code >= 500 }

// utf8BOM is the byte-order mark some servers put before a JSON body.
var utf8BOM = []byte("\ufeff")

// isAnswer reports whether a successful JSON body holds an answer of an
// API stellwerk serves: choices (chat, completions), data (embeddings),
// output (Responses) or content (Messages).
func isAnswer(body []byte) bool {
	for _, r := range gjson.GetManyBytes(body, "choices", "data", "output", "content") {
		if r.Exists() {
			return true
		}
	}
	return false
}

// answerHealth tells the served provider's health what its JSON success
// was (recordAttempt leaves successes to the edge): an answer ("") ends
// its run of failures; a success that was no answer (why) adds to it.
// Without failover (no plan) health is not kept, as for streams.
func (p *edge) answerHealth(why string) {
	m := p.served
	if p.plan == nil || m == nil || p.routedAt.IsZero() {
		return
	}
	tg := attemptTarget(p.state, m, p.workspace)
	if why == "" {
		p.state.Router.Health.Succeeded(tg)
		return
	}
	if p.state.Router.Health.Failed(tg, why, 0) {
		p.log.Info("provider cooling down", zap.String("provider", m.Provider.Name), zap.String("reason", why))
	}
}

// routeHeaders adds the route and its split arm to an answer of a request
// that took a named route: every answer, an error's too, so that a client
// reading no body (a stream, an error) knows its arm.
func (p *edge) routeHeaders(hs []*corev3.HeaderValueOption) []*corev3.HeaderValueOption {
	if o := p.result.Route; o != nil {
		hs = append(hs, setHeader(header.Route, o.Label()))
		if o.Arm != "" {
			hs = append(hs, setHeader(header.RouteArm, o.Arm))
		}
	}
	return hs
}
