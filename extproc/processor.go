package extproc

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// phases is what each role of stellwerk's ext_proc filter answers, one
// method per Envoy phase, and finish when its stream ends, whatever
// happened. The edge (client-facing) and egress (one failover attempt)
// filters each implement it, as Envoy AI Gateway's router and upstream
// filters do. Process calls each role's handle directly rather than through
// this interface: a call through an interface would move every stream's
// filter to the heap.
type phases interface {
	requestHeaders(*extprocv3.HttpHeaders) *extprocv3.ProcessingResponse
	requestBody(*extprocv3.HttpBody) *extprocv3.ProcessingResponse
	responseHeaders(*extprocv3.HttpHeaders) *extprocv3.ProcessingResponse
	responseBody(*extprocv3.HttpBody) *extprocv3.ProcessingResponse
	finish()
}

// filter is what both roles hold of one HTTP request: the request path and
// headers a provider rewrite needs, the model whose answer comes back, and
// how that answer is followed.
type filter struct {
	state *State
	log   *zap.Logger
	id    string
	seen  *attemptLog // attempts this process's egress streams recorded
	told  *toldOnce   // budget events this process logged (nil: each is logged)

	path string // without the query (the client's query is never forwarded)
	// chatBody is the chat translation of a Responses or Messages API
	// request, made once by the edge for a provider that does not serve
	// that API natively.
	chatBody []byte
	// toolNames are the tools chatBody names short (too long for chat),
	// for the answer to name them as the client does; nil for none.
	toolNames translate.ToolNames
	workspace string // the caller's (edge: its principal's; egress: header.Workspace)
	// asked is the output limit the client's request names, per choice (0
	// for none), when askedRead: the edge read it in its parse; an egress
	// attempt reads the body it rewrites (capOutput).
	asked     int
	askedRead bool
	// hostHeader: the provider's host goes in header.Host, not :authority
	// (an operator's Envoy with the drop-in pieces that read it: authority).
	hostHeader bool
	extra      []string // client headers only some providers get (forward_headers)

	served     *catalog.Model // the model whose answer the client gets (egress: this attempt's)
	anthropic  bool           // the provider speaks Anthropic's Messages API (to a chat request)
	fromChat   bool           // a Messages API request went to an OpenAI-wire provider as chat
	translate  bool           // the JSON answer must be translated back to the client's API
	respStatus string         // the provider's :status
	stream     *streamState   // set for a streamed (SSE) answer
}

// trailers answers the trailer messages, which neither role changes; nil
// for any other message.
func trailers(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

// unexpected logs a message no phase handles; the request fails.
func (p *filter) unexpected() *apierr.Error {
	p.log.Warn("unexpected ext_proc message", zap.String("decision_id", p.id))
	return apierr.Internal()
}

// translateAnswer translates a JSON answer, or error, back to the
// client's API: Anthropic's to a chat request, chat's to a Messages
// request.
func (p *filter) translateAnswer(body []byte) (out []byte, noAnswer string) {
	if len(p.respStatus) == 3 && p.respStatus[0] == '2' && (!gjson.ValidBytes(body) || !isObject(body)) {
		// A success that is no answer: left as it is, for the edge to
		// answer 502 (translated, it had become a 200 carrying an error
		// object, charged as served; a helper's finding).
		return body, "a body that is not a JSON object"
	}
	if p.fromChat {
		return p.toMessages(body)
	}
	return p.fromAnthropic(body)
}

// toMessages translates a chat.completion answer, or an OpenAI error, to
// Anthropic's shape.
func (p *filter) toMessages(body []byte) ([]byte, string) {
	if len(p.respStatus) == 3 && p.respStatus[0] == '2' {
		tb, err := translate.ChatToMessage(body, p.toolNames)
		if err != nil {
			p.log.Warn("chat answer not translatable to a message", zap.String("decision_id", p.id), zap.Error(err))
			return body, "an answer that could not be translated"
		}
		return tb, ""
	}
	code, _ := strconv.Atoi(p.respStatus)
	return translate.ChatErrorToAnthropic(code, body), ""
}

// fromAnthropic translates an Anthropic JSON answer, or error, back to the
// OpenAI shape.
func (p *filter) fromAnthropic(body []byte) ([]byte, string) {
	if len(p.respStatus) == 3 && p.respStatus[0] == '2' {
		tb, err := translate.FromAnthropicResponse(body)
		if err != nil {
			p.log.Warn("anthropic answer not translatable", zap.String("decision_id", p.id), zap.Error(err))
			return body, "an answer that could not be translated"
		}
		return tb, ""
	}
	return translate.FromAnthropicError(body), ""
}

// bodyChange is the request mutation: headers, and the body with its exact
// length when it changed.
func bodyChange(hs []*corev3.HeaderValueOption, remove []string, orig, nb []byte) *extprocv3.CommonResponse {
	cr := &extprocv3.CommonResponse{ClearRouteCache: true}
	if nb != nil && !(len(nb) == len(orig) && (len(nb) == 0 || &nb[0] == &orig[0])) {
		hs = append(hs, setHeader("content-length", strconv.Itoa(len(nb))))
		cr.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: nb}}
	}
	cr.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: hs, RemoveHeaders: remove}
	return cr
}

// rewriteFor rewrites an OpenAI-shaped chat request for one model's
// provider: path (with the provider's query, never the client's),
// authority, the client headers only other providers get, model name and
// wire format. It returns body itself when the body needs no change.
func (p *filter) rewriteFor(m *catalog.Model, body []byte) (hs []*corev3.HeaderValueOption, remove []string, nb []byte, perr *apierr.Error) {
	prov := m.Provider
	// The key itself is Envoy's to add (the provider cluster's credential
	// filter, or that of the copy with the workspace's own key); stellwerk
	// only refuses to send a request that would go out without one.
	if !prov.HasCredential() && p.state.workspaceCluster(p.workspace, prov.Name) == "" {
		p.log.Warn("provider credential missing", zap.String("decision_id", p.id),
			zap.String("provider", prov.Name), zap.String("expected_in", prov.CredentialSource()))
		e := apierr.Upstream("provider_credential_missing",
			"provider %q has no credential configured; the request was not sent (operators: see the stellwerk log)", prov.Name)
		e.Final = true
		return nil, nil, nil, e
	}
	if p.path == request.PathMessages {
		return p.rewriteMessages(m, body)
	}
	clientPath := p.path
	if clientPath == request.PathResponses && !m.NativeResponses() {
		// Translated to chat completions (and on to Anthropic's Messages
		// below); the answer comes back as chat, translated by the edge.
		if p.chatBody != nil {
			body = p.chatBody
		} else {
			cb, err := translate.ResponsesToChat(body)
			if err != nil {
				return nil, nil, nil, apierr.As(err)
			}
			body = cb
		}
		clientPath = request.PathChat
	}
	upstreamPath := prov.UpstreamPath(clientPath)
	p.anthropic = prov.WireFormat == "anthropic"
	if p.anthropic {
		upstreamPath = prov.BasePath + "/messages"
	}
	hs = []*corev3.HeaderValueOption{
		setHeader(":path", upstreamPath+prov.Query),
		p.authority(prov),
	}
	if p.anthropic {
		hs = append(hs, setHeader("anthropic-version", translate.AnthropicVersion))
	}
	for _, k := range p.extra {
		if !prov.Forwards(k) {
			remove = append(remove, k)
		}
	}
	if p.anthropic { // the translation sets the model and drops what Anthropic has no field for
		nb, err := translate.ToAnthropicRequest(body, m.ProviderModel)
		if err != nil {
			return nil, nil, nil, apierr.As(err)
		}
		if nb, err = p.capOutput(m, nb, "max_tokens"); err != nil {
			p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
			return nil, nil, nil, apierr.Internal()
		}
		return hs, remove, nb, nil
	}
	nb, err := outputLimitFor(prov, body)
	if err == nil && gjson.GetBytes(nb, "model").Str != m.ProviderModel {
		nb, err = sjson.SetBytes(nb, "model", m.ProviderModel)
	}
	if err == nil {
		switch clientPath {
		case request.PathChat:
			nb, err = p.capOutput(m, nb, "max_tokens", "max_completion_tokens")
		case request.PathCompletions:
			nb, err = p.capOutput(m, nb, "max_tokens")
		case request.PathResponses:
			nb, err = p.capOutput(m, nb, "max_output_tokens")
		}
	}
	if err != nil {
		p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
		return nil, nil, nil, apierr.Internal()
	}
	return hs, remove, nb, nil
}

// outputLimitFor renames a chat request's output limit to the name its
// provider reads (providers[].max_tokens_param): Mistral refuses
// max_completion_tokens with a 422, OpenAI's reasoning models max_tokens,
// and auto sends a request to either (the SDK probe: every Messages and
// Responses request translated to chat carried max_completion_tokens). A
// request that names both keeps them. body itself when nothing changes.
func outputLimitFor(prov *catalog.Provider, body []byte) ([]byte, error) {
	want, other := prov.MaxTokensParam, "max_tokens"
	switch want {
	case "":
		return body, nil
	case "max_tokens":
		other = "max_completion_tokens"
	}
	v := gjson.GetBytes(body, other)
	if !v.Exists() || gjson.GetBytes(body, want).Exists() {
		return body, nil
	}
	// The member's name is renamed where it stands, in one copy: the
	// quoted name ends before the value's colon.
	j := v.Index - 1
	for j > 0 && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
		j--
	}
	if j > 0 && body[j] == ':' {
		j--
		for j > 0 && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
			j--
		}
		if k := j - len(other); k > 0 && body[j] == '"' && body[k-1] == '"' && string(body[k:j]) == other {
			nb := make([]byte, 0, len(body)+len(want)-len(other))
			return append(append(append(nb, body[:k]...), want...), body[j:]...), nil
		}
	}
	nb, err := sjson.DeleteBytes(body, other) // a name written with escapes
	if err != nil {
		return nil, err
	}
	return sjson.SetRawBytes(nb, want, []byte(v.Raw))
}

// authority names the provider's host: as :authority, or, to an operator's
// Envoy with the drop-in pieces of 2026-12-07 (hostHeader), as header.Host,
// which stellwerk's route there makes the Host header as it forwards
// (host_rewrite_header; the provider cluster removes it). Envoy matches a
// request's route again after stellwerk's answer, and the virtual host by
// :authority: with stellwerk's route under a virtual host for the
// gateway's own domain, a request naming the provider's host matched
// another virtual host's route and reached its backend, prompt and all
// (the mesh-integrator probe).
func (p *filter) authority(prov *catalog.Provider) *corev3.HeaderValueOption {
	if p.hostHeader {
		return setHeader(header.Host, prov.Authority)
	}
	return setHeader(":authority", prov.Authority)
}

// capOutput lowers an output limit the body asks of m's provider (in the
// members names) past what m can write, its max_output_tokens, to that:
// the budgets held no more (outputBound), and a catalog that understates a
// model's limit (4096 when it names none) let one answer spend five times
// what was held, or, past the plausible, be charged at the hold (the
// peer-switcher probe). An answer cut there ends as any answer at its
// limit (finish_reason length). body itself when nothing changes.
func (p *filter) capOutput(m *catalog.Model, body []byte, names ...string) ([]byte, error) {
	most := m.OutputLimit()
	if p.askedRead && p.asked <= most && (!p.anthropic || p.asked > 0 || translate.DefaultMaxTokens <= most) {
		return body, nil
	}
	lowered := false
	for _, name := range names {
		if v := gjson.GetBytes(body, name); v.Type == gjson.Number && v.Num > float64(most) {
			var err error
			if body, err = sjson.SetBytes(body, name, most); err != nil {
				return nil, err
			}
			lowered = true
		}
	}
	// Extended thinking's budget must stay below max_tokens, or Anthropic
	// refuses the request: a budget of 100,000 with max_tokens 128,000
	// lowered to a model's 64,000 was a 400 (the reasoning probe). It is
	// lowered with it, to one below.
	// Below Anthropic's least budget no thinking fits: the request goes
	// without it rather than be refused.
	if b := gjson.GetBytes(body, "thinking.budget_tokens"); lowered && b.Type == gjson.Number && b.Num >= float64(most) {
		var err error
		if most-1 < minThinkingBudget {
			body, err = sjson.DeleteBytes(body, "thinking")
		} else {
			body, err = sjson.SetBytes(body, "thinking.budget_tokens", most-1)
		}
		if err != nil {
			return nil, err
		}
	}
	return body, nil
}

// minThinkingBudget is the least extended-thinking budget Anthropic takes.
const minThinkingBudget = 1024

// rewriteMessages rewrites a Messages API request for one model's
// provider: an Anthropic-wire one gets it as sent, with its model name and
// the anthropic-version stellwerk speaks; an OpenAI-wire one gets it
// translated to chat completions.
func (p *filter) rewriteMessages(m *catalog.Model, body []byte) (hs []*corev3.HeaderValueOption, remove []string, nb []byte, perr *apierr.Error) {
	prov := m.Provider
	p.anthropic, p.fromChat = false, prov.WireFormat != "anthropic"
	for _, k := range p.extra {
		if !prov.Forwards(k) {
			remove = append(remove, k)
		}
	}
	if !p.fromChat {
		hs = []*corev3.HeaderValueOption{
			setHeader(":path", prov.BasePath+"/messages"+prov.Query),
			p.authority(prov),
			setHeader("anthropic-version", translate.AnthropicVersion),
		}
		nb = body
	} else {
		hs = []*corev3.HeaderValueOption{
			setHeader(":path", prov.UpstreamPath(request.PathChat)+prov.Query),
			p.authority(prov),
		}
		nb = p.chatBody // the edge's translation; an egress retry translates its own
		if nb == nil {
			tb, names, err := translate.MessagesToChat(body)
			if err != nil {
				return nil, nil, nil, apierr.As(err)
			}
			nb, p.toolNames = tb, names
		}
	}
	var err error
	if p.fromChat {
		nb, err = outputLimitFor(prov, nb)
		if err == nil {
			nb, err = p.capOutput(m, nb, "max_tokens", "max_completion_tokens")
		}
	} else {
		nb, err = p.capOutput(m, nb, "max_tokens")
	}
	if err != nil {
		p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
		return nil, nil, nil, apierr.Internal()
	}
	if gjson.GetBytes(nb, "model").Str != m.ProviderModel {
		if nb, err = sjson.SetBytes(nb, "model", m.ProviderModel); err != nil {
			p.log.Error("body rewrite failed", zap.String("decision_id", p.id), zap.Error(err))
			return nil, nil, nil, apierr.Internal()
		}
	}
	return hs, remove, nb, nil
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

// responseMeta is what stellwerk reads from an answer's headers.
type responseMeta struct {
	status, ctype, encoding string
	flags                   string // Envoy's response flags on its own error replies
	retryAfter              string
	attemptCount            int    // x-envoy-attempt-count
	served                  string // x-stellwerk-served
	// relabeled: a success that said it was neither JSON nor an event
	// stream, read as JSON (ctype is application/json; the answer's
	// content-type is set to it).
	relabeled bool
	// The provider's own request ids (OpenAI's x-request-id, Anthropic's
	// request-id), which the client gets rather than the decision id.
	requestID, anthropicRequestID bool
	// shouldRetry: the provider sent x-should-retry, which the OpenAI SDKs
	// obey over the status (answer.go keeps it only where they retry).
	shouldRetry bool
	// providerID is the first of them, bounded: what the provider's
	// support and a deletion request name the request by.
	providerID string
}

func readResponseHeaders(h *extprocv3.HttpHeaders) responseMeta {
	var m responseMeta
	for _, hv := range h.GetHeaders().GetHeaders() {
		switch strings.ToLower(hv.Key) {
		case ":status":
			m.status = headerValue(hv)
		case "content-type": // media types are case-insensitive (Text/Event-Stream was relabelled JSON)
			m.ctype = strings.ToLower(headerValue(hv))
		case "content-encoding":
			m.encoding = strings.ToLower(headerValue(hv))
		case "retry-after":
			m.retryAfter = headerValue(hv)
		case header.UpstreamFlags:
			m.flags = headerValue(hv)
		case "x-envoy-attempt-count":
			m.attemptCount, _ = strconv.Atoi(headerValue(hv))
		case header.Served:
			m.served = headerValue(hv)
		case "x-should-retry":
			m.shouldRetry = true
		case header.RequestID:
			m.requestID = hasValue(hv)
			if m.requestID && m.providerID == "" {
				m.providerID = apierr.Truncate(headerValue(hv), 128)
			}
		case header.AnthropicRequestID:
			m.anthropicRequestID = hasValue(hv)
			if m.anthropicRequestID && m.providerID == "" {
				m.providerID = apierr.Truncate(headerValue(hv), 128)
			}
		}
	}
	if len(m.status) == 3 && m.status[0] == '2' && (m.encoding == "" || m.encoding == "identity") &&
		!strings.HasPrefix(m.ctype, "application/json") && !strings.HasPrefix(m.ctype, "text/event-stream") {
		// Every API stellwerk serves answers JSON or an event stream. A
		// success labelled otherwise (a gateway's HTML page, an answer
		// labelled text/plain) is read as JSON: an object is the answer,
		// anything else is provider_bad_response, never a success the
		// SDKs hand on as a string (the chaos probe's finding).
		m.ctype, m.relabeled = "application/json", true
	}
	return m
}
