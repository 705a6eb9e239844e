// Package request parses an OpenAI chat-completions request body once, with
// gjson over the raw bytes, and checks the shape stellwerk relies on. It is
// the first code to touch untrusted input and is fuzzed.
package request

import (
	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// Chat is what the router needs from a chat-completions request. It holds
// indexes into the body, not copies of the prompt.
type Chat struct {
	Model    string
	Stream   bool
	Messages int // number of messages
	// MessageList is the messages array, for the classifier to read in place.
	MessageList gjson.Result
	// MaxTokens is max_completion_tokens or max_tokens, 0 when unset.
	MaxTokens int
	// Tools is true when the request offers tools (or legacy functions).
	Tools bool
	// ResponseFormat is response_format.type ("" when unset).
	ResponseFormat string
	// Vision is true when a message carries an image part.
	Vision bool
	// User is the OpenAI `user` field; Metadata the `metadata` object's
	// string values.
	User     string
	Metadata map[string]string
	// Policy is the raw per-request `policy` member (validated elsewhere).
	Policy gjson.Result
	// IncludeUsage is stream_options.include_usage as the client sent it.
	IncludeUsage bool
}

// ParseChat validates body and extracts the routing facts.
func ParseChat(body []byte) (Chat, error) {
	if len(body) == 0 {
		return Chat{}, apierr.BadRequest("invalid_request_body", "", "the request body is empty; send a JSON chat completion request")
	}
	if tooDeep(body) {
		return Chat{}, apierr.BadRequest("invalid_request_body", "", "the request body is nested more than %d levels deep", MaxDepth)
	}
	if !gjson.ValidBytes(body) {
		return Chat{}, apierr.BadRequest("invalid_json", "", "the request body is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return Chat{}, apierr.BadRequest("invalid_request_body", "", "the request body must be a JSON object")
	}
	var c Chat
	var model, messages, stream, maxTokens, maxCompletion, policy gjson.Result
	var dup string
	root.ForEach(func(k, v gjson.Result) bool {
		var slot *gjson.Result
		switch k.Str {
		case "model":
			slot = &model
		case "messages":
			slot = &messages
		case "stream":
			slot = &stream
		case "max_tokens":
			slot = &maxTokens
		case "max_completion_tokens":
			slot = &maxCompletion
		case "policy":
			slot = &policy
		case "tools", "functions":
			c.Tools = c.Tools || (v.IsArray() && len(v.Raw) > 2)
			return true
		case "stream_options":
			c.IncludeUsage = v.Get("include_usage").Type == gjson.True
			return true
		case "response_format":
			if t := v.Get("type"); t.Type == gjson.String {
				c.ResponseFormat = t.Str
			}
			return true
		case "user":
			if v.Type == gjson.String && len(v.Str) <= 256 {
				c.User = v.Str
			}
			return true
		case "metadata":
			v.ForEach(func(mk, mv gjson.Result) bool {
				if mv.Type == gjson.String && len(mk.Str) <= 64 && len(mv.Str) <= 512 {
					if c.Metadata == nil {
						c.Metadata = map[string]string{}
					}
					c.Metadata[mk.Str] = mv.Str
				}
				return len(c.Metadata) < 16
			})
			return true
		default:
			return true
		}
		// A second copy of a field stellwerk routes on could be read
		// differently by the provider: refuse rather than guess.
		if slot.Exists() {
			dup = k.Str
			return false
		}
		*slot = v
		return true
	})
	if dup != "" {
		return Chat{}, apierr.BadRequest("duplicate_field", dup, "the field %q appears more than once", dup)
	}

	switch {
	case !model.Exists():
		return Chat{}, apierr.BadRequest("missing_model", "model", "you must provide a model parameter (a catalog model id or \"auto\")")
	case model.Type != gjson.String:
		return Chat{}, apierr.BadRequest("invalid_type", "model", "model must be a string")
	case model.Str == "":
		return Chat{}, apierr.BadRequest("missing_model", "model", "model must not be empty")
	}
	c.Model = model.Str

	if !messages.Exists() {
		return Chat{}, apierr.BadRequest("missing_messages", "messages", "you must provide a messages parameter")
	}
	if !messages.IsArray() {
		return Chat{}, apierr.BadRequest("invalid_type", "messages", "messages must be an array")
	}
	var bad *apierr.Error
	messages.ForEach(func(_, m gjson.Result) bool {
		if !m.IsObject() {
			bad = apierr.BadRequest("invalid_type", "messages", "messages[%d] must be an object", c.Messages)
			return false
		}
		if role := m.Get("role"); role.Type != gjson.String || role.Str == "" {
			bad = apierr.BadRequest("invalid_value", "messages", "messages[%d].role must be a non-empty string", c.Messages)
			return false
		}
		if content := m.Get("content"); !c.Vision && content.IsArray() {
			content.ForEach(func(_, part gjson.Result) bool {
				if t := part.Get("type").Str; t == "image_url" || t == "input_image" {
					c.Vision = true
				}
				return !c.Vision
			})
		}
		c.Messages++
		return true
	})
	if bad != nil {
		return Chat{}, bad
	}
	if c.Messages == 0 {
		return Chat{}, apierr.BadRequest("empty_messages", "messages", "messages must contain at least one message")
	}

	switch stream.Type {
	case gjson.Null:
		// absent or null: not streaming
	case gjson.True, gjson.False:
		c.Stream = stream.Bool()
	default:
		return Chat{}, apierr.BadRequest("invalid_type", "stream", "stream must be a boolean")
	}
	for _, mt := range []struct {
		name string
		v    gjson.Result
	}{{"max_completion_tokens", maxCompletion}, {"max_tokens", maxTokens}} {
		switch {
		case mt.v.Type == gjson.Null:
		case mt.v.Type != gjson.Number || mt.v.Num != float64(int64(mt.v.Num)) || mt.v.Num < 1 || mt.v.Num > 1e9:
			return Chat{}, apierr.BadRequest("invalid_value", mt.name, "%s must be a positive integer", mt.name)
		case c.MaxTokens == 0:
			c.MaxTokens = int(mt.v.Num)
		}
	}
	c.MessageList = messages
	c.Policy = policy
	return c, nil
}

// MaxDepth bounds JSON nesting. Chat requests, tool schemas included, stay
// far below it; a body of millions of brackets would otherwise cost seconds.
const MaxDepth = 128

// tooDeep reports whether body nests arrays or objects deeper than
// MaxDepth, in one pass that skips string contents.
func tooDeep(body []byte) bool {
	depth := 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			if depth++; depth > MaxDepth {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}
