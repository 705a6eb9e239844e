package extproc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3conf "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/telemetry"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// endpoint is what a request path asks for.
type endpoint int

const (
	epUnknown endpoint = iota
	epChat
	epEmbeddings
	epCompletions
	epResponses
	epMessages
	epModels
	epModel
)

// routed reports whether requests of the endpoint are decided and sent to
// a provider.
func (e endpoint) routed() bool {
	return e == epChat || e == epEmbeddings || e == epCompletions || e == epResponses || e == epMessages
}

// edge is the client-facing filter of one HTTP request: it authenticates,
// answers what needs no provider, decides, rewrites the request (or hands
// it to the failover cluster with its plan) and tells the client what was
// decided and what it cost.
type edge struct {
	filter
	ctx context.Context

	principal    auth.Principal
	headerPolicy string            // x-stellwerk-policy as sent
	metadataHdr  string            // x-stellwerk-metadata as sent
	headers      map[string]string // client headers the policy may read

	method   string
	endpoint endpoint

	selection *decide.Selection // set once the body phase routed the request
	class     classify.Result   // the request's classification, with the decision
	result    *decision.Result  // the whole decision, for the routing object

	overhead   time.Duration      // time spent deciding, across the request phases
	stages     telemetry.Overhead // parts of it, for the metrics (metrics.go)
	firstChunk time.Time          // when a followed stream's first chunk came
	// The client's W3C trace context, read only when traces are on: the
	// request's span is its child.
	traceParent, traceState string
	addRouting              bool      // the response is JSON the routing object goes into
	routedAt                time.Time // when the request left for the provider
	wantUsage               bool      // the client asked for the stream's usage chunk

	// Failover (standalone mode): the attempt list, and what happened to
	// each attempt.
	plan     []*catalog.Model
	attempts []attempt
	seenOpen bool // this edge stream's entry in seen is open
	rewrote  bool // the first attempt's request was rewritten here
	// direct: a plan of one attempt went straight to its provider's
	// cluster (no internal listener); the edge records the attempt.
	direct bool
	// directID is Envoy's request id when the first attempt of a plan of
	// several went straight to its provider (routeFirstDirect).
	directID string
	failed   bool // every attempt failed; the answer becomes stellwerk's error

	// The request's hold on its budgets and rate limits, until settled.
	reservation *ledger.Reservation
	reservedEUR ledger.MicroEUR
	recorded    bool // the request's spend row went to the recorder
	// unsettled is a charge made (settle) whose spend row and ledger
	// settlement wait until the answer that shows it has gone (afterSend).
	unsettled settlement
	ending    bool // finish runs: nothing more is sent, settle writes at once
	reshape   bool // a non-JSON error answer becomes an OpenAI-shaped one

	// The audit record's facts that nothing else keeps (audit.go).
	// contentLength is the request's declared length, -1 without one.
	contentLength int64
	arrived       time.Time    // when the request headers came (the audit record's time, a route's latency)
	bodyPhase     bool         // a chat request reached the body phase: it gets a record
	audited       bool         // its record was handed over
	reqBody       []byte       // the body as received, for the writer to fingerprint
	charge        meter.Charge // what settle charged
	charged       bool
	status        int    // stellwerk's own answer's status (0: the provider's answer went through)
	errCode       string // and its error code
	streamEnd     string // how a followed stream ended (complete, incomplete, interrupted)
	// keepContent: the workspace opted in to content in its audit records
	// (audit.content); answer is the JSON answer's text then.
	keepContent bool
	answer      string
	// anthropicErrors: the client called the Messages API, whose SDKs read
	// errors in Anthropic's shape (docs/api.md).
	anthropicErrors bool
}

var _ phases = (*edge)(nil)

// isClientAuth reports the client's credentials for stellwerk. They never
// reach a provider (the allow-list removes them), whether or not the
// provider needs a key.
func isClientAuth(k string) bool { return k == "authorization" || k == "api-key" || k == "x-api-key" }

// handle answers one message of the edge's stream. The request phases,
// and every phase until the request is decided, count as router overhead.
func (p *edge) handle(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if _, ok := req.Request.(*extprocv3.ProcessingRequest_RequestHeaders); ok || p.selection == nil {
		start := time.Now()
		defer func() {
			d := time.Since(start)
			p.overhead += d
			if ok {
				p.stages.Authenticate = d
			}
		}()
	}
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		p.arrived = time.Now()
		if p.state.CheckRoute {
			if resp := p.checkRoute(req); resp != nil {
				return resp
			}
		}
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

// finish ends the edge's stream, whatever became of the request: its
// attempt entry goes, and a stream that ended before its answer did (the
// client went away, or the provider broke off) still gets its usage
// recorded, as an estimate.
func (p *edge) finish() {
	p.afterSend() // an answer whose send failed still settles
	p.ending = true
	p.takeAttempts(0)
	if p.directID != "" {
		p.seen.directDone(p.directID)
	}
	p.finishStream("interrupted")
	p.endReservation()
	p.countRoute()
	p.audit()
	p.observe()
}

// countRoute counts the answer of a request that took a named route, per
// version and arm (flow.Counters).
func (p *edge) countRoute() {
	c := p.state.RouteCounters
	if c == nil || p.result == nil || p.result.Route == nil {
		return
	}
	code, _ := strconv.Atoi(p.respStatus)
	a := flow.Answer{Err: p.status != 0 || p.failed || code == 0 || code >= 400, Latency: time.Since(p.arrived)}
	if p.charged {
		a.Cost = ledger.FromEUR(p.charge.EUR)
	}
	c.Record(p.result.Route, a)
}

// immediate answers with an OpenAI-shaped error, naming the policy version
// that decided when there is one.
func (p *edge) immediate(e *apierr.Error) *extprocv3.ProcessingResponse {
	p.status, p.errCode = apierr.HTTPStatus(e), e.Code
	pv := ""
	if p.result != nil {
		pv = p.result.PolicyVersion
	}
	var resp *extprocv3.ProcessingResponse
	if p.anthropicErrors {
		resp = immediateJSON(apierr.HTTPStatus(e), translate.AnthropicError(e), p.id, errorHeaders(e, pv)...)
	} else {
		resp = errorResponse(e, p.id, pv)
	}
	if p.result != nil && p.result.Route != nil {
		m := resp.GetImmediateResponse().Headers
		m.SetHeaders = append(m.SetHeaders, setHeader(header.Route, p.result.Route.Label()))
	}
	return resp
}

// errorJSON is stellwerk's error body in the shape the client's API reads.
func (p *edge) errorJSON(e *apierr.Error) []byte {
	if p.anthropicErrors {
		return translate.AnthropicError(e)
	}
	return e.JSON()
}

// checkRoute fails closed when an LLM request in an operator's Envoy matched
// another route than stellwerk's: after stellwerk's answer it would leave
// for that route's backend. The client learns nothing of the routes.
func (p *edge) checkRoute(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	name := req.GetAttributes()[header.ExtProcAttributes].GetFields()[header.RouteNameAttribute].GetStringValue()
	if name == header.DropInRoute {
		return nil
	}
	p.log.Error("request matched another route than stellwerk's; refused (put the stellwerk route first and keep request_attributes: [xds.route_name], docs/envoy.md)",
		zap.String("decision_id", p.id), zap.String("route", apierr.Truncate(name, 128)))
	return p.immediate(apierr.Misrouted())
}

// requestHeaders strips headers a client must not set, answers what needs no
// provider (model listing, unknown paths) and admits chat requests to the
// body phase.
func (p *edge) requestHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	p.contentLength = -1
	hvs := h.GetHeaders().GetHeaders()
	remove := append(make([]string, 0, 1+len(hvs)), header.Cluster)
	var credential string
	for _, hv := range hvs {
		k := strings.ToLower(hv.Key)
		switch {
		case k == ":method":
			p.method = headerValue(hv)
		case k == ":path":
			p.path = headerValue(hv)
		case k == "content-length":
			if n, err := strconv.ParseInt(headerValue(hv), 10, 64); err == nil && n >= 0 {
				p.contentLength = n
			}
		case isClientAuth(k):
			if credential == "" || k == "authorization" {
				credential = headerValue(hv)
			}
		case (k == "traceparent" || k == "tracestate") && p.state.Traces != nil:
			if k == "traceparent" {
				p.traceParent = headerValue(hv)
			} else {
				p.traceState = headerValue(hv)
			}
		case k == "user-agent" || k == "x-request-id" || k == "x-client-app":
			if p.headers == nil {
				p.headers = map[string]string{}
			}
			p.headers[k] = apierr.Truncate(headerValue(hv), 256)
		case header.IsInternal(k):
			switch k {
			case header.Policy:
				p.headerPolicy = headerValue(hv)
			case header.Metadata:
				p.metadataHdr = headerValue(hv)
			}
			if k != header.Cluster {
				remove = append(remove, k)
			}
			continue
		}
		// Providers get an allow-list of client headers, never the rest:
		// not the client's credentials, not Envoy's retry and timeout
		// headers (a client does not steer them), not accept-encoding
		// (stellwerk reads every answer, so it must come uncompressed).
		if k != "" && k[0] != ':' && !header.Forwarded(k) {
			if slices.Contains(p.state.forwardable, k) {
				p.extra = append(p.extra, k) // some provider gets it; the rewrite decides
			} else {
				remove = append(remove, k)
			}
		}
	}
	if i := strings.IndexByte(p.path, '?'); i >= 0 {
		p.path = p.path[:i]
	}
	// Anthropic's SDKs read errors in Anthropic's shape, the key's refusal
	// and an unserved /v1/messages/… (count_tokens, batches) too.
	p.anthropicErrors = strings.HasPrefix(p.path, request.PathMessages) &&
		(len(p.path) == len(request.PathMessages) || p.path[len(request.PathMessages)] == '/')
	principal, err := p.state.Keys.Authenticate(credential)
	if err != nil {
		return p.immediate(apierr.Unauthenticated("a valid stellwerk API key is required (Authorization: Bearer <key>, or x-api-key)"))
	}
	p.principal = principal
	p.workspace = principal.Workspace

	switch {
	case p.path == request.PathChat:
		p.endpoint = epChat
	case p.path == request.PathEmbeddings:
		p.endpoint = epEmbeddings
	case p.path == request.PathCompletions:
		p.endpoint = epCompletions
	case p.path == request.PathResponses:
		p.endpoint = epResponses
	case p.path == request.PathMessages:
		p.endpoint = epMessages
	case p.path == "/v1/models":
		p.endpoint = epModels
	case strings.HasPrefix(p.path, "/v1/models/") && len(p.path) > len("/v1/models/"):
		p.endpoint = epModel
	default:
		return p.immediate(apierr.NotFound("unknown_url", "", "unknown request URL: %s %s; stellwerk serves POST /v1/chat/completions, /v1/responses, /v1/messages, /v1/embeddings and /v1/completions and GET /v1/models (docs/api.md)",
			apierr.Truncate(p.method, 16), apierr.Truncate(p.path, 200)))
	}

	switch p.endpoint {
	case epModels, epModel:
		if p.method != "GET" && p.method != "HEAD" {
			return p.immediate(apierr.WrongMethod("%s is not allowed on %s; use GET", apierr.Truncate(p.method, 16), p.path))
		}
		if p.endpoint == epModels {
			return immediateJSON(200, p.state.modelsFor(p.principal), p.id)
		}
		body, ok := p.state.modelJSON(p.principal, strings.TrimPrefix(p.path, "/v1/models/"))
		if !ok {
			return p.immediate(apierr.NotFound("model_not_found", "model", "the model %q does not exist or is not available to you",
				apierr.Truncate(strings.TrimPrefix(p.path, "/v1/models/"), 128)))
		}
		return immediateJSON(200, body, p.id)
	}

	// Chat completions, embeddings, completions.
	if p.method != "POST" {
		return p.immediate(apierr.WrongMethod("%s is not allowed on %s; use POST", apierr.Truncate(p.method, 16), p.path))
	}
	if h.EndOfStream {
		return p.immediate(apierr.Invalid("invalid_request_body", "", "the request body is empty; send a JSON request"))
	}
	if p.contentLength > p.state.MaxRequestBytes {
		return p.immediate(apierr.TooLarge(p.state.MaxRequestBytes))
	}
	// Clearing the route cache matters when a client sent the routing header:
	// Envoy may have matched a route on it before this filter ran.
	return continueRequestHeaders(&extprocv3.HeaderMutation{RemoveHeaders: remove}, true)
}

// requestBody parses the chat request once, decides, and rewrites the
// request for the chosen provider.
func (p *edge) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if !p.endpoint.routed() {
		return continueRequestBody(nil)
	}
	body := b.Body
	p.bodyPhase, p.reqBody = true, body
	var needs translate.ResponsesNeeds
	if p.endpoint == epResponses {
		// Translated to chat completions for the decision: what is
		// classified is what a translating provider gets, and what only a
		// native provider can take is carried in needs. The provider gets
		// the request itself, or its translation (rewriteFor).
		if err := request.CheckBody(body, "responses"); err != nil {
			return p.immediate(apierr.As(err)) // a duplicate key would be read one way here and another there
		}
		tb, nn, err := translate.ResponsesForDecision(body)
		if err != nil {
			return p.immediate(apierr.As(err))
		}
		body, needs = tb, nn
	}
	send := body // what goes on to the provider (rewritten per provider)
	if p.endpoint == epMessages {
		// Classified and decided as chat completions; the provider gets
		// the Messages request, natively or translated (rewriteFor).
		tb, err := translate.MessagesToChat(body)
		if err != nil {
			return p.immediate(apierr.As(err))
		}
		body = tb
	}
	if p.state.auditRefuses() {
		p.log.Warn("audit log unavailable: request refused (audit.on_store_down: refuse)", zap.String("decision_id", p.id))
		return p.immediate(auditUnavailable())
	}
	if int64(len(body)) > p.state.MaxRequestBytes {
		return p.immediate(apierr.TooLarge(p.state.MaxRequestBytes))
	}
	p.keepContent = p.state.Audit != nil && p.state.AuditContent[p.principal.Workspace]
	start := time.Now()
	res, err := p.state.Router.Route(p.ctx, decision.Request{Path: p.path, Body: body, Principal: p.principal,
		HeaderPolicy: p.headerPolicy, Headers: p.headers, Budgets: p.policyBudgets(),
		DecisionID: p.id, MetadataHeader: p.metadataHdr, PeekBudgets: p.peekBudgets, Limiter: p.state.RouteLimiter,
		Record: p.state.Audit != nil, Needs: needs})
	p.stages.Decide = time.Since(start)
	if res != nil {
		p.result = res
		p.class = res.Class
		t := &res.Timing
		p.stages.Parse, p.stages.Classify, p.stages.Policy, p.stages.Select = t.Parse, t.Classify, t.Policy, t.Select
	}
	if err != nil {
		if res != nil && res.PolicyVersion != "" {
			p.log.Info("refused", zap.String("decision_id", p.id), zap.String("policy_version", res.PolicyVersion),
				zap.String("workspace", res.Workspace), zap.Int("status", apierr.HTTPStatus(apierr.As(err))), zap.String("code", apierr.As(err).Code))
		}
		return p.immediate(apierr.As(err))
	}
	d := res.Selection
	chat := res.Chat
	m := d.Model
	p.selection, p.served = &d, m
	p.wantUsage = chat.IncludeUsage
	// A Messages request's usage comes in its events; the chat request an
	// OpenAI-wire provider gets asks for it (MessagesToChat).
	nb, err := providerNeutral(send, chat.Policy.Exists(), chat.Stream && !chat.IncludeUsage && p.endpoint != epMessages)
	if err == nil && p.endpoint == epResponses {
		// The Responses request goes on as sent, less stellwerk's policy;
		// its chat translation is kept for the providers that need it.
		p.chatBody = nb
		nb, err = providerNeutral(b.Body, chat.Policy.Exists(), false) // the translation keeps policy: it is there iff sent
	}
	if err == nil && p.endpoint == epMessages {
		// The chat translation the decision read is what an OpenAI-wire
		// provider gets (rewriteMessages), less stellwerk's policy.
		p.chatBody, err = providerNeutral(body, chat.Policy.Exists(), false)
	}
	if err != nil {
		p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
		return p.immediate(apierr.Internal())
	}
	plan := []*catalog.Model{m}
	if fo := p.state.Failover; fo != nil {
		plan = d.Plan(fo.MaxAttempts)
	}
	if led := p.state.Ledger; led != nil && (p.state.Limited || p.principal.Limits != nil) {
		start := time.Now()
		resp := p.reserve(led, plan, outputLimit(&chat))
		p.stages.Reserve = time.Since(start)
		if resp != nil {
			return resp
		}
	} else if p.state.readsUsage() {
		p.reservedEUR, _ = worstCase(p.class.InputTokens, plan, outputLimit(&chat)) // the spend row's estimate if no usage comes
	}
	var resp *extprocv3.ProcessingResponse
	if p.state.Failover != nil {
		resp = p.routeWithFailover(plan, b.Body, nb)
	} else {
		resp = p.routeDirect(m, b.Body, nb)
	}
	if resp.GetImmediateResponse() != nil {
		p.release()
		return resp
	}
	p.routedAt = time.Now()
	lvl := zap.InfoLevel
	switch res.Policy.LogLevel { // the policy may raise or lower this request's decision line
	case "debug":
		lvl = zap.DebugLevel
	case "warn":
		lvl = zap.WarnLevel
	}
	if ce := p.log.Check(lvl, "routed"); ce != nil {
		c := &p.class
		ce.Write(zap.String("decision_id", p.id), zap.String("model", m.ID), zap.String("provider", m.Provider.Name),
			zap.Array("plan", modelIDs(p.plan)), // by value: &p.plan would move every edge to the heap
			zap.Bool("stream", chat.Stream), zap.String("reason", d.Reason), zap.String("workspace", res.Workspace),
			zap.String("policy_version", res.PolicyVersion), zap.Int("excluded", len(res.Policy.Exclude)),
			zap.String("task", c.Task), zap.String("complexity", c.Complexity), zap.String("language", c.Language),
			zap.Int("pii", len(c.PII)), zap.Int("secrets", len(c.Secrets)), zap.Float64("injection", c.Injection.Score),
			zap.String("sensitivity", c.Sensitivity), zap.String("risk", c.Risk), zap.Int("input_tokens", c.InputTokens),
			tagsField(res.Policy.Tags))
	}
	return resp
}

// outputLimit is the most output a request asks for, as the budget's
// worst case reads it: -1 for none at all (embeddings), 0 when unset (the
// model's own limit), and the legacy completions' default of 16 tokens,
// per choice.
func outputLimit(c *request.Chat) int {
	switch c.API {
	case request.APIEmbeddings:
		return -1
	case request.APICompletions:
		n := c.MaxTokens
		if n == 0 {
			n = decision.DefaultCompletionTokens
		}
		return n * max(c.Choices, 1)
	}
	return c.MaxTokens
}

// modelIDs logs a plan as its model ids, without building a slice of them.
type modelIDs []*catalog.Model

func (ms modelIDs) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, m := range ms {
		enc.AppendString(m.ID)
	}
	return nil
}

// stringMap logs a map of strings as an object with sorted keys, as
// zap.Any did through encoding/json, without reflection.
type stringMap map[string]string

func (m stringMap) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		enc.AddString(k, m[k])
	}
	return nil
}

// tagsField is the decision's policy tags; no tags at all stay null.
func tagsField(tags map[string]string) zap.Field {
	if tags == nil {
		return zap.Reflect("tags", nil)
	}
	return zap.Object("tags", stringMap(tags))
}

// providerNeutral makes the edits every provider needs: the per-request
// policy is stellwerk's, not the provider's, and stellwerk needs the usage
// of every stream. It returns body itself when nothing changes.
func providerNeutral(body []byte, hasPolicy, askUsage bool) ([]byte, error) {
	var err error
	nb := body
	if hasPolicy {
		nb, err = sjson.DeleteBytes(nb, "policy")
	}
	if err == nil && askUsage {
		nb, err = sjson.SetBytes(nb, "stream_options.include_usage", true)
	}
	return nb, err
}

// routeDirect sends the request to the provider's own cluster (clusters
// mode: the operator's route has no failover).
func (p *edge) routeDirect(m *catalog.Model, orig, body []byte) *extprocv3.ProcessingResponse {
	hs, rm, nb, perr := p.rewriteFor(m, body)
	if perr != nil {
		return p.immediate(perr)
	}
	cluster := m.Provider.Cluster
	if wc := p.state.workspaceCluster(p.workspace, m.Provider.Name); wc != "" {
		cluster = wc // the workspace's own key
	}
	hs = append(hs, setHeader(header.Cluster, cluster))
	return continueRequestBody(bodyChange(hs, rm, orig, nb))
}

// routeWithFailover sends the request to the failover cluster with its
// attempt list. The plan's first model gets the request rewritten here when
// that is a plain edit of the client's body (its provider speaks the
// client's wire format — OpenAI, or Anthropic for a Messages API request —
// has its credential and takes every client header the request kept): its
// egress listener then only follows the answer, which saves that attempt
// two round trips. Every other attempt is rewritten by its egress listener,
// from the client's path (header.Rewritten) and the body sent on.
func (p *edge) routeWithFailover(plan []*catalog.Model, orig, body []byte) *extprocv3.ProcessingResponse {
	p.plan = plan
	p.openAttempts()
	hs := make([]*corev3.HeaderValueOption, 0, 8)
	first := p.plan[0]
	wc := p.state.workspaceCluster(p.workspace, first.Provider.Name)
	// A Responses request translated to chat is not rewritten here: a
	// retry's egress listener must get the Responses request itself. A
	// Messages request is, when its provider speaks Anthropic: the rewrite
	// only renames the model, and a retry's egress listener can rewrite
	// that body for its own provider. A stream whose first model has a
	// first-byte timeout gets it from the egress listener's route for it
	// (header.FirstByte).
	var plain bool
	if p.endpoint == epMessages {
		plain = first.Provider.WireFormat == "anthropic"
	} else {
		plain = first.Provider.WireFormat != "anthropic" && (p.endpoint != epResponses || first.NativeResponses())
	}
	if plain && (first.Provider.HasCredential() || wc != "") {
		if rhs, rm, nb, perr := p.rewriteFor(first, body); perr == nil && len(rm) == 0 {
			hs = append(hs, rhs...)
			if len(p.plan) == 1 {
				// One attempt (a pinned model, or the only eligible one):
				// nothing to fail over to, so no failover cluster and no
				// internal listener, the provider's cluster straight away.
				// The edge sees the attempt's answer or Envoy's error for it,
				// and records it (responseHeaders).
				p.rewrote, p.direct = true, true
				cluster := first.Provider.Cluster
				if wc != "" {
					cluster = wc // the workspace's own key
				}
				hs = append(hs, setHeader(header.Cluster, cluster), setHeader(header.MaxRetries, "0"))
				return continueRequestBody(bodyChange(hs, nil, orig, nb))
			}
			body, p.rewrote = nb, true
			if fc := p.firstCluster(first, wc); fc != "" {
				return p.routeFirstDirect(fc, hs, orig, body)
			}
			hs = append(hs, setHeader(header.Rewritten, p.path))
			if first.FirstByteTimeout > 0 && p.result != nil && p.result.Chat.Stream { // a fallback follows
				hs = append(hs, setHeader(header.FirstByte, strconv.FormatInt(first.FirstByteTimeout.Milliseconds(), 10)))
			}
			if wc != "" {
				hs = append(hs, setHeader(header.Upstream, wc))
			}
		}
	}
	if len(p.state.WorkspaceClusters) > 0 {
		// A retry's egress listener picks the workspace's own key for its
		// provider.
		hs = append(hs, setHeader(header.Workspace, p.workspace))
	}
	hs = append(hs,
		setHeader(header.Cluster, header.FailoverCluster),
		setHeader(header.Plan, encodePlan(p.id, p.plan)),
		// Never more retries than the plan has other providers: beyond it
		// the balancer would have no host, never a provider outside the plan.
		setHeader(header.MaxRetries, strconv.Itoa(len(p.plan)-1)),
	)
	hosts := make([]string, len(p.plan))
	for i, m := range p.plan {
		hosts[i] = header.EgressHost(m.Provider.Name)
	}
	resp := continueRequestBody(bodyChange(hs, nil, orig, body))
	md := new(metadataValues)
	resp.DynamicMetadata = md.object(map[string]*structpb.Value{
		header.MetadataNamespace: md.nest(map[string]*structpb.Value{
			header.HostsKey: md.str(strings.Join(hosts, ",")),
		}),
	})
	return resp
}

// firstCluster is the first-attempt cluster of a plan's first model, when
// its first attempt can go straight to its provider (xds/firstattempt.go):
// the provider's shared credential, a cluster Envoy has, and no first-byte
// timeout to keep. A stream's first-byte timeout needs the egress
// listener's route: Envoy's router has one per-try timeout for all of a
// request's attempts, so the client-facing router cannot give the first
// attempt a shorter one than the last (docs/failover.md). A stream whose
// first model has it off waits for its first byte as long as a JSON
// answer does, so it goes straight too.
func (p *edge) firstCluster(first *catalog.Model, wc string) string {
	f := p.state.Failover
	if f == nil || wc != "" || (p.result != nil && p.result.Chat.Stream && first.FirstByteTimeout > 0) {
		return ""
	}
	return f.First[first.Provider.Name]
}

// routeFirstDirect sends a request the edge rewrote for its plan's first
// model to that model's first-attempt cluster: the first attempt goes to
// the provider's own cluster, each retry through the failover cluster to
// the next egress listener, which gets the plan, the client's path and the
// workspace from dynamic metadata as headers (the first provider never
// sees them). The first attempt's failure reaches stellwerk through the
// client-facing router's upstream log, named by the cluster and the
// request id (upstreamlog.go).
func (p *edge) routeFirstDirect(cluster string, hs []*corev3.HeaderValueOption, orig, body []byte) *extprocv3.ProcessingResponse {
	hs = append(hs, setHeader(header.Cluster, cluster), setHeader(header.MaxRetries, strconv.Itoa(len(p.plan)-1)))
	vals := new(metadataValues)
	md := map[string]*structpb.Value{
		header.PlanKey:      vals.str(encodePlan(p.id, p.plan)),
		header.RewrittenKey: vals.str(p.path),
		header.ModelKey:     vals.str(p.plan[0].ID),
	}
	if len(p.state.WorkspaceClusters) > 0 && p.workspace != "" {
		md[header.WorkspaceKey] = vals.str(p.workspace)
	}
	// The n-th attempt's provider, for the n-th failover cluster's subset
	// balancer (xds/firstattempt.go); every key is there, so the criteria
	// always match the same selector.
	n := p.state.Failover.MaxAttempts
	lb := make(map[string]*structpb.Value, n-1)
	for i := 2; i <= n; i++ {
		v := header.NoAttempt
		if i <= len(p.plan) {
			v = p.plan[i-1].Provider.Name
		}
		lb[header.AttemptKey(i)] = vals.str(v)
	}
	if rid := p.headers["x-request-id"]; rid != "" {
		p.seen.direct(rid, directFirst{decision: p.id, model: p.plan[0].ID})
		p.directID = rid
	}
	resp := continueRequestBody(bodyChange(hs, nil, orig, body))
	resp.DynamicMetadata = vals.object(map[string]*structpb.Value{
		header.MetadataNamespace: vals.nest(md),
		header.LBNamespace:       vals.nest(lb),
	})
	return resp
}

// responseHeaders tells the caller what stellwerk decided, and asks Envoy
// for the body of a successful, unencoded JSON answer so the routing object
// can go into it. Streams (SSE) are never buffered.
func (p *edge) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hs := []*corev3.HeaderValueOption{setHeader(header.DecisionID, p.id)}
	d := p.selection
	if d == nil {
		return continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs})
	}
	rh := readResponseHeaders(h)
	status, ctype, encoding := rh.status, rh.ctype, rh.encoding
	code, _ := strconv.Atoi(status)
	remove := []string{header.Served, header.UpstreamFlags, header.FirstModel, "x-envoy-attempt-count"}
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
			if h.EndOfStream {
				return p.immediate(p.allAttemptsFailed(nil))
			}
			// Read the last provider's error (the egress filter made it
			// OpenAI-shaped) to quote it in stellwerk's answer.
			p.failed = true
			hs = append(hs, setHeader(":status", "503"), setHeader("content-type", "application/json"),
				setHeader(header.Model, p.served.ID), setHeader(header.Provider, p.served.Provider.Name),
				setHeader(header.Attempts, strconv.Itoa(len(p.attempts))))
			resp := continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs, RemoveHeaders: append(remove, "content-encoding")})
			resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
			return resp
		}
	}
	m := p.served
	hs = append(hs,
		setHeader(header.Model, m.ID),
		setHeader(header.Provider, m.Provider.Name),
		setHeader(header.Reason, p.reason()),
		setHeader(header.PolicyVersion, p.result.PolicyVersion),
	)
	if o := p.result.Route; o != nil {
		hs = append(hs, setHeader(header.Route, o.Label()))
	}
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
	resp := continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs, RemoveHeaders: remove})
	p.respStatus = status
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "text/event-stream") && !h.EndOfStream &&
		(encoding == "" || encoding == "identity") {
		// Follow the stream (event by event, never buffered whole) for its usage.
		p.stream = &streamState{hideUsage: !p.wantUsage, checkEnd: true}
		if p.keepContent {
			p.stream.answer = &strings.Builder{}
		}
		switch {
		case p.endpoint == epResponses && p.anthropic: // Anthropic events → chat chunks → Responses events
			p.stream.conv = translate.NewAnthropicResponsesStream()
		case p.anthropic:
			p.stream.conv = translate.NewAnthropicStream(p.wantUsage)
		case p.endpoint == epResponses && m.NativeResponses(): // passed through, read in place
			p.stream.native = translate.NewResponsesFollower()
		case p.endpoint == epResponses:
			p.stream.conv = translate.NewResponsesStream()
		case p.fromChat:
			p.stream.conv = translate.NewMessagesStream()
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
	if p.plan == nil && code >= 400 && !strings.HasPrefix(ctype, "application/json") && !strings.HasPrefix(ctype, "text/event-stream") {
		// Envoy's own text replies (provider unreachable, no cluster) and
		// providers' non-JSON errors get the OpenAI error shape; with
		// failover the egress listener's local reply config does this.
		if h.EndOfStream {
			return p.immediate(apierr.ProviderError(code))
		}
		p.reshape = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
		resp.GetResponseHeaders().GetResponse().GetHeaderMutation().SetHeaders = append(hs, setHeader("content-type", "application/json"))
		resp.GetResponseHeaders().GetResponse().GetHeaderMutation().RemoveHeaders = append(remove, "content-encoding")
		return resp
	}
	if p.plan == nil && len(status) == 3 && status[0] == '2' && !p.routedAt.IsZero() {
		// Time to the provider's first bytes: what the latency objective
		// and sla_ms compare (streams: first chunk; JSON: the whole answer).
		// With failover, each egress attempt measures its own provider.
		p.state.Router.Latency.Observe(m.ID, strings.HasPrefix(ctype, "text/event-stream"), time.Since(p.routedAt))
	}
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "application/json") &&
		(encoding == "" || encoding == "identity") && !h.EndOfStream {
		p.addRouting = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	return resp
}

// allAttemptsFailed is the answer when every provider of the plan failed
// before its answer started: which were tried, why, and that no other model
// was allowed. A request never reaches a model outside its decision.
// providerErr is the last provider's answer, quoted when it is an error.
func (p *edge) allAttemptsFailed(providerErr []byte) *apierr.Error {
	if msg := gjson.GetBytes(providerErr, "error.message"); msg.Type == gjson.String && msg.Str != "" && len(p.attempts) > 0 {
		last := &p.attempts[len(p.attempts)-1]
		last.Reason += ": " + apierr.Truncate(msg.Str, 200)
	}
	excluded := ""
	if r := p.result; r != nil && len(r.Policy.Exclude) > 0 {
		excluded = fmt.Sprintf("; %d other models are excluded by policy", len(r.Policy.Exclude))
		if c := r.Constraint; c != "" {
			excluded += " (" + c + ")"
		}
	}
	p.log.Warn("all attempts failed", zap.String("decision_id", p.id), zap.Any("attempts", p.attempts))
	p.status, p.errCode = 503, "no_eligible_model"
	return apierr.Unavailable("no_eligible_model", "every model this request may use failed: %s%s", summarizeAttempts(p.attempts), excluded)
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
	if (!p.addRouting && !p.translate) || !b.EndOfStream {
		return continueResponseBody()
	}
	body := b.Body
	if p.translate {
		p.translate = false
		body = p.translateAnswer(body)
		if !p.addRouting {
			return replaceResponseBody(body)
		}
	}
	p.addRouting = false
	if !gjson.ValidBytes(body) || !isObject(body) {
		return replaceResponseBody(body)
	}
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
	if charged && (p.reservation != nil || p.state.readsUsage()) {
		p.settle(c, spend.Served)
	}
	var cp *meter.Charge
	if charged {
		cp = &c
	}
	ro := p.routing(cp)
	if p.endpoint == epResponses && !native {
		rb, err := translate.ChatToResponse(body)
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
