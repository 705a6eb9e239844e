package extproc

import (
	"context"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3conf "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/route"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// endpoint is what a request path asks for.
type endpoint int

const (
	epUnknown endpoint = iota
	epChat
	epModels
	epModel
)

// processor holds one HTTP request's state across its ext_proc phases.
type processor struct {
	state *State
	log   *zap.Logger
	id    string
	ctx   context.Context

	principal    auth.Principal
	headerPolicy string            // x-stellwerk-policy as sent
	headers      map[string]string // client headers the policy may read

	method   string
	path     string // without the query
	query    string // including the leading '?', or empty
	endpoint endpoint

	decision *decide.Decision // set once the body phase routed the request
	class    classify.Result  // the request's classification, with the decision
	result   *route.Result    // the whole decision, for the routing object

	overhead   time.Duration // time spent deciding, across the request phases
	addRouting bool          // the response is JSON the routing object goes into
	routedAt   time.Time     // when the request left for the provider
	stream     *streamState  // set for a streamed (SSE) answer
	wantUsage  bool          // the client asked for the stream's usage chunk
	anthropic  bool          // the provider speaks Anthropic's Messages API
	translate  bool          // the JSON answer must be translated back to OpenAI
	respStatus string        // the provider's :status
}

// clientAuthHeaders are the client's credentials for stellwerk. They must
// never reach a provider, whether or not the provider needs a key.
var clientAuthHeaders = []string{"authorization", "api-key", "x-api-key"}

func (p *processor) handle(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return p.requestHeaders(r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return p.requestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return p.responseHeaders(r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		if p.stream != nil {
			return p.streamBody(r.ResponseBody)
		}
		return p.responseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	default:
		p.log.Warn("unexpected ext_proc message", zap.String("decision_id", p.id))
		return p.immediate(apierr.Internal())
	}
}

// requestHeaders strips headers a client must not set, answers what needs no
// provider (model listing, unknown paths) and admits chat requests to the
// body phase.
func (p *processor) requestHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	contentLength := int64(-1)
	remove := []string{header.Cluster}
	var credential string
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch k := strings.ToLower(hv.Key); {
		case k == ":method":
			p.method = headerValue(hv)
		case k == ":path":
			p.path = headerValue(hv)
		case k == "content-length":
			if n, err := strconv.ParseInt(headerValue(hv), 10, 64); err == nil && n >= 0 {
				contentLength = n
			}
		case k == "authorization" || k == "api-key" || k == "x-api-key":
			if credential == "" || k == "authorization" {
				credential = headerValue(hv)
			}
		case k == "user-agent" || k == "x-request-id" || k == "x-client-app":
			if p.headers == nil {
				p.headers = map[string]string{}
			}
			p.headers[k] = apierr.Truncate(headerValue(hv), 256)
		case header.IsInternal(k):
			if k == header.Policy {
				p.headerPolicy = headerValue(hv)
			}
			if k != header.Cluster {
				remove = append(remove, k)
			}
		}
	}
	principal, err := p.state.Keys.Authenticate(credential)
	if err != nil {
		return p.immediate(apierr.Unauthorized("a valid stellwerk API key is required (Authorization: Bearer <key>)"))
	}
	p.principal = principal
	if i := strings.IndexByte(p.path, '?'); i >= 0 {
		p.path, p.query = p.path[:i], p.path[i:]
	}

	switch {
	case p.path == "/v1/chat/completions":
		p.endpoint = epChat
	case p.path == "/v1/models":
		p.endpoint = epModels
	case strings.HasPrefix(p.path, "/v1/models/") && len(p.path) > len("/v1/models/"):
		p.endpoint = epModel
	default:
		return p.immediate(apierr.NotFound("unknown_url", "", "unknown request URL: %s %s; stellwerk serves POST /v1/chat/completions and GET /v1/models",
			apierr.Truncate(p.method, 16), apierr.Truncate(p.path, 200)))
	}

	switch p.endpoint {
	case epModels, epModel:
		if p.method != "GET" && p.method != "HEAD" {
			return p.immediate(apierr.MethodNotAllowed("%s is not allowed on %s; use GET", apierr.Truncate(p.method, 16), p.path))
		}
		if p.endpoint == epModels {
			return immediateJSON(200, p.state.modelsJSON, p.id)
		}
		body, ok := p.state.modelJSON(strings.TrimPrefix(p.path, "/v1/models/"))
		if !ok {
			return p.immediate(apierr.NotFound("model_not_found", "model", "the model %q does not exist", apierr.Truncate(strings.TrimPrefix(p.path, "/v1/models/"), 128)))
		}
		return immediateJSON(200, body, p.id)
	}

	// Chat completions.
	if p.method != "POST" {
		return p.immediate(apierr.MethodNotAllowed("%s is not allowed on %s; use POST", apierr.Truncate(p.method, 16), p.path))
	}
	if h.EndOfStream {
		return p.immediate(apierr.BadRequest("invalid_request_body", "", "the request body is empty; send a JSON chat completion request"))
	}
	if contentLength > p.state.MaxRequestBytes {
		return p.immediate(apierr.TooLarge(p.state.MaxRequestBytes))
	}
	remove = append(remove, clientAuthHeaders...)
	// stellwerk reads answers (usage, routing object, translation): ask the
	// provider for them uncompressed.
	remove = append(remove, "accept-encoding")
	// Clearing the route cache matters when a client sent the routing header:
	// Envoy may have matched a route on it before this filter ran.
	return continueRequestHeaders(&extprocv3.HeaderMutation{RemoveHeaders: remove}, true)
}

// requestBody parses the chat request once, decides, and rewrites the
// request for the chosen provider.
func (p *processor) requestBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if p.endpoint != epChat {
		return continueRequestBody(nil)
	}
	body := b.Body
	if int64(len(body)) > p.state.MaxRequestBytes {
		return p.immediate(apierr.TooLarge(p.state.MaxRequestBytes))
	}
	res, err := p.state.Router.Route(p.ctx, route.Request{Path: p.path, Body: body, Principal: p.principal,
		HeaderPolicy: p.headerPolicy, Headers: p.headers})
	if res != nil {
		p.result = res
		p.class = res.Class
	}
	if err != nil {
		if res != nil && res.PolicyVersion != "" {
			p.log.Info("refused", zap.String("decision_id", p.id), zap.String("policy_version", res.PolicyVersion),
				zap.String("workspace", res.Workspace), zap.Int("status", apierr.As(err).Status), zap.String("code", apierr.As(err).Code))
		}
		return p.immediate(apierr.As(err))
	}
	d := res.Selection
	chat := res.Chat
	m := d.Model
	prov := m.Provider
	credName, credValue, ok := prov.Credential()
	if !ok {
		p.log.Warn("provider credential missing", zap.String("decision_id", p.id),
			zap.String("provider", prov.Name), zap.String("expected_in", prov.CredentialSource()))
		return p.immediate(apierr.BadGateway("provider_credential_missing",
			"provider %q has no credential configured; the request was not sent (operators: see the stellwerk log)", prov.Name))
	}

	upstreamPath := prov.UpstreamPath(p.path)
	p.anthropic = prov.WireFormat == "anthropic"
	if p.anthropic {
		upstreamPath = prov.BasePath + "/messages"
	}
	hs := []*corev3.HeaderValueOption{
		setHeader(header.Cluster, prov.Cluster),
		setHeader(":path", upstreamPath+p.query),
		setHeader(":authority", prov.Authority),
	}
	if p.anthropic {
		hs = append(hs, setHeader("anthropic-version", translate.AnthropicVersion))
	}
	if credName != "" {
		hs = append(hs, setHeader(credName, credValue))
	}
	cr := &extprocv3.CommonResponse{ClearRouteCache: true}
	p.wantUsage = chat.IncludeUsage
	askUsage := chat.Stream && !chat.IncludeUsage // stellwerk needs the usage of every stream
	if m.ProviderModel != chat.Model || chat.Policy.Exists() || askUsage || p.anthropic {
		nb := body
		var err error
		if p.anthropic { // the translation sets the model and drops what Anthropic has no field for
			nb, err = translate.ToAnthropicRequest(body, m.ProviderModel)
			if err != nil {
				return p.immediate(apierr.As(err))
			}
			askUsage, chat.Policy = false, gjson.Result{}
		}
		if chat.Policy.Exists() { // the per-request policy is stellwerk's, not the provider's
			nb, err = sjson.DeleteBytes(nb, "policy")
		}
		if err == nil && askUsage {
			nb, err = sjson.SetBytes(nb, "stream_options.include_usage", true)
		}
		if err == nil && m.ProviderModel != chat.Model {
			nb, err = sjson.SetBytes(nb, "model", m.ProviderModel)
		}
		if err != nil {
			p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
			return p.immediate(apierr.Internal())
		}
		hs = append(hs, setHeader("content-length", strconv.Itoa(len(nb))))
		cr.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: nb}}
	}
	cr.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: hs}
	p.decision = &d
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
		ce.Write(zap.String("decision_id", p.id), zap.String("model", m.ID), zap.String("provider", prov.Name),
			zap.Bool("stream", chat.Stream), zap.String("reason", d.Reason), zap.String("workspace", res.Workspace),
			zap.String("policy_version", res.PolicyVersion), zap.Int("excluded", len(res.Policy.Exclude)),
			zap.String("task", c.Task), zap.String("complexity", c.Complexity), zap.String("language", c.Language),
			zap.Int("pii", len(c.PII)), zap.Int("secrets", len(c.Secrets)), zap.Float64("injection", c.Injection.Score),
			zap.String("sensitivity", c.Sensitivity), zap.String("risk", c.Risk), zap.Int("input_tokens", c.InputTokens),
			zap.Any("tags", res.Policy.Tags))
	}
	return continueRequestBody(cr)
}

// responseHeaders tells the caller what stellwerk decided, and asks Envoy
// for the body of a successful, unencoded JSON answer so the routing object
// can go into it. Streams (SSE) are never buffered.
func (p *processor) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hs := []*corev3.HeaderValueOption{setHeader(header.DecisionID, p.id)}
	d := p.decision
	if d == nil {
		return continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs})
	}
	hs = append(hs,
		setHeader(header.Model, d.Model.ID),
		setHeader(header.Provider, d.Model.Provider.Name),
		setHeader(header.Reason, d.Reason),
		setHeader(header.PolicyVersion, p.result.PolicyVersion),
	)
	var status, ctype, encoding string
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch strings.ToLower(hv.Key) {
		case ":status":
			status = headerValue(hv)
		case "content-type":
			ctype = headerValue(hv)
		case "content-encoding":
			encoding = headerValue(hv)
		}
	}
	resp := continueResponseHeaders(&extprocv3.HeaderMutation{SetHeaders: hs})
	p.respStatus = status
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "text/event-stream") && !h.EndOfStream &&
		(encoding == "" || encoding == "identity") {
		// Follow the stream (event by event, never buffered whole) for its usage.
		p.stream = &streamState{hideUsage: !p.wantUsage}
		if p.anthropic {
			p.stream.anthropic = translate.NewAnthropicStream(p.wantUsage)
		}
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_STREAMED}
	}
	if p.anthropic && strings.HasPrefix(ctype, "application/json") && !h.EndOfStream &&
		(encoding == "" || encoding == "identity") {
		// Answers and errors both come back in Anthropic's shape: translate.
		p.translate = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	if len(status) == 3 && status[0] == '2' && !p.routedAt.IsZero() {
		// Time to the provider's first bytes: what the latency objective
		// and sla_ms compare (streams: first chunk; JSON: the whole answer).
		p.state.Router.Latency.Observe(d.Model.ID, time.Since(p.routedAt))
	}
	if len(status) == 3 && status[0] == '2' && strings.HasPrefix(ctype, "application/json") &&
		(encoding == "" || encoding == "identity") && !h.EndOfStream {
		p.addRouting = true
		resp.ModeOverride = &extprocv3conf.ProcessingMode{ResponseBodyMode: extprocv3conf.ProcessingMode_BUFFERED_PARTIAL}
	}
	return resp
}

// responseBody adds the routing object to a complete JSON object. A body
// larger than Envoy's buffer arrives partial and is passed through as is.
func (p *processor) responseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if (!p.addRouting && !p.translate) || !b.EndOfStream {
		return continueResponseBody()
	}
	body := b.Body
	if p.translate {
		p.translate = false
		if len(p.respStatus) == 3 && p.respStatus[0] == '2' {
			tb, err := translate.FromAnthropicResponse(body)
			if err != nil {
				p.log.Warn("anthropic answer not translatable", zap.String("decision_id", p.id), zap.Error(err))
				tb = apierr.BadGateway("provider_bad_response", "the provider's answer could not be translated").JSON()
			}
			body = tb
		} else {
			body = translate.FromAnthropicError(body)
		}
		if !p.addRouting {
			return replaceResponseBody(body)
		}
	}
	p.addRouting = false
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return replaceResponseBody(body)
	}
	ro := p.routing(body)
	if ro == nil {
		return replaceResponseBody(body)
	}
	nb, err := sjson.SetRawBytes(body, "routing", ro)
	if err != nil {
		return replaceResponseBody(body)
	}
	return replaceResponseBody(nb)
}

// replaceResponseBody sends a new response body with its exact length.
func replaceResponseBody(nb []byte) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setHeader("content-length", strconv.Itoa(len(nb)))}},
			BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: nb}},
		}},
	}}
}
