// Package mockllm is a fake LLM provider for tests and the demo stack. It
// speaks the OpenAI chat-completions wire format (JSON and SSE streaming with
// a final usage chunk when asked for, JSON mode), the OpenAI Responses API
// (…/responses, JSON and its typed events, stored responses when told to
// keep them) and Anthropic's Messages API (…/messages, JSON and its
// streaming events), answers deterministically, can be slow or
// fail on demand, and records every request it receives. Like OpenAI, it
// refuses a chat request naming a function with more than 64 characters.
//
// Failures are injected per request with headers (they reach the mock only
// when the provider's forward_headers lists them, as the test harness's
// providers do: stellwerk passes a provider an allow-list of client headers;
// under make run add them to examples/stellwerk.yaml), for the whole server
// with SetBehavior, or with POST /_mock/behavior:
//
//	x-mock-status: 503              answer with this status and an OpenAI error
//	x-mock-retry-after: 7           with Retry-After on that error
//	x-mock-reset: before|mid-stream close the connection without an answer, or after the first chunk
//	x-mock-reset: truncate          end a stream cleanly after the first chunk, without [DONE]
//	                                (Anthropic: after the first content_block_delta, without message_stop)
//	x-mock-reset: error             end a stream after the first chunk with the provider's error event
//	x-mock-first-byte-delay: 2s     wait before the first byte
//	x-mock-chunk-delay: 50ms        wait between streamed chunks
//	x-mock-interleave: 1            stream parallel tool calls interleaved (chat)
//	x-mock-no-usage: 1              no usage: in a chat answer, nor in a stream that asked for it
//	x-mock-content-length: 1        an Anthropic stream sent whole, with a Content-Length
//	x-mock-cached: 900              that many prompt tokens read from the cache (JSON answers: chat; Anthropic, streamed too)
//	x-mock-cache-write: 600,400     Anthropic: that many prompt tokens written to the cache for 5 minutes and 1 hour
//	                                (cache_creation_input_tokens and cache_creation; "1000": the total only), JSON and streamed
//	x-mock-answer-bytes: 300000     an answer of at least that many bytes of text (Anthropic)
//	x-mock-cut-tool-call: 1         a chat JSON answer's tool calls cut off at max_tokens: arguments end mid-JSON, finish_reason length
//	x-mock-blank-text: 1            a chat answer's tool calls come with text of whitespace only ("\n\n"), as some models send
//	x-mock-quirk: gzip|bom|…        what OpenAI-compatible servers send that OpenAI does not (chat; quirks.go)
//	x-mock-echo-auth: 1             echo the Authorization it got (a header, an injected error's text, a stream's error event, a chat answer's content), name an account, set a cookie
//	x-mock-header: name: value      add that header to the answer (several: several headers), as a provider or a gateway before it may
//
// An Anthropic stream whose request enables extended thinking ("thinking":
// {"type": "enabled"}) streams a thinking block before its text, billed as
// output in message_delta's count.
package mockllm

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Behavior is the server-wide default for every request; headers override it.
type Behavior struct {
	Status     int `json:"status,omitempty"`
	RetryAfter int `json:"retry_after,omitempty"`
	// Reset: "", "before", "mid-stream", "truncate", "error"; "garbage"
	// and "empty" answer a 200 application/json whose body is not JSON, or
	// is empty, as a broken gateway before a provider does; "html" a 200
	// text/html page (with Status, a proxy's error page of that status);
	// "overflow" the API's 400 for a prompt larger than the model's context
	// window, as a provider whose tokenizer counts more than stellwerk
	// estimated answers it; "redirect" a 302 with a Location; "drip" a
	// JSON answer with its right Content-Length sent one byte per
	// ChunkDelay (1s unless set), "short" one whose Content-Length is
	// 1000 bytes more than it sends before closing; "sse" a 200 event
	// stream whatever the request asked for; "overflow-vllm" and
	// "overflow-llamacpp" the overflow as vLLM's and llama.cpp's servers
	// answer it (no OpenAI code); "model-not-found" Ollama's 404 for a
	// model it has not pulled.
	Reset          string        `json:"reset,omitempty"`
	FirstByteDelay time.Duration `json:"first_byte_delay,omitempty"`
	ChunkDelay     time.Duration `json:"chunk_delay,omitempty"`
	// OnlyModel, when set, limits the behaviour to requests for that
	// (provider-side) model name; every other model answers normally, as
	// a provider that rate-limits per model does.
	OnlyModel string `json:"only_model,omitempty"`
	// Quirk is one of the Quirk constants: what OpenAI-compatible servers
	// send that OpenAI does not (quirks.go).
	Quirk string `json:"quirk,omitempty"`
	// RequestID is the provider's own id of each request, on every answer
	// as its API sends it: x-request-id (OpenAI), request-id (Anthropic).
	RequestID string `json:"request_id,omitempty"`
	// Headers are added to every answer, as a hostile provider sends
	// them (x-stellwerk-served, x-should-retry, …).
	Headers map[string]string `json:"headers,omitempty"`
	// Capacity, when set, is how many requests the provider serves at
	// once, as a self-hosted model server (llama.cpp, vLLM, Ollama) does:
	// one beyond it is answered at once with BusyStatus (default 503) and
	// the message "busy", llama.cpp's words (Ollama answers 429).
	Capacity   int `json:"capacity,omitempty"`
	BusyStatus int `json:"busy_status,omitempty"`
	// Message replaces the message of an injected failure (Status), e.g.
	// llama.cpp's "Loading model" while it loads.
	Message string `json:"message,omitempty"`
}

// Recorded is one request as the provider saw it.
type Recorded struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
	// BodyLength is the number of body bytes actually read, to compare with
	// the Content-Length header.
	BodyLength int       `json:"body_length"`
	At         time.Time `json:"at"`
	// Usage is what the provider generated for the request, as a real one
	// bills it: the prompt, and the completion tokens it sent — for a stream
	// cut short (the client went away, an injected reset), only those sent
	// before it ended. Nil when it answered with an error or not at all.
	Usage *Usage `json:"usage,omitempty"`
	// Output is the completion those tokens are, one element per token.
	Output []string `json:"output,omitempty"`
}

// Provider is a fake provider; it is an http.Handler.
type Provider struct {
	Name      string
	APIKey    string   // when set, requests must carry "Authorization: Bearer <APIKey>"
	extraKeys []string // AlsoAccept

	mu       sync.Mutex
	behavior Behavior
	requests []*Recorded
	inFlight int                       // requests being answered (Capacity)
	storing  bool                      // StoreResponses
	stored   map[string]storedResponse // by response id
}

// AlsoAccept makes key valid beside APIKey, as a provider accepts every
// key of its customers' (e.g. a workspace's own key).
func (p *Provider) AlsoAccept(key string) {
	p.mu.Lock()
	p.extraKeys = append(p.extraKeys, key)
	p.mu.Unlock()
}

func (p *Provider) accepts(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return key != "" && slices.Contains(p.extraKeys, key)
}

// New returns a provider named name that requires apiKey (if not empty).
func New(name, apiKey string) *Provider { return &Provider{Name: name, APIKey: apiKey} }

// SetBehavior replaces the server-wide behaviour.
func (p *Provider) SetBehavior(b Behavior) {
	p.mu.Lock()
	p.behavior = b
	p.mu.Unlock()
}

// Requests returns a copy of what was received so far.
func (p *Provider) Requests() []Recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Recorded, len(p.requests))
	for i, r := range p.requests {
		out[i] = *r
		out[i].Output = slices.Clone(r.Output)
	}
	return out
}

// generated records what the provider generated for rec.
func (p *Provider) generated(rec *Recorded, prompt int, out []string) {
	p.mu.Lock()
	rec.Usage = &Usage{PromptTokens: prompt, CompletionTokens: len(out), TotalTokens: prompt + len(out)}
	rec.Output = slices.Clone(out)
	p.mu.Unlock()
}

// Reset forgets recorded requests.
func (p *Provider) Reset() {
	p.mu.Lock()
	p.requests = nil
	p.mu.Unlock()
}

// ControlHeaders are the request headers that steer a fake provider in
// tests. stellwerk forwards none of them unless a provider's
// forward_headers lists them (the harness does).
var ControlHeaders = []string{"x-mock-status", "x-mock-retry-after", "x-mock-reset", "x-mock-no-usage",
	"x-mock-chunk-delay", "x-mock-first-byte-delay", "x-mock-interleave", "x-mock-content-length", "x-mock-cached", "x-mock-cache-write", "x-mock-echo-auth", "x-mock-answer-bytes", "x-mock-cut-tool-call", "x-mock-blank-text", "x-mock-header"}

func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_mock/requests" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, p.Requests())
		return
	case r.URL.Path == "/_mock/requests" && r.Method == http.MethodDelete:
		p.Reset()
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path == "/_mock/behavior" && r.Method == http.MethodPost:
		var b Behavior
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "bad behavior: "+err.Error())
			return
		}
		p.SetBehavior(b)
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path == "/healthz":
		w.WriteHeader(http.StatusOK)
		return
	}

	body, _ := io.ReadAll(io.LimitReader(r.Body, 512<<20))
	rec := &Recorded{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host,
		Header: r.Header.Clone(), Body: body, BodyLength: len(body), At: time.Now()}
	p.mu.Lock()
	p.requests = append(p.requests, rec)
	b := p.behavior
	p.inFlight++
	busy := b.Capacity > 0 && p.inFlight > b.Capacity
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	if busy {
		status := cmp.Or(b.BusyStatus, http.StatusServiceUnavailable)
		writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": "busy", "type": "unavailable_error"}})
		return
	}
	if b.OnlyModel != "" && gjson.GetBytes(body, "model").Str != b.OnlyModel {
		b = Behavior{}
	}
	b = overrideFromHeaders(b, r.Header)
	if qw, ok := newQuirkWriter(w, r, b.Quirk).(*quirkWriter); ok {
		w = qw
		defer qw.close()
	}

	echo := r.Header.Get("x-mock-echo-auth") != ""
	if echo {
		// A provider, or a gateway before it, that echoes what it was
		// sent, and names the account it bills.
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Openai-Organization", "org-mock-account")
		w.Header().Set("Set-Cookie", "__provider_session=abc; Path=/")
		// What an Azure deployment or a proxy before a provider adds.
		w.Header().Set("Via", "1.1 internal-proxy.corp")
		w.Header().Set("X-Ms-Region", "westeurope")
		w.Header().Set("Apim-Request-Id", "b1946ac9-2e4c-4d6c-9d1e-7a1b3f1c2d3e")
		w.Header().Set("Azureml-Model-Session", "d-20250101-acct7")
	}
	for _, h := range r.Header.Values("x-mock-header") {
		if name, value, ok := strings.Cut(h, ":"); ok {
			w.Header().Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	for k, v := range b.Headers {
		w.Header().Set(k, v)
	}
	anthropic := strings.HasSuffix(r.URL.Path, "/messages")
	if b.RequestID != "" {
		if anthropic {
			w.Header().Set("Request-Id", b.RequestID)
		} else {
			w.Header().Set("X-Request-Id", b.RequestID)
		}
	}
	api := apiOf(r.URL.Path)
	if !anthropic && api == "" {
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown path "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
		return
	}
	if b.FirstByteDelay > 0 {
		select {
		case <-time.After(b.FirstByteDelay):
		case <-r.Context().Done():
			return
		}
	}
	if b.Reset == "before" {
		resetConnection(w)
		return
	}
	switch b.Reset {
	case "redirect": // a provider moved, or a login page before it
		w.Header().Set("Location", "https://elsewhere.example/v1/chat/completions")
		w.WriteHeader(http.StatusFound)
		return
	case "sse": // an event stream, whatever the request asked for
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\ndata: [DONE]\n\n")
		return
	case "drip", "short": // a JSON answer that breaks after its headers
		answer := `{"id":"chatcmpl-drip","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
		w.Header().Set("Content-Type", "application/json")
		if b.Reset == "drip" { // the right length, one byte per ChunkDelay (1s)
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		} else { // 1000 bytes promised that never come
			w.Header().Set("Content-Length", strconv.Itoa(len(answer)+1000))
		}
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok { // the headers first, as a provider that writes them at once
			f.Flush()
		}
		if b.Reset == "short" {
			time.Sleep(100 * time.Millisecond)
			_, _ = io.WriteString(w, answer)
			return // the server closes the connection short of the length
		}
		d := b.ChunkDelay
		if d <= 0 {
			d = time.Second
		}
		for i := range len(answer) {
			_, _ = io.WriteString(w, answer[i:i+1])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		return
	case "garbage", "empty", "html": // what a broken gateway answers, whatever the API
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if b.Reset == "html" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if b.Status >= 400 { // a proxy's error page
				status = b.Status
			}
		}
		w.WriteHeader(status)
		if b.Reset != "empty" {
			_, _ = io.WriteString(w, "<html>this is not json {{{")
		}
		return
	}
	if anthropic {
		p.messages(w, r, b, body, rec)
		return
	}
	if p.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+p.APIKey && !p.accepts(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "Incorrect API key provided: "+
			maskKey(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))+".")
		return
	}
	if b.Status >= 400 {
		if b.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(b.RetryAfter))
		}
		msg := cmp.Or(b.Message, fmt.Sprintf("%s: injected failure %d", p.Name, b.Status))
		if b.Status == http.StatusUnauthorized && !anthropic {
			// As OpenAI words it, with part of the key it was sent.
			msg = "Incorrect API key provided: " + maskKey(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) +
				". You can find your API key at https://platform.openai.com/account/api-keys."
		}
		if echo {
			msg += "; you sent " + r.Header.Get("Authorization")
		}
		writeError(w, b.Status, errorType(b.Status), msg)
		return
	}
	if b.Reset == "overflow" { // as OpenAI words it
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"message": "This model's maximum context length is 200000 tokens. However, your messages resulted in 207508 tokens. Please reduce the length of the messages.",
			"type":    "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
		return
	}
	if b.Reset == "overflow-vllm" { // as vLLM's OpenAI server words it: no code but 400
		writeJSON(w, http.StatusBadRequest, map[string]any{"object": "error",
			"message": "This model's maximum context length is 4096 tokens. However, you requested 4490 tokens (4390 in the messages, 100 in the completion). Please reduce the length of the messages or completion.",
			"type":    "BadRequestError", "param": nil, "code": 400})
		return
	}
	if b.Reset == "overflow-llamacpp" { // as llama.cpp's server words it
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400,
			"message": "the request exceeds the available context size, try increasing it",
			"type":    "exceed_context_size_error", "n_prompt_tokens": 4490, "n_ctx": 4096}})
		return
	}
	if b.Reset == "model-not-found" { // as Ollama answers for a model not pulled
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
			"message": fmt.Sprintf("model %q not found, try pulling it first", gjson.GetBytes(body, "model").Str)}})
		return
	}
	if b.Quirk == QuirkError200 { // a gateway that reports a refusal as a success
		writeJSON(w, http.StatusOK, map[string]any{"error": map[string]any{"message": p.Name + ": quota exceeded for this account",
			"type": "insufficient_quota", "code": "insufficient_quota"}})
		return
	}
	switch b.Quirk {
	case QuirkEndless: // a hostile provider: 1,000-character chunks, no usage, no end
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		chunk := []byte(`data: {"id":"chatcmpl-endless","object":"chat.completion.chunk","model":"endless","choices":[{"index":0,"delta":{"content":"` +
			strings.Repeat("lorem ipsum ", 84) + `"}}]}` + "\n\n")
		f, _ := w.(http.Flusher)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		return
	case QuirkPromptClaim: // a hostile provider: a tiny prompt billed as 200,000 tokens
		writeJSON(w, http.StatusOK, map[string]any{"id": "chatcmpl-claim", "object": "chat.completion", "model": "claim",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": "hi"}, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 200000, "completion_tokens": 1, "total_tokens": 200001}})
		return
	}
	if !gjson.ValidBytes(body) {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "We could not parse the JSON body of your request.")
		return
	}
	req := gjson.ParseBytes(body)
	model := req.Get("model").String()
	if model == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "you must provide a model parameter")
		return
	}
	if api == "chat" {
		if param, n := longToolName(req); n > 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": fmt.Sprintf("Invalid '%s': string too long. "+
				"Expected a string with maximum length 64, but got a string with length %d instead.", param, n),
				"type": "invalid_request_error", "param": param, "code": "string_above_max_length"}})
			return
		}
	}
	switch api {
	case "embeddings":
		p.embeddings(w, req, rec)
		return
	case "completions":
		p.completions(w, r, b, req, body, rec)
		return
	case "responses":
		p.responses(w, r, b, req, body, rec)
		return
	}
	reply := p.reply(req)
	if rf := req.Get("response_format"); rf.IsObject() && rf.Get("type").Str != "text" {
		// JSON mode: the answer is one JSON text.
		reply = []string{jsonText(rf.Get("type").Str, rf.Get("json_schema.schema"), strings.Join(reply, ""))}
	}
	if echo {
		reply = append(reply, " You sent "+r.Header.Get("Authorization")) // in the answer's content too
	}
	n := choicesOf(req)
	if calls := toolCalls(req, shortHash(body)); len(calls) > 0 {
		p.toolCallAnswer(w, r, b, req, body, rec, calls, n)
		return
	}
	usage := Usage{PromptTokens: promptTokens(req), CompletionTokens: n * len(reply)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	id := "chatcmpl-" + p.Name + "-" + shortHash(body)

	if req.Get("stream").Bool() && n > 1 {
		sent := p.streamChoices(w, r, b, id, model, reply, n, usage, req.Get("stream_options.include_usage").Bool() && r.Header.Get("x-mock-no-usage") == "")
		p.generated(rec, usage.PromptTokens, repeat(reply, n)[:sent])
		return
	}
	if req.Get("stream").Bool() {
		// x-mock-no-usage: behave like a provider that ignores include_usage.
		sent := p.stream(w, r, b, id, model, reply, usage, req.Get("stream_options.include_usage").Bool() && r.Header.Get("x-mock-no-usage") == "")
		p.generated(rec, usage.PromptTokens, reply[:sent])
		return
	}
	p.generated(rec, usage.PromptTokens, repeat(reply, n))
	choices := make([]any, n)
	for i := range choices {
		choices[i] = map[string]any{
			"index": i, "finish_reason": "stop", "logprobs": nil,
			"message": map[string]any{"role": "assistant", "content": strings.Join(reply, ""), "refusal": nil},
		}
	}
	answer := map[string]any{
		"id": id, "object": "chat.completion", "created": created, "model": model,
		"system_fingerprint": "fp_" + p.Name,
		"choices":            choices,
		"usage":              usage,
	}
	if r.Header.Get("x-mock-no-usage") != "" {
		delete(answer, "usage") // a provider (a local server) that reports none
	} else if n, _ := strconv.Atoi(r.Header.Get("x-mock-cached")); n > 0 {
		// That many of the prompt tokens came from the provider's cache.
		answer["usage"] = map[string]any{"prompt_tokens": usage.PromptTokens, "completion_tokens": usage.CompletionTokens,
			"total_tokens": usage.TotalTokens, "prompt_tokens_details": map[string]any{"cached_tokens": min(n, usage.PromptTokens)}}
	}
	writeJSON(w, http.StatusOK, answer)
}

// created is fixed so replies are byte-for-byte reproducible.
const created = 1_700_000_000

// Usage is the OpenAI usage object.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// stream sends reply as SSE and returns how many of its tokens it sent.
func (p *Provider) stream(w http.ResponseWriter, r *http.Request, b Behavior, id, model string, reply []string, usage Usage, includeUsage bool) (sent int) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(v any) bool {
		data, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_" + p.Name,
			"choices":            []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
	}
	if !send(chunk(map[string]any{"role": "assistant", "content": ""}, nil)) {
		return
	}
	for i, tok := range reply {
		if i > 0 && b.ChunkDelay > 0 {
			select {
			case <-time.After(b.ChunkDelay):
			case <-r.Context().Done():
				return
			}
		}
		if !send(chunk(map[string]any{"content": tok}, nil)) {
			return
		}
		sent = i + 1
		if i == 0 && b.Reset == "mid-stream" {
			if fl != nil {
				fl.Flush()
			}
			midStreamPause(r)
			resetConnection(w)
			return
		}
		if i == 0 && b.Reset == "truncate" {
			return // a clean end of the response, without finish or [DONE]
		}
		if i == 0 && b.Reset == "error" {
			msg := "The server is overloaded"
			if r.Header.Get("x-mock-echo-auth") != "" {
				msg += "; you sent " + r.Header.Get("Authorization")
			}
			send(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": nil}})
			return
		}
	}
	if !send(chunk(map[string]any{}, "stop")) {
		return
	}
	if includeUsage {
		if !send(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_" + p.Name, "choices": []any{}, "usage": usage}) {
			return
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
	return sent
}

// reply is deterministic: the provider's name and the start of the last user
// message, split into word tokens.
func (p *Provider) reply(req gjson.Result) []string {
	var last string
	req.Get("messages").ForEach(func(_, m gjson.Result) bool {
		if m.Get("role").String() == "user" {
			last = contentText(m.Get("content"))
		}
		return true
	})
	words := strings.Fields(last)
	if len(words) > 12 {
		words = words[:12]
	}
	text := "Hello from " + p.Name + ". You said: " + strings.Join(words, " ")
	var toks []string
	for i, w := range strings.Fields(text) {
		if i > 0 {
			w = " " + w
		}
		toks = append(toks, w)
	}
	return toks
}

func contentText(c gjson.Result) string {
	if c.Type == gjson.String {
		return c.Str
	}
	var parts []string
	c.ForEach(func(_, part gjson.Result) bool {
		if part.Get("type").String() == "text" {
			parts = append(parts, part.Get("text").String())
		}
		return true
	})
	return strings.Join(parts, " ")
}

// promptTokens approximates a tokenizer: one token per four characters of
// message text plus a few per message, as providers count framing.
func promptTokens(req gjson.Result) int {
	n := 0
	req.Get("messages").ForEach(func(_, m gjson.Result) bool {
		n += 4 + (len(contentText(m.Get("content")))+3)/4
		return true
	})
	return n
}

func overrideFromHeaders(b Behavior, h http.Header) Behavior {
	if v := h.Get("x-mock-status"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			b.Status = n
		}
	}
	if v := h.Get("x-mock-retry-after"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			b.RetryAfter = n
		}
	}
	if v := h.Get("x-mock-reset"); v != "" {
		b.Reset = v
	}
	if v := h.Get("x-mock-quirk"); v != "" {
		b.Quirk = v
	}
	if v := h.Get("x-mock-first-byte-delay"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			b.FirstByteDelay = d
		}
	}
	if v := h.Get("x-mock-chunk-delay"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			b.ChunkDelay = d
		}
	}
	return b
}

// resetConnection drops the TCP connection without an HTTP answer (or in the
// middle of one).
// midStreamPause lets the first chunk reach the client before a mid-stream
// reset, so the reset really comes after the answer started.
func midStreamPause(r *http.Request) {
	select {
	case <-time.After(200 * time.Millisecond):
	case <-r.Context().Done():
	}
}

func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if buf != nil {
		_ = buf.Flush()
	}
	if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0) // RST rather than FIN
	}
	conn.Close()
}

// maskKey shows a key as OpenAI's 401 does: its start and its last four.
func maskKey(k string) string {
	if len(k) < 12 {
		return "****"
	}
	return k[:8] + "****" + k[len(k)-4:]
}

func errorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request_error"
	}
}

// longToolName is the first tool whose function name is longer than the
// 64 characters OpenAI's chat API takes, as OpenAI names it, and that
// name's length; 0 when none is. Anthropic's tools may have names of up to
// 128 characters, which a translation must not send as they are.
func longToolName(req gjson.Result) (param string, n int) {
	i := -1
	req.Get("tools").ForEach(func(_, t gjson.Result) bool {
		i++
		n = len(t.Get("function.name").Str)
		return n <= 64
	})
	if n <= 64 {
		return "", 0
	}
	return "tools[" + strconv.Itoa(i) + "].function.name", n
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func shortHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:6])
}
