package extproc

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/request"
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
	epCountTokens // /v1/messages/count_tokens: answered by stellwerk, no provider
	epFeedback    // /v1/feedback: a vote on an answer, kept by stellwerk
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
	// overlong: a JSON answer without usage counted past what its model
	// can write (estimatedCharge): no answer of the model's.
	overlong bool

	principal    auth.Principal
	headerPolicy string // x-stellwerk-policy as sent
	metadataHdr  string // x-stellwerk-metadata as sent
	clientAddr   string // the address the client connected from, as Envoy saw it
	// providerRequestID is the served answer's own request id (OpenAI's
	// x-request-id, Anthropic's request-id), for the audit record.
	providerRequestID string
	headers           map[string]string // client headers the policy may read
	// sent are the client headers with text a provider gets (classified
	// with the body), in sentBuf for the usual few.
	sent    []classify.Header
	sentBuf [3]classify.Header

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
	addRouting              bool          // the response is JSON the routing object goes into
	partial                 bool          // a JSON answer too large for Envoy's buffer passed on in parts
	routedAt                time.Time     // when the request left for the provider
	logLevel                zapcore.Level // the routed line's (the policy's log_level), and its stream finished line's
	wantUsage               bool          // the client asked for the stream's usage chunk

	// Failover (standalone mode): the attempt list, and what happened to
	// each attempt.
	plan []*catalog.Model
	// planNote says what the limits changed in the decision's plan (models
	// a rate limit moved the request past, fallbacks a budget left out),
	// for the reason; empty when they changed nothing.
	planNote string
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
	// scrubError: a provider's JSON error, read whole to take out a
	// credential it echoes.
	scrubError bool

	// The request's hold on its budgets and rate limits, until settled.
	reservation *ledger.Reservation
	// out is the most the request asks each model to write (its worst
	// case, for a charge without usage).
	out output
	// broken: the provider's 2xx was no answer (empty, not a JSON
	// object); the client got 502 and nothing is charged.
	broken   bool
	recorded bool // the request's spend row went to the recorder
	// unsettled is a charge made (settle) whose spend row and ledger
	// settlement wait until the answer that shows it has gone (afterSend).
	unsettled settlement
	ending    bool // finish runs: nothing more is sent, settle writes at once
	reshape   bool // a non-JSON error answer becomes an OpenAI-shaped one

	// The audit record's facts that nothing else keeps (audit.go).
	// contentLength is the request's declared length, -1 without one.
	contentLength int64
	encoded       string       // the request body's content-encoding, when not identity
	arrived       time.Time    // when the request headers came (the audit record's time, a route's latency)
	bodyPhase     bool         // a chat request reached the body phase, or was refused from its headers: it gets a record
	audited       bool         // its record was handed over
	reqBody       []byte       // the body as received, for the writer to fingerprint
	charge        meter.Charge // what settle charged
	charged       bool
	status        int    // stellwerk's own answer's status (0: the provider's answer went through)
	errCode       string // and its error code
	streamEnd     string // how a followed stream ended (complete, incomplete, interrupted, timed_out)
	streamBroken  string // how its provider broke it off after it started, "" when it did not (streamHealth)
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

// hostAllowed reports whether an :authority names the gateway by an IP
// address (a rebinding page sends its own name, never one) or by one of
// hosts, case-insensitively, a final dot aside; a port must be digits.
func hostAllowed[T string | []byte](v T, hosts []string) bool {
	h := string(v) // only compared and sliced: no allocation (TestHeaderChecksAllocateNothing)
	port := ""
	if strings.HasPrefix(h, "[") { // [::1]:10000
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		h, port = h[1:end], h[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h, port = h[:i], h[i:]
	}
	if port != "" {
		if len(port) == 1 {
			return false
		}
		for _, c := range port[1:] {
			if c < '0' || c > '9' {
				return false // localhost:1.evil.example
			}
		}
	}
	if isIPv4(h) {
		return true
	}
	if strings.IndexByte(h, ':') >= 0 {
		// IPv6, only in brackets: parsed from a copy, so that the common
		// case does not put h on the heap (the parser's errors hold it).
		_, err := netip.ParseAddr(strings.Clone(h))
		return err == nil
	}
	h = strings.TrimSuffix(h, ".")
	for _, a := range hosts {
		if strings.EqualFold(h, a) {
			return true
		}
	}
	return false
}

// isIPv4 reports whether s is a dotted-quad IPv4 address, as netip reads
// one (four decimal parts up to 255, no leading zeros).
func isIPv4(s string) bool {
	parts := 0
	for len(s) > 0 {
		i := strings.IndexByte(s, '.')
		part := s
		if i >= 0 {
			part, s = s[:i], s[i+1:]
			if s == "" {
				return false // a final dot
			}
		} else {
			s = ""
		}
		if len(part) == 0 || len(part) > 3 || (len(part) > 1 && part[0] == '0') {
			return false
		}
		n := 0
		for _, c := range part {
			if c < '0' || c > '9' {
				return false
			}
			n = n*10 + int(c-'0')
		}
		if n > 255 {
			return false
		}
		parts++
	}
	return parts == 4
}

// jsonMediaType reports whether a content-type names JSON in UTF-8:
// application/json or application/…+json, parameters allowed, a charset
// only utf-8. Envoy joins two content-type headers with a comma, which no
// media type holds.
func jsonMediaType[T string | []byte](v T) bool {
	s := string(v) // only compared and sliced: no allocation (TestHeaderChecksAllocateNothing)
	typ, params, _ := strings.Cut(s, ";")
	typ = strings.TrimSpace(typ)
	if len(typ) < len("application/json") || !strings.EqualFold(typ[:len("application/")], "application/") ||
		!(strings.EqualFold(typ, "application/json") || strings.HasSuffix(strings.ToLower(typ), "+json")) || strings.ContainsAny(typ, ", ") {
		return false
	}
	for params != "" {
		var param string
		param, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(param, "=")
		if strings.EqualFold(strings.TrimSpace(name), "charset") && !strings.EqualFold(strings.Trim(strings.TrimSpace(value), `"`), "utf-8") {
			return false
		}
	}
	return true
}

// namesModel reports whether a request's model names one model (an id or
// an alias), not auto or a route, which leave the model to stellwerk.
func namesModel(model string) bool {
	return model != decide.Auto && !strings.HasPrefix(model, request.RoutePrefix)
}

// credentialToken is the key a credential header carries: its value, the
// scheme of an authorization header ("Bearer ") dropped.
func credentialToken(v string) string {
	v = strings.TrimSpace(v)
	switch {
	case strings.EqualFold(v, "bearer"):
		return ""
	case len(v) >= 7 && strings.EqualFold(v[:7], "bearer "):
		return strings.TrimSpace(v[7:])
	}
	return v
}

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

// timeoutSlack is how much earlier than envoy.request_timeout a stream's
// end still reads as Envoy's cut: Envoy starts the clock when the request
// arrives, a little before stellwerk does.
const timeoutSlack = 250 * time.Millisecond

// finish ends the edge's stream, whatever became of the request: its
// attempt entry goes, and a stream that ended before its answer did (the
// client went away, or the provider broke off) still gets its usage
// recorded, as an estimate.
func (p *edge) finish() {
	p.afterSend() // an answer whose send failed still settles
	p.ending = true
	p.leftDuringAttempts()
	p.takeAttempts(0)
	if p.directID != "" {
		p.seen.directDone(p.directID)
	}
	how := "interrupted"
	if p.stream != nil && time.Since(p.arrived) >= p.state.uploadLimit()-timeoutSlack {
		// Envoy cut it at envoy.request_timeout: the client did not go
		// away, and was told nothing either (the HTTP probe).
		how = "timed_out"
	}
	p.finishStream(how)
	p.bodyBroke()
	p.endReservation()
	p.countRoute()
	p.audit()
	p.observe()
}

// bodyBroke counts a JSON success whose body never came whole (the
// provider closed short of its Content-Length, or dripped it until
// envoy.request_timeout) against the provider: answerHealth otherwise
// runs only for a whole body, and such a provider never cooled (the
// hostile-upstream probe). A body passed on in parts counted already.
func (p *edge) bodyBroke() {
	if p.addRouting && !p.partial && !p.broken && p.served != nil {
		p.answerHealth("its answer broke off after its headers")
	}
}

// leftDuringAttempts reads the attempts of a request with failover whose
// client left before any answer: those the log has are what they were (a
// provider's 500), and the one under way, the last, was abandoned. The
// first provider's failure read as abandoned, and the second went
// unrecorded (the red team of 2026-12-07).
func (p *edge) leftDuringAttempts() {
	if len(p.attempts) > 0 || p.respStatus != "" || p.status != 0 || p.routedAt.IsZero() || len(p.plan) < 2 {
		return
	}
	seen := p.takeAttempts(0) // one slot per plan entry, "" where none was recorded
	n := len(seen)
	for n > 0 && seen[n-1].Outcome == "" {
		n--
	}
	if n == 0 || seen[n-1].Outcome != outcomeAbandoned {
		n++ // the one under way has no record yet
	}
	p.attempts = attemptsFor(p.plan, n, -1, 0, seen)
	if last := &p.attempts[len(p.attempts)-1]; last.Outcome != outcomeAbandoned && last.Status == 0 {
		last.Outcome, last.Reason = outcomeAbandoned, reasonAbandoned
	}
	// The provider that has the prompt, charged for it (endReservation).
	p.served = p.plan[len(p.attempts)-1]
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
	hs := errorHeaders(e, pv)
	if p.anthropicErrors {
		hs = append(hs, setHeader(header.AnthropicRequestID, p.id))
	}
	resp := immediateJSON(p.status, p.errorJSON(e), p.id, hs...)
	if p.result != nil {
		m := resp.GetImmediateResponse().Headers
		m.SetHeaders = p.routeHeaders(m.SetHeaders)
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

// endpointOf is the endpoint a path (without its query) names, epUnknown
// for none.
func endpointOf(path string) endpoint {
	switch {
	case path == request.PathChat:
		return epChat
	case path == request.PathEmbeddings:
		return epEmbeddings
	case path == request.PathCompletions:
		return epCompletions
	case path == request.PathResponses:
		return epResponses
	case path == request.PathMessages:
		return epMessages
	case path == request.PathCountTokens:
		return epCountTokens
	case path == PathFeedback:
		return epFeedback
	case path == "/v1/models":
		return epModels
	case strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		return epModel
	}
	return epUnknown
}

func unknownURL(method, path string) *apierr.Error {
	return apierr.NotFound("unknown_url", "", "unknown request URL: %s %s; stellwerk serves POST /v1/chat/completions, /v1/responses, /v1/messages, /v1/messages/count_tokens, /v1/embeddings, /v1/completions and /v1/feedback and GET /v1/models (docs/api.md)",
		apierr.Truncate(method, 16), apierr.Truncate(path, 200))
}

// checkRoute fails closed when an LLM request in an operator's Envoy matched
// another route than stellwerk's: after stellwerk's answer it would leave
// for that route's backend. The client learns nothing of the routes. A
// path stellwerk serves is the operator's mistake (logged); another one
// the filter runs on (/V1/…, /v1%2F…: its matcher takes any case and an
// escaped slash, which a backend may decode) is an unknown URL, as it is
// on stellwerk's own route.
func (p *edge) checkRoute(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	name := req.GetAttributes()[header.ExtProcAttributes].GetFields()[header.RouteNameAttribute].GetStringValue()
	if name == header.DropInRoute || name == header.DropInRoutedRoute {
		return nil // the second: a client sent the routing header, which the edge removes
	}
	var method, path string
	for _, hv := range req.GetRequestHeaders().GetHeaders().GetHeaders() {
		switch hv.Key {
		case ":method":
			method = headerValue(hv)
		case ":path":
			path = headerValue(hv)
		}
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if endpointOf(path) == epUnknown {
		return p.immediate(unknownURL(method, path))
	}
	if ok, n := p.state.misrouted.Allow(); ok {
		p.log.Error("request matched another route than stellwerk's; refused (put the stellwerk route first and keep request_attributes: [xds.route_name], docs/envoy.md)",
			zap.String("decision_id", p.id), zap.String("route", apierr.Truncate(name, 128)), zap.Int64("requests", n))
	}
	return p.immediate(apierr.Misrouted())
}

// requestHeaders strips headers a client must not set, answers what needs no
// provider (model listing, unknown paths) and admits chat requests to the
// body phase.
func (p *edge) requestHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	p.contentLength = -1
	hvs := h.GetHeaders().GetHeaders()
	remove := append(make([]string, 0, 1+len(hvs)), header.Cluster)
	var credential, token string   // the credential header read, and the key it names
	ambiguous := false             // two credential headers that name different keys
	policies, metadatas := 0, 0    // x-stellwerk-policy and -metadata headers sent
	ctypes, jsonBody := 0, false   // content-type headers sent; the last names JSON
	plainJSON := false             // it is application/json as such
	hostOK := p.state.Hosts == nil // the client named the gateway by a host it answers to
	p.sent = p.sentBuf[:0]
	for _, hv := range hvs {
		k := strings.ToLower(hv.Key)
		val := "" // the header's value, when a case below read it
		switch {
		case k == ":method":
			p.method = headerValue(hv)
		case k == ":path":
			p.path = headerValue(hv)
		case k == "content-length":
			if n, err := strconv.ParseInt(headerValue(hv), 10, 64); err == nil && n >= 0 {
				p.contentLength = n
			}
		case k == "content-encoding":
			if v := headerValue(hv); v != "" && !strings.EqualFold(v, "identity") {
				p.encoded = v
			}
		case isClientAuth(k):
			// Envoy joins a header sent twice with commas ("Bearer A,
			// Bearer B"), which no key contains: each part is a
			// credential of its own. Read whole, two keys were one
			// unknown key, the anonymous principal in open mode (a
			// workspace's residency rule left behind: the HTTP probe).
			for v := range strings.SplitSeq(headerValue(hv), ",") {
				t := credentialToken(v)
				if t == "" {
					continue // an empty header, or a scheme without a key, says nothing
				}
				ambiguous = ambiguous || (token != "" && t != token)
				if credential == "" || k == "authorization" {
					credential, token = v, t
				}
			}
		case k == header.ExternalAddress:
			// Envoy's own (use_remote_address): the address the client
			// connected from. The route strips it from what providers get.
			// An operator's Envoy may pass a client's own on (the drop-in
			// without use_remote_address): only an address is kept.
			if v := headerValue(hv); len(v) <= 64 {
				if _, err := netip.ParseAddr(v); err == nil {
					p.clientAddr = v
				}
			}
		case k == ":authority" && p.state.Hosts != nil:
			if len(hv.RawValue) > 0 {
				hostOK = hostAllowed(hv.RawValue, p.state.Hosts)
			} else {
				hostOK = hostAllowed(hv.Value, p.state.Hosts)
			}
		case k == "content-type":
			ctypes++
			if len(hv.RawValue) > 0 {
				jsonBody, plainJSON = jsonMediaType(hv.RawValue), string(hv.RawValue) == "application/json"
			} else {
				jsonBody, plainJSON = jsonMediaType(hv.Value), hv.Value == "application/json"
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
			val = headerValue(hv)
			p.headers[k] = apierr.Truncate(val, 256)
		case k == "accept-encoding":
			continue // replaced: identityEncoding
		case header.IsInternal(k):
			switch k {
			case header.Policy:
				p.headerPolicy = headerValue(hv)
				policies++
			case header.Metadata:
				p.metadataHdr = headerValue(hv)
				metadatas++
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
				p.sent = append(p.sent, classify.Header{Name: k, Value: headerValue(hv)})
			} else {
				remove = append(remove, k)
			}
		} else if header.FreeText(k) {
			if val == "" {
				val = headerValue(hv)
			}
			p.sent = append(p.sent, classify.Header{Name: k, Value: val})
		}
	}
	if i := strings.IndexByte(p.path, '?'); i >= 0 {
		p.path = p.path[:i]
	}
	// Anthropic's SDKs read errors in Anthropic's shape, the key's refusal
	// and an unserved /v1/messages/… (count_tokens, batches) too.
	p.anthropicErrors = strings.HasPrefix(p.path, request.PathMessages) &&
		(len(p.path) == len(request.PathMessages) || p.path[len(request.PathMessages)] == '/')
	if policies > 1 || metadatas > 1 {
		// The last would win: a policy a gateway in front adds could be
		// undone by the client's own.
		name, param := header.Policy, "policy"
		if metadatas > 1 {
			name, param = header.Metadata, "metadata"
		}
		return p.immediate(apierr.Invalid("invalid_"+param, param, "the request sends %s more than once; send it once", name))
	}
	if !hostOK {
		// A page that points its own name at the gateway's address (DNS
		// rebinding) is same-origin with it: in open mode it could read
		// the answers stellwerk pays for (the HTTP probe).
		return p.immediate(apierr.Denied("host_not_allowed", "", "this gateway does not answer to the host this request names (envoy.hosts, docs/security.md)"))
	}
	if ambiguous {
		// Reading one and dropping the other could turn a revoked or
		// stricter key into another principal (the anonymous one, in open
		// mode): refused, whichever is valid.
		return p.immediate(apierr.Unauthenticated("the request sends different keys in authorization, x-api-key or api-key; send one"))
	}
	principal, err := p.state.Keys.Authenticate(credential)
	if err != nil {
		if principal.KeyID != "" {
			p.state.refusedKey(p.log, principal.KeyID, p.clientAddr, err)
		}
		return p.immediate(apierr.Unauthenticated("a valid stellwerk API key is required (Authorization: Bearer <key>, or x-api-key)"))
	}
	p.principal = principal
	p.workspace = principal.Workspace

	if p.endpoint = endpointOf(p.path); p.endpoint == epUnknown {
		return p.immediate(unknownURL(p.method, p.path))
	}

	switch p.endpoint {
	case epModels, epModel:
		if p.method != "GET" && p.method != "HEAD" {
			e := apierr.WrongMethod("%s is not allowed on %s; use GET", apierr.Truncate(p.method, 16), p.path)
			e.Allow = "GET, HEAD"
			return p.immediate(e)
		}
		if p.endpoint == epModels {
			return immediateJSON(200, p.state.modelsFor(p.principal), p.id, modelsCaching...)
		}
		// The SDKs escape the id as a path segment: groq/llama-3 arrives as
		// groq%2Fllama-3.
		id := strings.TrimPrefix(p.path, "/v1/models/")
		if u, err := url.PathUnescape(id); err == nil {
			id = u
		}
		body, ok := p.state.modelJSON(p.principal, id)
		if !ok {
			return p.immediate(apierr.NotFound("model_not_found", "model", "the model %q does not exist or is not available to you",
				apierr.Truncate(id, 128)))
		}
		return immediateJSON(200, body, p.id, modelsCaching...)
	}

	// Chat completions, embeddings, completions.
	if p.method != "POST" {
		e := apierr.WrongMethod("%s is not allowed on %s; use POST", apierr.Truncate(p.method, 16), p.path)
		e.Allow = "POST"
		return p.immediate(e)
	}
	var refused *apierr.Error
	switch {
	case h.EndOfStream:
		refused = apierr.Invalid("invalid_request_body", "", "the request body is empty; send a JSON request")
	case p.encoded != "":
		// A compressed body cannot be classified as sent: refused by name
		// rather than as JSON it is not.
		refused = apierr.Invalid("unsupported_content_encoding", "",
			"request bodies must not be compressed (content-encoding: %s); send the JSON uncompressed", apierr.Truncate(p.encoded, 32))
	case p.contentLength > p.state.MaxRequestBytes:
		refused = apierr.TooLarge(p.state.MaxRequestBytes)
	case ctypes != 1 || !jsonBody:
		// A browser sends a cross-site POST without asking first (a CORS
		// preflight) only as text/plain, a form or with no type: any web
		// page a user opened could spend an open gateway's budgets (the
		// HTTP probe). The provider would also be told the body is
		// something stellwerk did not read it as.
		refused = apierr.UnsupportedMedia("the request body must be sent as JSON: Content-Type: application/json (UTF-8)")
	}
	if refused != nil {
		// Refused from its headers, a request still gets its record, as one
		// refused from its body does: what was known (no record had a 413).
		p.bodyPhase = true
		return p.immediate(refused)
	}
	set := identityEncoding
	if !plainJSON {
		// The provider is told what stellwerk read: JSON in UTF-8, not
		// application/vnd.…+json or a charset parameter a strict server
		// refuses after the budget was held (the HTTP probe).
		set = plainJSONHeaders
	}
	// Clearing the route cache matters when a client sent the routing header:
	// Envoy may have matched a route on it before this filter ran.
	return continueRequestHeaders(&extprocv3.HeaderMutation{SetHeaders: set, RemoveHeaders: remove}, true)
}

// identityEncoding asks every provider for an uncompressed answer:
// stellwerk reads each one (usage, credentials echoed, translation). The
// client's accept-encoding was only removed, and without the header a
// server (a CDN, an egress proxy) may compress: a gzipped Anthropic answer
// reached anthropic-SDK clients as a 200 with no text (the provider-wire
// probe). Shared by every request, never changed.
var identityEncoding = []*corev3.HeaderValueOption{setHeader("accept-encoding", "identity")}

// modelsCaching keeps a shared cache from giving one key's model list to
// another: the list depends on the key (the HTTP probe).
var modelsCaching = []*corev3.HeaderValueOption{setHeader("cache-control", "private, no-cache"),
	setHeader("vary", "authorization, x-api-key, api-key")}

// plainJSONHeaders are identityEncoding and the content-type every
// provider is sent, for a request that named JSON another way.
var plainJSONHeaders = []*corev3.HeaderValueOption{setHeader("accept-encoding", "identity"), setHeader("content-type", "application/json")}

// requestBody parses the chat request once, decides, and rewrites the
// request for the chosen provider.
func (p *edge) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	switch p.endpoint {
	case epCountTokens:
		return p.countTokens(b.Body)
	case epFeedback:
		return p.vote(b.Body)
	}
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
	unread := needs.Unread
	if p.endpoint == epMessages {
		// Classified and decided as chat completions; the provider gets
		// the Messages request, natively or translated (rewriteFor). What
		// only an Anthropic-wire provider can take keeps it to those.
		tb, names, ur, native, err := translate.MessagesForDecision(body)
		if err != nil {
			return p.immediate(apierr.As(err))
		}
		body, p.toolNames, unread, needs.Native = tb, names, ur, native
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
		DecisionID: p.id, MetadataHeader: p.metadataHdr, Sent: p.sent, PeekBudgets: p.peekBudgets, Limiter: p.state.RouteLimiter,
		Record: p.state.Audit != nil, Needs: needs})
	p.stages.Decide = time.Since(start)
	if res != nil {
		p.result = res
		p.class = res.Class
		t := &res.Timing
		p.stages.Parse, p.stages.Classify, p.stages.Policy, p.stages.Select = t.Parse, t.Classify, t.Policy, t.Select
	}
	if err != nil {
		e := apierr.As(err)
		if res != nil && res.PolicyVersion != "" {
			p.log.Info("refused", zap.String("decision_id", p.id), zap.String("key_id", p.principal.KeyID), zap.String("policy_version", res.PolicyVersion),
				zap.String("workspace", res.Workspace), zap.Int("status", apierr.HTTPStatus(e)), zap.String("code", e.Code))
		}
		return p.immediate(e)
	}
	d := res.Selection
	chat := res.Chat
	m := d.Model
	p.selection, p.served = &d, m
	p.asked, p.askedRead = chat.MaxTokens, true
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
	if err == nil && unread {
		// What the classifiers read of the request as sent is no part of
		// its translation.
		p.chatBody, err = sjson.DeleteBytes(p.chatBody, translate.UnreadMember)
	}
	if err != nil {
		p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
		return p.immediate(apierr.Internal())
	}
	plan := []*catalog.Model{m}
	if fo := p.state.Failover; fo != nil {
		plan = d.Plan(fo.MaxAttempts)
	}
	p.out = outputLimit(&chat)
	p.out.cacheWrites = request.CacheMarks(p.reqBody)
	if chat.API == request.APIMessages {
		p.out.webSearches = request.WebSearches(p.reqBody)
	}
	p.out.opaque = opaquePrompt(&chat, p.out, p.reqBody)
	if led := p.state.Ledger; led != nil && (p.state.Limited || p.principal.Limits != nil) {
		start := time.Now()
		held, resp := p.reserve(led, plan, p.out, !namesModel(chat.Model))
		p.stages.Reserve = time.Since(start)
		if resp != nil {
			return resp
		}
		if held[0] != m { // a rate limit moved the request down its plan
			m = held[0]
			p.served = m
		}
		plan = held
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
	p.logLevel = zap.InfoLevel
	switch res.Policy.LogLevel { // the policy may raise or lower this request's decision lines
	case "debug":
		p.logLevel = zap.DebugLevel
	case "warn":
		p.logLevel = zap.WarnLevel
	}
	if ce := p.log.Check(p.logLevel, "routed"); ce != nil {
		c := &p.class
		ce.Write(zap.String("decision_id", p.id), zap.String("key_id", p.principal.KeyID), zap.String("model", m.ID), zap.String("provider", m.Provider.Name),
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

// countTokens answers /v1/messages/count_tokens itself, as Anthropic's API
// does, with stellwerk's estimate of the request's input tokens: the
// prompt's as the budgets read it, and each image at the named model's
// image_tokens bound (the default bound for auto or a route). Coding
// agents (Claude Code) ask it every turn to manage their context window,
// and got 404. Nothing goes to a provider, nothing is charged or counted
// against a rate limit, and no decision is made, so none is recorded.
func (p *edge) countTokens(body []byte) *extprocv3.ProcessingResponse {
	if err := request.CheckBody(body, "messages"); err != nil {
		return p.immediate(apierr.As(err))
	}
	chat, err := translate.MessagesCountForDecision(body)
	if err != nil {
		return p.immediate(apierr.As(err))
	}
	model := gjson.GetBytes(chat, "model").Str
	perImage := config.DefaultImageTokens
	if namesModel(model) {
		m, ok := p.state.usable(p.principal, model)
		if !ok {
			return p.immediate(apierr.NotFound("model_not_found", "model", "the model %q does not exist or is not available to you",
				apierr.Truncate(model, 128)))
		}
		perImage = m.ImageTokens
	}
	// A PDF is counted by its pages, each its text and its image
	// (Anthropic's way), read once with the decision copy, as the budgets
	// hold it; it counted nothing, so an agent reading a long PDF thought
	// its context nearly empty (the multimodal probe).
	tokens, images, pages, err := p.state.Router.CountTokens(request.APIMessages, chat, p.principal)
	if err != nil {
		return p.immediate(apierr.As(err))
	}
	// Like a model listing, a count is not a request the metrics count
	// (an agent asks one each turn); a refused one is.
	return immediateJSON(200, fmt.Appendf(nil, `{"input_tokens":%d}`, tokens+images*perImage+catalog.PDFTokens(pages, perImage)), p.id,
		setHeader(header.AnthropicRequestID, p.id))
}

// outputLimit is the most output a request asks for, as the budget's
// worst case reads it: -1 for none at all (embeddings), 0 when unset (the
// model's own limit), and the legacy completions' default of 16 tokens,
// per choice.
func outputLimit(c *request.Chat) output {
	switch c.API {
	case request.APIEmbeddings:
		return output{perChoice: -1, choices: 1}
	case request.APICompletions:
		n := c.MaxTokens
		if n == 0 {
			n = decision.DefaultCompletionTokens
		}
		return output{perChoice: n, choices: max(c.Choices, 1)}
	}
	return output{perChoice: c.MaxTokens, choices: max(c.Choices, 1), images: c.Images, pages: c.PDFPages, uncounted: c.PDFUncounted}
}

// output is what a request asks a model to write: up to perChoice tokens
// (0: the model's own limit, -1: nothing, an embedding) for each of its
// choices (n), each billed; and the images and inline PDF pages it sends,
// which the prompt's token estimate does not count (uncounted: a PDF
// whose pages could not be counted).
type output struct {
	perChoice, choices, images, pages int
	uncounted                         bool
	// cacheWrites is what the request marks for the provider's prompt
	// cache (request.CacheMarks): its prompt may be billed at a cache
	// write's price, above the input price.
	cacheWrites int
	// webSearches is the most searches the provider's own web search tool
	// may run for the request (request.WebSearches), each billed.
	webSearches int
	// opaque: the prompt a provider bills may hold what the body does not
	// (opaquePrompt), so its count is bounded by the context window, not
	// the body (plausibleUsage).
	opaque bool
}

// opaquePrompt reports whether a provider may bill c a prompt its body does
// not hold: media (counted apart), a file by id, a stored response it
// continues, a built-in or server tool whose results the provider adds to
// the prompt (web search, file search, MCP, code execution): whatever the
// translation to chat cannot carry, or only a native provider serves.
func opaquePrompt(c *request.Chat, o output, body []byte) bool {
	return o.images > 0 || o.pages > 0 || o.uncounted || o.webSearches > 0 || c.Vision || c.Audio || c.Files || c.FileByID ||
		c.Stored || c.NativeOnly != "" || c.OpenAIWireOnly != "" ||
		c.API == request.APIMessages && (bytes.Contains(body, []byte(`"mcp_servers"`)) || bytes.Contains(body, []byte(`"container"`)) || serverTools(gjson.GetBytes(body, "tools")))
}

// serverTools reports whether a Messages API request offers a tool the
// provider runs (one with a type other than custom: web search, code
// execution, bash, …).
func serverTools(tools gjson.Result) bool {
	server := false
	tools.ForEach(func(_, t gjson.Result) bool {
		ty := t.Get("type")
		server = ty.Exists() && ty.Str != "custom" && ty.Str != "function"
		return !server
	})
	return server
}

// searches is how many of the n web searches a provider reported are
// charged: at most twice what the request allowed (Anthropic runs no more
// than max_uses; a tool without one is held at request.DefaultWebSearches),
// none for a request that offered no search tool. A provider's count is
// not believed beyond: 10^12 searches on a stream without a tool were
// charged 9.2 billion EUR (the red-team probe).
func (o output) searches(n int) int { return min(max(n, 0), 2*o.webSearches) }

// media is the most o's images and inline PDFs may cost on m.
func (o output) media(m *catalog.Model) int { return m.MediaTokens(o.images, o.pages, o.uncounted) }

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
