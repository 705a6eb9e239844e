package translate

// Chat Completions answers and errors → Anthropic Messages, for a Messages
// API request an OpenAI-wire provider served.

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/jsonw"
)

// stopReason maps a chat finish_reason to Anthropic's stop_reason.
func stopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// messageID is a message id from a chat completion id.
func messageID(chatID string) string {
	return "msg_" + strings.TrimPrefix(chatID, "chatcmpl-")
}

// ChatToMessage translates a chat.completion answer into an Anthropic
// message: the first choice's text as a text block, each tool call as a
// tool_use block (its arguments parsed: input is an object), finish_reason
// as stop_reason, usage as input_tokens/output_tokens (cached prompt
// tokens as cache_read_input_tokens, not counted in input_tokens, as
// Anthropic reports them). A refusal (structured outputs the model
// declines) is a text block and stop_reason refusal, as Anthropic reports
// one. An answer without usage has none: the edge charges what it cannot
// read at the request's worst case, and zero would read as free. A tool
// call names its tool as the client did: names are the tools the
// translation named short (MessagesToChat).
func ChatToMessage(chat []byte, names ToolNames) ([]byte, error) {
	c := gjson.ParseBytes(chat)
	if !gjson.ValidBytes(chat) || !c.IsObject() || !c.Get("choices").IsArray() {
		return nil, errBadAnswer
	}
	ch := c.Get("choices.0")
	msg := ch.Get("message")
	dst := make([]byte, 0, len(chat)+128)
	dst = append(dst, `{"id":`...)
	dst = jsonw.AppendString(dst, messageID(c.Get("id").Str))
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = jsonw.AppendString(dst, c.Get("model").Str)
	dst = append(dst, `,"content":[`...)
	n := 0
	// Text of whitespace only (the "\n\n" models send beside tool calls)
	// is no block: the client sends the message back, and Anthropic
	// refuses a blank text block in the history, failing every later turn
	// of the conversation. An answer of nothing but whitespace keeps it,
	// as its one block: a message without content, sent back, is refused
	// on every model (Anthropic's rule, and stellwerk's check of it),
	// where the blank block still goes to an OpenAI-wire model (the red
	// team).
	t := AnswerText(msg.Get("content"))
	if !blank(t) {
		dst = append(dst, `{"type":"text","text":`...)
		dst = jsonw.AppendString(dst, t)
		dst = append(dst, '}')
		n++
	}
	refusal := msg.Get("refusal")
	if refusal.Type == gjson.String && !blank(refusal.Str) {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"text","text":`...)
		dst = jsonw.AppendString(dst, refusal.Str)
		dst = append(dst, '}')
		n++
	}
	var bad bool
	// Cut off at the output limit, a call's arguments end mid-JSON (an
	// agent writing a file with too small a max_tokens): the block is kept
	// with an empty input, and stop_reason max_tokens says it was cut, as
	// Anthropic's answer does. It was a 502, and the answer the provider
	// billed was charged nothing (the agent probe). Arguments that are no
	// object in a finished answer are a broken provider's.
	cut := ch.Get("finish_reason").Str == "length"
	toolCalls(msg.Get("tool_calls")).ForEach(func(_, tc gjson.Result) bool {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, `{"type":"tool_use","id":`...)
		dst = jsonw.AppendString(dst, tc.Get("id").Str)
		dst = append(dst, `,"name":`...)
		dst = jsonw.AppendString(dst, names.original(tc.Get("function.name").Str))
		dst = append(dst, `,"input":`...)
		mark := len(dst)
		if dst, bad = appendInput(dst, tc.Get("function.arguments").Str); bad && cut {
			dst, bad = append(dst[:mark], "{}"...), false
		}
		dst = append(dst, '}')
		return !bad
	})
	if bad {
		return nil, errBadAnswer
	}
	if n == 0 && t != "" {
		dst = append(dst, `{"type":"text","text":`...)
		dst = jsonw.AppendString(dst, t)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"stop_reason":`...)
	if refusal.Type == gjson.String && refusal.Str != "" {
		dst = jsonw.AppendString(dst, "refusal")
	} else {
		dst = jsonw.AppendString(dst, stopReason(ch.Get("finish_reason").Str))
	}
	dst = append(dst, `,"stop_sequence":null`...)
	if u := c.Get("usage"); u.IsObject() {
		dst = append(dst, `,"usage":`...)
		dst = appendMessagesUsage(dst, u)
	}
	return append(dst, '}'), nil
}

// blank reports whether text is empty or whitespace only, which Anthropic
// refuses as a text block ("text content blocks must contain non-whitespace
// text").
func blank(text string) bool { return strings.TrimSpace(text) == "" }

// appendInput appends a tool call's arguments as a tool_use input: the
// object they encode ({} for none); bad when they are not an object.
func appendInput(dst []byte, args string) ([]byte, bool) {
	a := gjson.Parse(args)
	switch {
	case strings.TrimSpace(args) == "":
		return append(dst, "{}"...), false
	case !gjson.Valid(args) || !a.IsObject():
		return dst, true
	}
	return append(dst, compactJSON(a)...), false
}

// appendMessagesUsage appends a chat usage object in Anthropic's shape.
func appendMessagesUsage(dst []byte, u gjson.Result) []byte {
	prompt, out, cached := u.Get("prompt_tokens").Int(), u.Get("completion_tokens").Int(), u.Get("prompt_tokens_details.cached_tokens").Int()
	return appendUsage(dst, prompt-cached, out, cached)
}

// appendUsage appends usage in Anthropic's shape, with both cache counts
// as Anthropic always sends them (a chat answer writes no cache entries).
func appendUsage(dst []byte, input, output, cacheRead int64) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, input, 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, output, 10)
	dst = append(dst, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":`...)
	dst = strconv.AppendInt(dst, cacheRead, 10)
	return append(dst, '}')
}

// anthropicErrorType is the Anthropic error type for what went wrong, the
// one Anthropic's API answers with the same status (docs.anthropic.com,
// errors); a provider's refusal keeps the type of the provider's status.
func anthropicErrorType(e *apierr.Error) string {
	switch e.Kind {
	case apierr.KindInvalid, apierr.KindWrongMethod, apierr.KindUnsupportedMedia:
		return "invalid_request_error"
	case apierr.KindUnauthenticated:
		return "authentication_error"
	case apierr.KindDenied:
		return "permission_error"
	case apierr.KindNotFound:
		return "not_found_error"
	case apierr.KindTooLarge:
		return "request_too_large"
	case apierr.KindExhausted:
		return "rate_limit_error"
	case apierr.KindProvider:
		return anthropicStatusType(e.ProviderStatus)
	}
	return "api_error"
}

// anthropicStatusType is the Anthropic error type of a provider's HTTP status.
func anthropicStatusType(status int) string {
	switch {
	case status == 400 || status == 405 || status == 415 || status == 422:
		return "invalid_request_error"
	case status == 401:
		return "authentication_error"
	case status == 403:
		return "permission_error"
	case status == 404:
		return "not_found_error"
	case status == 413:
		return "request_too_large"
	case status == 429:
		return "rate_limit_error"
	case status == 504:
		return "timeout_error"
	case status == 529:
		return "overloaded_error"
	}
	return "api_error"
}

// AnthropicError renders a stellwerk error in Anthropic's error shape,
// {"type":"error","error":{"type","message"}}, what the anthropic SDKs
// read; stellwerk's own code and param ride along in error (the SDKs keep
// unknown members).
func AnthropicError(e *apierr.Error) []byte {
	dst := make([]byte, 0, 96+len(e.Message))
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = jsonw.AppendString(dst, anthropicErrorType(e))
	dst = append(dst, `,"message":`...)
	dst = jsonw.AppendString(dst, e.Message)
	if e.Code != "" {
		dst = append(dst, `,"code":`...)
		dst = jsonw.AppendString(dst, e.Code)
	}
	if e.Param != "" {
		dst = append(dst, `,"param":`...)
		dst = jsonw.AppendString(dst, e.Param)
	}
	return append(dst, "}}"...)
}

// ChatErrorToAnthropic turns an OpenAI-shaped error answer of the given
// status into Anthropic's shape, keeping the message and code. A body that
// is not an OpenAI error becomes a generic one of the status.
func ChatErrorToAnthropic(status int, body []byte) []byte {
	e := &apierr.Error{Kind: apierr.KindProvider, ProviderStatus: status, Message: "the provider returned an error", Code: "upstream_error"}
	if gjson.ValidBytes(body) {
		inner := gjson.GetBytes(body, "error")
		if !inner.IsObject() {
			// vLLM's {"object":"error","message":…}, FastAPI's {"detail":…}
			// and Mistral's {"message":{"detail":[…]}}: the provider's words
			// were dropped for "the provider returned an error" (the
			// provider-wire probe).
			inner = gjson.ParseBytes(body)
		}
		switch m := inner.Get("message"); {
		case m.Type == gjson.String && m.Str != "":
			e.Message = m.Str
		case m.IsObject() || m.IsArray():
			e.Message = apierr.Truncate(m.Raw, 1024)
		case gjson.GetBytes(body, "error").Type == gjson.String: // {"error": "…"}
			e.Message = apierr.Truncate(gjson.GetBytes(body, "error").Str, 1024)
		default:
			if d := inner.Get("detail"); d.Type == gjson.String && d.Str != "" {
				e.Message = d.Str
			} else if d.IsObject() || d.IsArray() {
				e.Message = apierr.Truncate(d.Raw, 1024)
			}
		}
		if c := inner.Get("code"); c.Type == gjson.String && c.Str != "" {
			e.Code = c.Str
		}
		if p := inner.Get("param"); p.Type == gjson.String {
			e.Param = p.Str
		}
	}
	return AnthropicError(e)
}
