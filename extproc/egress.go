package extproc

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3conf "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// egress is one attempt of a request on one provider, in that provider's
// internal listener (docs/failover.md), told its provider by the
// x-stellwerk-egress gRPC metadata. It reads the attempt list the edge
// decided, rewrites the request for its provider, translates the provider's
// answer back to the OpenAI shape, and records how the attempt went: in the
// provider's health and for the edge's routing object.
type egress struct {
	filter
	provider    string
	planHeader  string
	planIdx     int       // this attempt's place in the plan
	attemptAt   time.Time // when this attempt left for the provider
	attemptDone bool
	// firstByte is the stream's first-byte timeout when this attempt has
	// one (a streaming request with a fallback after it), 0 otherwise.
	firstByte time.Duration
	// larger: a later model of the plan has a larger context window than
	// this attempt's, so a context overflow here fails over (overflow).
	larger bool
	// overflowCheck: the answer is a 400 to read for a context overflow.
	overflowCheck bool
}

// outcomeOverflow is an attempt whose provider answered that the prompt
// does not fit its model's context window: not the provider's failure.
const outcomeOverflow = "context_overflow"

var _ phases = (*egress)(nil)

// handle answers one message of the attempt's stream.
func (p *egress) handle(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return p.requestHeaders(r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return p.requestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return p.responseHeaders(r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return p.responseBody(r.ResponseBody)
	}
	if resp := trailers(req); resp != nil {
		return resp
	}
	return p.immediate(p.unexpected())
}

// finish records an attempt that got no answer as failed.
func (p *egress) finish() { p.endAttempt(0, "", "", "", false) }

// immediate answers with an OpenAI-shaped error.
func (p *egress) immediate(e *apierr.Error) *extprocv3.ProcessingResponse {
	return errorResponse(e, p.id, "")
}

func (p *egress) requestHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	rewritten := ""
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := strings.ToLower(hv.Key); k {
		case ":path":
			p.path = headerValue(hv)
		case header.Rewritten, header.ClientPath:
			rewritten = headerValue(hv)
		case header.Workspace:
			p.workspace = headerValue(hv)
		case header.Plan:
			p.planHeader = headerValue(hv)
		default:
			if slices.Contains(p.state.forwardable, k) {
				p.extra = append(p.extra, k) // the edge let it through for some provider
			}
		}
	}
	if rewritten != "" {
		// The edge rewrote the request for the first attempt's provider:
		// rewrite from the client's path, not that provider's.
		p.path = rewritten
	}
	if i := strings.IndexByte(p.path, '?'); i >= 0 {
		p.path = p.path[:i]
	}
	if h.EndOfStream || p.planHeader == "" {
		// Only the edge filter sends requests here, always with a plan and a body.
		p.log.Error("egress request without a plan or body", zap.String("provider", p.provider))
		return p.immediate(apierr.Internal())
	}
	return continueRequestHeaders(&extprocv3.HeaderMutation{RemoveHeaders: []string{header.Plan, header.Rewritten, header.ClientPath, header.Workspace}}, false)
}

func (p *egress) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	id, ids, ok := decodePlan(p.planHeader)
	if !ok {
		p.log.Error("egress request with a malformed plan", zap.String("provider", p.provider))
		return p.immediate(apierr.Internal())
	}
	p.id, p.planIdx = id, -1
	cat := p.state.Router.Catalog
	for i, mid := range ids {
		if m, ok := cat.Lookup(mid); ok && m.Provider.Name == p.provider {
			p.planIdx, p.served = i, m
			break
		}
	}
	if p.served == nil {
		// The plan names models by id; a reload between the decision and this
		// attempt may have removed it. Fail the attempt; Envoy moves on.
		p.log.Warn("attempt's model is not in the catalog", zap.String("decision_id", id), zap.String("provider", p.provider))
		return p.immediate(apierr.Unavailable("model_not_available", "the chosen model is no longer configured"))
	}
	for _, mid := range ids[p.planIdx+1:] {
		if m, ok := cat.Lookup(mid); ok && m.ContextWindow > p.served.ContextWindow {
			p.larger = true
			break
		}
	}
	if p.planIdx > 0 {
		if over, ok := cat.Lookup(p.seen.overflowed(id, p.planIdx)); ok && over.ContextWindow >= p.served.ContextWindow {
			// An earlier attempt's prompt did not fit a window at least as
			// large as this one: skip to the next attempt, nothing sent.
			p.seen.record(id, p.planIdx, attempt{Provider: p.provider, Model: p.served.ID, Outcome: "not_sent",
				Reason: "context window not larger than " + over.ID + "'s, which the prompt overflowed"})
			e := apierr.Invalid("context_length_exceeded", "messages", "the prompt is longer than %s's context window of %d tokens", p.served.ID, p.served.ContextWindow)
			return immediateJSON(apierr.HTTPStatus(e), e.JSON(), id, setHeader(header.Overflow, "1"))
		}
	}
	p.attemptAt = time.Now()
	hs, rm, nb, perr := p.rewriteFor(p.served, b.Body)
	if perr != nil {
		p.endAttempt(apierr.HTTPStatus(perr), "", "", perr.Code, false)
		return p.immediate(perr)
	}
	if wc := p.state.workspaceCluster(p.workspace, p.provider); wc != "" {
		hs = append(hs, setHeader(header.Upstream, wc)) // the workspace's own key
	} else {
		rm = append(rm, header.Upstream) // a copy the first attempt's provider needed
	}
	if p.planIdx < len(ids)-1 && p.served.FirstByteTimeout > 0 && gjson.GetBytes(b.Body, "stream").Bool() {
		// A stream that another provider could take over: this router's
		// per-try timeout fires before the first byte only (Envoy ignores
		// it once the answer has started), answers 504, and the failover
		// route's retry moves on. The last attempt keeps attempt_timeout.
		p.firstByte = p.served.FirstByteTimeout
		hs = append(hs, setHeader(header.PerTryTimeout, strconv.FormatInt(p.firstByte.Milliseconds(), 10)))
	}
	return continueRequestBody(bodyChange(hs, rm, b.Body, nb))
}

func (p *egress) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if p.served == nil {
		return continueResponseHeaders(&extprocv3.HeaderMutation{}) // stellwerk's own early answer
	}
	rh := readResponseHeaders(h)
	code, _ := strconv.Atoi(rh.status)
	plain := !h.EndOfStream && (rh.encoding == "" || rh.encoding == "identity")
	// A 400 may say the prompt overflowed this model's context window,
	// which a larger model of the plan may hold: read it first.
	p.overflowCheck = p.larger && code == 400 && plain && strings.HasPrefix(rh.ctype, "application/json")
	if !p.overflowCheck {
		p.endAttempt(code, rh.flags, rh.retryAfter, "", strings.HasPrefix(rh.ctype, "text/event-stream"))
	}
	resp := continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(header.Served, strconv.Itoa(p.planIdx))}})
	if rh.relabeled { // as the edge reads it (readResponseHeaders)
		mut := resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
		mut.SetHeaders = append(mut.SetHeaders, setHeader("content-type", "application/json"))
	}
	p.respStatus = rh.status
	if (p.anthropic || p.fromChat) && plain && code/100 == 2 && strings.HasPrefix(rh.ctype, "text/event-stream") {
		// Translated event by event: a provider's content-length would cut it.
		mut := resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
		mut.RemoveHeaders = append(mut.RemoveHeaders, "content-length")
	}
	switch {
	case p.anthropic && plain && code/100 == 2 && strings.HasPrefix(rh.ctype, "text/event-stream"):
		// The edge follows the translated stream for usage: always emit it.
		p.stream = &streamState{conv: translate.NewAnthropicStream(true)}
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_STREAMED}
	case p.fromChat && plain && code/100 == 2 && strings.HasPrefix(rh.ctype, "text/event-stream"):
		// A Messages API request a chat model answers: Anthropic's events.
		p.stream = &streamState{conv: translate.NewMessagesStream().WithToolNames(p.toolNames)}
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_STREAMED}
	case (p.anthropic || p.fromChat) && plain && strings.HasPrefix(rh.ctype, "application/json"):
		p.translate = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	case p.overflowCheck:
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	return resp
}

// responseBody follows a translated stream, or translates a JSON answer
// back to the client's API.
func (p *egress) responseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if p.stream != nil {
		resp, _ := p.stream.follow(b) // the edge records how it ended
		return resp
	}
	if p.overflowCheck {
		p.overflowCheck = false
		if b.EndOfStream && translate.ContextOverflow(b.Body) {
			// The failover route's retry policy retries on the header;
			// this answer goes no further.
			p.endAttempt(400, "", "", outcomeOverflow, false)
			return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
				ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
					HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader(header.Overflow, "1")}},
				}},
			}}
		}
		p.endAttempt(400, "", "", "", false)
	}
	if p.translate && !b.EndOfStream {
		p.translate = false // as at the edge: passed on untranslated, and said
		p.log.Error("an answer to translate is larger than Envoy's buffer and passes on untranslated; raise envoy.max_request_bytes or have the client stream",
			zap.String("decision_id", p.id), zap.String("model", p.served.ID), zap.Int64("max_request_bytes", p.state.MaxRequestBytes))
	}
	if !p.translate || !b.EndOfStream {
		return continueResponseBody()
	}
	p.translate = false
	body, noAnswer := p.translateAnswer(bytes.TrimPrefix(b.Body, utf8BOM))
	if noAnswer != "" {
		// The edge answers 502 for a success that is no answer, and
		// charges nothing: an answer this attempt cannot translate reaches
		// it as an empty one.
		body = []byte{}
	}
	return replaceResponseBody(body)
}

// endAttempt records this attempt's outcome once: in the provider's health,
// the learned latency, and the log the edge reads. stream: the answer is
// an event stream (its headers came with its first token).
func (p *egress) endAttempt(status int, flags, ra, code string, stream bool) {
	if p.attemptDone || p.served == nil || p.attemptAt.IsZero() {
		return
	}
	p.attemptDone = true
	recordAttempt(&p.filter, p.planIdx, p.served, p.workspace, attemptResult{status: status, flags: flags, retryAfter: ra,
		code: code, stream: stream, elapsed: time.Since(p.attemptAt), firstByte: p.firstByte})
}

// attemptResult is what became of one attempt, as an egress filter, the
// edge or Envoy's upstream log (upstreamlog.go) saw it.
type attemptResult struct {
	status           int // 0: no response
	flags            string
	retryAfter, code string
	stream           bool
	elapsed          time.Duration
	firstByte        time.Duration // the attempt's first-byte timeout, if it had one
}

// connectionFailed reports whether Envoy's response flags say the provider
// could not be reached: a connection that failed, was terminated or reset,
// or no host to connect to. (A first attempt that went straight to its
// provider has no egress listener to turn that into a 503.)
func connectionFailed(flags string) bool {
	for f := range strings.SplitSeq(flags, ",") {
		switch f {
		case "UF", "UC", "UR", "UH":
			return true
		}
	}
	return false
}

// noCluster is the reason of an attempt Envoy had no cluster for (flag NC).
const noCluster = "Envoy has no cluster for the provider (NC): the gateway's configuration has not reached it"

// unsentForNoCluster: Envoy had no cluster for the attempt's provider (its
// reason may carry the words of Envoy's reply after it).
func (a *attempt) unsentForNoCluster() bool {
	return a.Outcome == "not_sent" && strings.HasPrefix(a.Reason, noCluster)
}

// recordAttempt records an attempt of decision f.id, plan index idx on
// model m, in the provider's health (scoped to the workspace's own key
// when it has one), the learned latency, and the attempt log the edge
// reads for the routing object.
func recordAttempt(f *filter, idx int, m *catalog.Model, workspace string, o attemptResult) {
	a := attempt{Provider: m.Provider.Name, Model: m.ID, Status: o.status,
		LatencyMS: round(float64(o.elapsed)/float64(time.Millisecond), 1), Outcome: "served"}
	r := f.state.Router
	tg := attemptTarget(f.state, m, workspace)
	switch status := o.status; {
	case status == 0:
		a.Outcome = "failed"
		a.Reason = "no response: attempt timed out or was cancelled"
		timeout := time.Duration(0)
		if fo := f.state.Failover; fo != nil {
			timeout = fo.AttemptTimeout
		}
		if o.firstByte > 0 {
			timeout = o.firstByte
		}
		reason := "no response within the attempt timeout"
		if strings.Contains(o.flags, "UT") {
			a.Reason = timeoutReason + " (" + o.flags + ")"
		} else if connectionFailed(o.flags) {
			a.Reason = "connection failed (" + o.flags + ")"
			reason = a.Reason
		} else if o.elapsed < timeout*9/10 {
			a.Outcome, a.Reason = outcomeAbandoned, "cancelled before the provider answered"
			break // the client went away; not the provider's fault
		}
		r.Health.Failed(tg, reason, 0)
	case o.code == outcomeOverflow:
		// The prompt did not fit this model's window; a larger one of the
		// plan is tried next. The request's doing, not the provider's: no
		// cooldown, no run of failures.
		a.Outcome = outcomeOverflow
		a.Reason = "context window of " + strconv.Itoa(m.ContextWindow) + " tokens exceeded"
	case o.code != "":
		// stellwerk refused to send it (no credential, a model a reload
		// removed): a setup error, not the provider's failure.
		a.Outcome, a.Reason = "not_sent", o.code
	case status == 429:
		// A rate limit: the credential's (and for most providers the
		// model's), never the provider's as a whole.
		a.Outcome, a.Reason = "failed", failureReason(status, o.flags)
		if r.Health.RateLimited(tg, a.Reason, retryAfter(o.retryAfter, time.Now())) {
			f.log.Info("rate limit cooling down", zap.String("provider", m.Provider.Name), zap.String("model", m.ID),
				zap.Bool("own_key", tg.Workspace != ""), zap.String("reason", a.Reason))
		}
	case credentialRefused(status):
		// The credential's failure, not the provider's: a workspace's own
		// key the provider refuses cools that key alone, the shared key
		// every caller of it (one tenant's revoked key cooled the provider
		// for all, found by a helper).
		a.Outcome, a.Reason = "failed", failureReason(status, o.flags)
		if r.Health.CredentialRefused(tg, a.Reason) {
			f.log.Info("credential refused: cooling it down", zap.String("provider", m.Provider.Name),
				zap.Bool("own_key", tg.Workspace != ""), zap.String("reason", a.Reason))
		}
	case modelNotFound(status) && (o.flags == "" || o.flags == "-"):
		// The provider does not serve the model (a model not pulled, a
		// provider_model misspelt): that model alone cools, through the
		// credential that asked, as a per-model rate limit does; the
		// provider's other models keep serving. (A 404 was the client's,
		// never failed over: the on-prem probe got it 4 times in 4.)
		a.Outcome, a.Reason = "failed", modelNotFoundReason
		mt := tg
		mt.PerModel = true
		if r.Health.RateLimited(mt, a.Reason, 0) {
			f.log.Warn("provider does not serve the model: cooling it down", zap.String("provider", m.Provider.Name),
				zap.String("model", m.ID), zap.String("provider_model", m.ProviderModel))
		}
	case strings.Contains(o.flags, "NC"):
		// Envoy has no cluster for the provider: its configuration from
		// stellwerk has not arrived (an Envoy that started first, the SRE
		// probe) or a reload removed it. Nothing was sent; not the
		// provider's failure (it had cooled healthy providers).
		a.Outcome, a.Reason = "not_sent", noCluster
	case strings.Contains(o.flags, "UO"):
		// Envoy's circuit breaker for the provider's cluster is full: a
		// limit of this deployment's, not the provider failing. It neither
		// cools the provider nor adds to its run of failures (a helper's
		// finding: one burst over max_requests took a healthy provider out
		// of routing for every caller). Envoy does not retry an overflow.
		a.Outcome, a.Reason = "failed", failureReason(status, o.flags)
	case retryable(status):
		a.Outcome, a.Reason = "failed", failureReason(status, o.flags)
		if o.firstByte > 0 && status == 504 && strings.Contains(o.flags, "UT") {
			a.Reason = "no first byte within " + o.firstByte.String() + " (" + o.flags + ")"
		}
		if r.Health.Failed(tg, a.Reason, retryAfter(o.retryAfter, time.Now())) {
			f.log.Info("provider cooling down", zap.String("provider", m.Provider.Name), zap.String("reason", a.Reason))
		}
	case status/100 == 2:
		// A success is the provider's once its answer is one: the edge,
		// which reads every answer, says so, at a stream's end
		// (streamHealth) or when a JSON answer proved an answer
		// (answerHealth). A 200 carrying an error had counted a success,
		// so such a provider never cooled (the provider-wire probe).
		r.Latency.Observe(m.ID, o.stream, o.elapsed)
	default:
		// A 4xx other than 429 is about the request (400, 404, 413,
		// 422…): it neither ends nor adds to the provider's run of
		// failures. Nothing was served: rejected, apart from an outage's
		// failed (the chaos probe read "served" for a 400).
		a.Outcome, a.Reason = "rejected", failureReason(status, o.flags)
	}
	if ce := f.log.Check(zap.DebugLevel, "attempt"); ce != nil { // zap.Any boxes a: only when logged
		ce.Write(zap.String("decision_id", f.id), zap.Int("index", idx), zap.Any("attempt", a))
	}
	f.seen.record(f.id, idx, a)
}
