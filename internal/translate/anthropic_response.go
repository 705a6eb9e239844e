package translate

// Anthropic Messages responses and errors → OpenAI chat completions.

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

type oaiCompletion struct {
	ID      string      `json:"id"`
	Object  string      `json:"object"`
	Created int64       `json:"created"`
	Model   string      `json:"model"`
	Choices []oaiChoice `json:"choices"`
	Usage   *oaiUsage   `json:"usage,omitempty"`
}

type oaiChoice struct {
	Index        int        `json:"index"`
	Message      oaiMessage `json:"message"`
	Logprobs     *struct{}  `json:"logprobs"` // always null
	FinishReason *string    `json:"finish_reason"`
}

type oaiMessage struct {
	Role      string        `json:"role"`
	Content   *string       `json:"content"` // null when the model only called tools
	ToolCalls []oaiToolCall `json:"tool_calls,omitempty"`
}

type oaiToolCall struct {
	ID       string      `json:"id"`
	Type     string      `json:"type"`
	Function oaiFunction `json:"function"`
}

type oaiFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type oaiUsage struct {
	PromptTokens        int             `json:"prompt_tokens"`
	CompletionTokens    int             `json:"completion_tokens"`
	TotalTokens         int             `json:"total_tokens"`
	PromptTokensDetails oaiPromptDetail `json:"prompt_tokens_details"`
	// The prompt tokens Anthropic wrote to its cache, in its own names
	// (as LiteLLM passes them on): OpenAI's usage has no place for them,
	// and they cost 1.25× (five minutes) or 2× (an hour) the input. Only
	// when there were some.
	CacheCreationInputTokens int               `json:"cache_creation_input_tokens,omitempty"`
	CacheCreation            *oaiCacheCreation `json:"cache_creation,omitempty"`
}

type oaiCacheCreation struct {
	FiveMin int `json:"ephemeral_5m_input_tokens"`
	OneHour int `json:"ephemeral_1h_input_tokens"`
}

type oaiPromptDetail struct {
	CachedTokens int `json:"cached_tokens"`
}

// finishReason maps an Anthropic stop_reason. pause_turn (a server tool
// paused a long turn) ends this response like end_turn; an unknown reason is
// reported as "stop" rather than breaking clients that switch on the value.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn, unknown
}

// anthUsage holds Anthropic's token counts; cacheWrite1h is the part of
// cacheWrite written for an hour.
type anthUsage struct {
	input, output, cacheRead, cacheWrite, cacheWrite1h int
}

// MaxTokens is the most a usage count is read as: a provider's count
// beyond it (a trillion tokens, more than any answer) is read as it, so
// that a sum of counts cannot wrap around and pass the plausibility check
// as a small one (the fuzzing probe: four counts of 2⁶² read as 1,024).
const MaxTokens = 1 << 40

// Tokens reads a usage count a provider reports: at most MaxTokens, and
// -1 for a negative one or NaN (gjson reads NaN as a number), which the
// plausibility checks refuse. What a translation shows the client reads
// the same, so a sum it writes cannot wrap either.
func Tokens(v gjson.Result) int {
	switch {
	case v.Num < 0 || v.Num != v.Num:
		return -1
	case v.Num > MaxTokens:
		return MaxTokens
	}
	return int(v.Num)
}

// CacheWrites reads the prompt tokens an Anthropic usage object (or a chat
// usage translated from one) says were written to the cache, for five
// minutes and for an hour: cache_creation_input_tokens, split by
// cache_creation's ephemeral_5m_input_tokens and ephemeral_1h_input_tokens.
// Without the split (older API versions) every write is a five-minute
// one; the total, when given, is the sum.
func CacheWrites(u gjson.Result) (fiveMin, oneHour int) {
	total := u.Get("cache_creation_input_tokens")
	cc := u.Get("cache_creation")
	if !cc.IsObject() {
		return Tokens(total), 0
	}
	fiveMin, oneHour = Tokens(cc.Get("ephemeral_5m_input_tokens")), Tokens(cc.Get("ephemeral_1h_input_tokens"))
	if total.Type == gjson.Number {
		oneHour = min(oneHour, Tokens(total))
		fiveMin = Tokens(total) - oneHour
	}
	return fiveMin, oneHour
}

// read overwrites the counts present in u (message_delta carries only some).
func (a *anthUsage) read(u gjson.Result) {
	if v := u.Get("input_tokens"); v.Exists() {
		a.input = Tokens(v)
	}
	if v := u.Get("output_tokens"); v.Exists() {
		a.output = Tokens(v)
	}
	if v := u.Get("cache_read_input_tokens"); v.Exists() {
		a.cacheRead = Tokens(v)
	}
	if u.Get("cache_creation_input_tokens").Exists() || u.Get("cache_creation").Exists() {
		w5m, w1h := CacheWrites(u)
		a.cacheWrite, a.cacheWrite1h = w5m+w1h, w1h
	}
}

// prompt counts every input token, cached or not, as OpenAI does; Anthropic
// reports cache reads and writes apart from input_tokens.
func (a anthUsage) prompt() int { return a.input + a.cacheRead + a.cacheWrite }

func (a anthUsage) openai() *oaiUsage {
	u := &oaiUsage{
		PromptTokens:        a.prompt(),
		CompletionTokens:    a.output,
		TotalTokens:         a.prompt() + a.output,
		PromptTokensDetails: oaiPromptDetail{CachedTokens: a.cacheRead},
	}
	if a.cacheWrite > 0 {
		u.CacheCreationInputTokens = a.cacheWrite
		u.CacheCreation = &oaiCacheCreation{FiveMin: a.cacheWrite - a.cacheWrite1h, OneHour: a.cacheWrite1h}
	}
	return u
}

// FromAnthropicResponse turns a non-streaming Anthropic Messages response
// (status 2xx) into an OpenAI chat.completion object. The model field is the
// model Anthropic names in its response. Thinking and server-tool blocks
// are dropped.
func FromAnthropicResponse(body []byte) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, apierr.Upstream("invalid_upstream_response", "the Anthropic response is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() || root.Get("type").String() == "error" {
		return nil, apierr.Upstream("invalid_upstream_response", "the Anthropic response is not a message")
	}
	msg := oaiMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	root.Get("content").ForEach(func(_, b gjson.Result) bool {
		switch b.Get("type").String() {
		case "text":
			text.WriteString(b.Get("text").String())
			hasText = true
		case "tool_use":
			msg.ToolCalls = append(msg.ToolCalls, oaiToolCall{
				ID:       b.Get("id").String(),
				Type:     "function",
				Function: oaiFunction{Name: b.Get("name").String(), Arguments: compactJSON(b.Get("input"))},
			})
		}
		return true
	})
	if hasText {
		s := text.String()
		msg.Content = &s
	}
	finish := finishReason(root.Get("stop_reason").String())
	out := oaiCompletion{
		ID:      root.Get("id").String(),
		Object:  "chat.completion",
		Created: nowUnix(),
		Model:   root.Get("model").String(),
		Choices: []oaiChoice{{Message: msg, FinishReason: &finish}},
	}
	if u := root.Get("usage"); u.IsObject() {
		var au anthUsage
		au.read(u)
		out.Usage = au.openai()
	}
	b, err := marshal(out)
	if err != nil {
		return nil, apierr.Upstream("invalid_upstream_response", "the Anthropic response could not be translated")
	}
	return b, nil
}

// compactJSON renders a tool input as OpenAI's arguments string.
func compactJSON(v gjson.Result) string {
	if !v.Exists() || v.Type == gjson.Null {
		return "{}"
	}
	var buf bytes.Buffer
	if json.Compact(&buf, []byte(v.Raw)) != nil {
		return v.Raw
	}
	return buf.String()
}

// anthErrorTypes maps Anthropic error types to OpenAI's; the Anthropic type
// is kept as the code.
var anthErrorTypes = [...]struct{ anth, openai string }{
	{"invalid_request_error", "invalid_request_error"},
	{"not_found_error", "invalid_request_error"},
	{"request_too_large", "invalid_request_error"},
	{"authentication_error", "authentication_error"},
	{"permission_error", "permission_error"},
	{"billing_error", "permission_error"},
	{"rate_limit_error", "rate_limit_error"},
	{"timeout_error", "server_error"},
	{"api_error", "server_error"},
	{"overloaded_error", "server_error"},
}

// FromAnthropicError turns an Anthropic error body
// ({"type":"error","error":{"type","message"}}) into the OpenAI error shape
// {"error":{"message","type","code","param"}}, keeping the message. A body
// that is not an Anthropic error (an HTML page from a proxy, say) becomes a
// generic upstream error rather than being passed on.
func FromAnthropicError(body []byte) []byte {
	e := &apierr.Error{Type: "server_error", Code: "upstream_error", Message: "the Anthropic API returned an error"}
	if gjson.ValidBytes(body) {
		inner := gjson.GetBytes(body, "error")
		if m := inner.Get("message"); m.Type == gjson.String && m.Str != "" {
			e.Message = m.Str
		}
		if t := inner.Get("type"); t.Type == gjson.String && t.Str != "" {
			e.Code = t.Str
			for _, m := range anthErrorTypes {
				if m.anth == t.Str {
					e.Type = m.openai
				}
			}
		}
		if e.Type == "invalid_request_error" && strings.HasPrefix(e.Message, anthPromptTooLong) {
			e.Code, e.Param = "context_length_exceeded", "messages"
		}
		if ContextOverflow(body) && e.Code != "context_length_exceeded" {
			e.Type, e.Code, e.Param = "invalid_request_error", "context_length_exceeded", "messages"
		}
	}
	return e.JSON()
}

// ContextOverflow reports whether a provider's error body says the prompt
// does not fit the model's context window: OpenAI's code
// context_length_exceeded, Anthropic's "prompt is too long", llama.cpp
// server's type exceed_context_size_error, or vLLM's "This model's maximum
// context length is …" (which has no code of its own: code 400, type
// BadRequestError, at the top level of an object "error" or, in recent
// versions, under "error"). Each is matched on a type or the start of a
// message those servers write for this alone: an unrelated 400 is never
// read as one (a larger model would not help it).
func ContextOverflow(body []byte) bool {
	e := gjson.GetBytes(body, "error")
	if e.Type != gjson.JSON && gjson.GetBytes(body, "object").Str == "error" {
		e = gjson.ParseBytes(body) // vLLM before 0.9: the error is the body
	}
	if !e.IsObject() {
		return false
	}
	typ, msg := e.Get("type").Str, e.Get("message").Str
	switch {
	case e.Get("code").Str == "context_length_exceeded", typ == "exceed_context_size_error":
		return true
	case typ == "invalid_request_error" && strings.HasPrefix(msg, anthPromptTooLong):
		return true
	}
	for _, p := range overflowMessages {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// overflowMessages start the messages of self-hosted servers' answers to a
// prompt larger than the model's window that carry no code saying so:
// vLLM's (its OpenAI server; also OpenAI's own wording, which comes with its
// code), vLLM's engine's, and llama.cpp server's before it had a type.
var overflowMessages = []string{
	"This model's maximum context length is ",
	"The decoder prompt (length ",
	"the request exceeds the available context size",
}

// OverflowError is a provider's context-overflow error (ContextOverflow) in
// the OpenAI shape the SDKs know it by: code context_length_exceeded, param
// messages, the provider's message. A self-hosted server's (vLLM,
// llama.cpp) had reached the client with its own code or none.
func OverflowError(body []byte) []byte {
	e := &apierr.Error{Type: "invalid_request_error", Code: "context_length_exceeded", Param: "messages",
		Message: "the prompt is longer than the model's context window"}
	m := gjson.GetBytes(body, "error.message")
	if m.Type != gjson.String {
		m = gjson.GetBytes(body, "message")
	}
	if m.Type == gjson.String && m.Str != "" {
		e.Message = apierr.Truncate(m.Str, 1024)
	}
	return e.JSON()
}

// anthPromptTooLong starts the message of Anthropic's answer to a prompt
// larger than the model's context window ("prompt is too long: 207504 tokens >
// 200000 maximum"), which has no code of its own: OpenAI's clients know it as
// the code context_length_exceeded.
const anthPromptTooLong = "prompt is too long"
