package translate

// Anthropic's Messages API (POST /v1/messages) in: the request validated
// and translated to Chat Completions (what stellwerk classifies and
// decides on, and what an OpenAI-wire provider gets), and the
// chat.completion answer translated back to a message. An Anthropic-wire
// provider gets the request as the client sent it (model renamed).
// docs/api.md#the-anthropic-messages-api holds the mapping; keep the two
// in step.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/jsonw"
	"github.com/stellwerk/stellwerk/internal/request"
)

// msgsChat is the Chat Completions request a Messages request becomes, in
// the order the golden files show.
type msgsChat struct {
	Model             string          `json:"model"`
	Messages          []chatMessage   `json:"messages"`
	Tools             []chatTool      `json:"tools,omitempty"`
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	MaxTokens         int64           `json:"max_completion_tokens"`
	Stop              []string        `json:"stop,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	User              string          `json:"user,omitempty"`
	Policy            json.RawMessage `json:"policy,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
	StreamOptions     json.RawMessage `json:"stream_options,omitempty"`
	Unread            json.RawMessage `json:"x_stellwerk_unread,omitempty"` // UnreadMember, the decision copy's alone
}

// messagesRefused are Messages members chat completions cannot carry and
// stellwerk does not emulate: a translation refuses them, never drops
// them; a decision copy reads them and sends the request to Anthropic-wire
// models only (MessagesForDecision). A top-level member named nowhere (a
// typo) is refused either way; one below the top level (in a block) is
// read and sent as is to an Anthropic-wire model, which refuses what it
// does not know.
var messagesRefused = map[string]string{
	"thinking":           "extended thinking (thinking) needs an Anthropic-wire model; this one is translated to chat completions",
	"container":          "containers (container) are not supported on /v1/messages by stellwerk",
	"mcp_servers":        "MCP servers (mcp_servers) are not supported on /v1/messages by stellwerk",
	"context_management": "context_management is not supported on /v1/messages by stellwerk",
	"service_tier":       "service_tier is not supported on /v1/messages by stellwerk",
	"output_config":      "output_config (structured outputs, effort) needs an Anthropic-wire model; this one is translated to chat completions",
	"output_format":      "output_format needs an Anthropic-wire model; this one is translated to chat completions",
	"cache_control":      "a top-level cache_control needs an Anthropic-wire model; this one is translated to chat completions",
	"inference_geo":      "inference_geo needs an Anthropic-wire model; this one is translated to chat completions",
}

// MessagesToChat validates an Anthropic Messages request and translates
// it into a Chat Completions request. Tools named longer than chat takes
// get short names there; names holds them, for the answer (nil when none
// is long). Errors are *apierr.Error (400, param naming the member); the
// edge renders them in Anthropic's error shape.
func MessagesToChat(body []byte) (chat []byte, names ToolNames, err error) {
	return messagesToChat(body, nil)
}

// MessagesForDecision is MessagesToChat for the decision: the copy also
// carries, in UnreadMember, what an Anthropic-wire provider gets as sent
// and the translation has no field for (cache_control, citations), so the
// classifiers read it; unread says it is there, for the edge to delete it
// from the translation it sends on.
//
// What only an Anthropic-wire provider can take (extended thinking,
// documents, images in tool results, server tools, members the
// translation has no field for) is read for the classifiers here, and
// native names the first of it: such a request goes to Anthropic-wire
// models only (a translating provider would lose it), where a coding
// agent's thinking or screenshot was a 400 whatever model it named (the
// agent probe).
func MessagesForDecision(body []byte) (chat []byte, names ToolNames, unread bool, native string, err error) {
	var u untranslated
	chat, names, err = messagesToChat(body, &u)
	return chat, names, err == nil && len(u.raw) > 0, u.native, err
}

// MessagesCountForDecision is MessagesForDecision for a token count
// (/v1/messages/count_tokens): the same request, whose max_tokens is not
// asked for. The copy is only classified; nothing is sent.
func MessagesCountForDecision(body []byte) ([]byte, error) {
	u := untranslated{count: true}
	chat, _, err := messagesToChat(body, &u)
	return chat, err
}

func messagesToChat(body []byte, u *untranslated) ([]byte, ToolNames, error) {
	root, err := request.Root(body, "messages")
	if err != nil {
		return nil, nil, err
	}
	var req msgsChat
	var names ToolNames
	var model, messages, system, maxTokens, tools, toolChoice gjson.Result
	var bad *apierr.Error
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "messages":
			messages = v
		case "system":
			system = v
		case "max_tokens":
			maxTokens = v
		case "tools":
			tools = v
		case "tool_choice":
			toolChoice = v
		case "stop_sequences":
			req.Stop, bad = msgsStop(v)
		case "temperature":
			req.Temperature, bad = msgsNumber(v, "temperature", 0, 1)
		case "top_p":
			req.TopP, bad = msgsNumber(v, "top_p", 0, 1)
		case "top_k":
			// A sampling hint chat has no field for: an Anthropic-wire
			// provider gets it, an OpenAI-wire one samples without it.
			if v.Type != gjson.Null && (v.Type != gjson.Number || v.Num < 0 || v.Num != float64(int64(v.Num))) {
				bad = apierr.Invalid("invalid_value", "top_k", "top_k must be a non-negative integer")
			}
		case "metadata":
			req.User, bad = msgsMetadata(v, u)
		case "policy":
			req.Policy = json.RawMessage(v.Raw)
		case "stream":
			switch v.Type {
			case gjson.True: // the chat stream becomes Anthropic's events (MessagesStream), its usage with them
				req.Stream, req.StreamOptions = true, json.RawMessage(`{"include_usage":true}`)
			case gjson.False, gjson.Null:
			default:
				bad = apierr.Invalid("invalid_type", "stream", "stream must be a boolean")
			}
		case "thinking":
			// Disabled thinking asks for nothing: any model can take it,
			// and a provider reading it as sent gets what else it holds.
			if v.Type == gjson.Null || (v.IsObject() && v.Get("type").Str == "disabled") {
				u.rest(v, "type")
				break
			}
			if u.nativeOnly("thinking") {
				u.add(v)
				break
			}
			bad = apierr.Invalid("unsupported_parameter", k.Str, "%s", messagesRefused[k.Str])
		default:
			if v.Type == gjson.Null { // a null member says nothing: nothing is dropped
				break
			}
			if why, ok := messagesRefused[k.Str]; ok {
				if u.nativeOnly(k.Str) {
					u.add(v) // its text is classified; the member goes as sent
					break
				}
				bad = apierr.Invalid("unsupported_parameter", k.Str, "%s", why)
			} else {
				bad = apierr.Invalid("unsupported_parameter", apierr.Truncate(k.Str, 64),
					"%s is not supported on /v1/messages by stellwerk (docs/api.md)", apierr.Truncate(k.Str, 64))
			}
		}
		return bad == nil
	})
	if bad != nil {
		return nil, nil, bad
	}
	switch {
	case !model.Exists() || model.Type == gjson.Null:
		return nil, nil, apierr.Invalid("missing_model", "model", "you must provide a model parameter")
	case model.Type != gjson.String:
		return nil, nil, apierr.Invalid("invalid_type", "model", "model must be a string")
	}
	req.Model = model.Str
	switch {
	case (!maxTokens.Exists() || maxTokens.Type == gjson.Null) && u != nil && u.count:
		maxTokens = gjson.Result{Type: gjson.Number, Num: 1} // a count writes nothing
	case !maxTokens.Exists() || maxTokens.Type == gjson.Null:
		return nil, nil, apierr.Invalid("missing_max_tokens", "max_tokens", "max_tokens is required on /v1/messages")
	case maxTokens.Type != gjson.Number || maxTokens.Num != float64(int64(maxTokens.Num)) || maxTokens.Num < 1 || maxTokens.Num > maxTokensLimit:
		return nil, nil, apierr.Invalid("invalid_value", "max_tokens", "max_tokens must be a positive integer")
	}
	req.MaxTokens = int64(maxTokens.Num)
	if sys, err := msgsSystem(system, u); err != nil {
		return nil, nil, err
	} else if sys != nil {
		req.Messages = append(req.Messages, chatMessage{Role: "system", Content: sys})
	}
	msgs, err2 := msgsMessages(messages, u)
	if err2 != nil {
		return nil, nil, err2
	}
	req.Messages = append(req.Messages, msgs...)
	if tools.Exists() && tools.Type != gjson.Null {
		if req.Tools, names, bad = msgsTools(tools, u); bad != nil {
			return nil, nil, bad
		}
	}
	if toolChoice.Exists() && toolChoice.Type != gjson.Null {
		if req.ToolChoice, req.ParallelToolCalls, bad = msgsToolChoice(toolChoice, u); bad != nil {
			return nil, nil, bad
		}
		if len(req.Tools) == 0 {
			req.ParallelToolCalls = nil // chat refuses it without tools
			if tc := string(req.ToolChoice); tc != `"none"` && tc != `"auto"` {
				return nil, nil, apierr.Invalid("invalid_value", "tool_choice", "tool_choice %s needs tools", apierr.Truncate(toolChoice.Get("type").Str, 32))
			}
			req.ToolChoice = nil
		}
	}
	req.Unread = u.member()
	chat, err := marshal(req)
	return chat, names, err
}

// msgsNumber is an optional number in [lo, hi].
func msgsNumber(v gjson.Result, name string, lo, hi float64) (*float64, *apierr.Error) {
	if v.Type == gjson.Null {
		return nil, nil
	}
	if v.Type != gjson.Number || v.Num < lo || v.Num > hi {
		return nil, apierr.Invalid("invalid_value", name, "%s must be a number between %g and %g", name, lo, hi)
	}
	f := v.Num
	return &f, nil
}

func msgsStop(v gjson.Result) ([]string, *apierr.Error) {
	if v.Type == gjson.Null {
		return nil, nil
	}
	if !v.IsArray() {
		return nil, apierr.Invalid("invalid_type", "stop_sequences", "stop_sequences must be an array of strings")
	}
	var out []string
	var bad *apierr.Error
	v.ForEach(func(_, s gjson.Result) bool {
		if s.Type != gjson.String || s.Str == "" {
			bad = apierr.Invalid("invalid_value", "stop_sequences", "stop_sequences[%d] must be a non-empty string", len(out))
			return false
		}
		out = append(out, s.Str)
		return true
	})
	return out, bad
}

// msgsMetadata reads metadata, whose one member Anthropic defines is
// user_id: chat's user.
func msgsMetadata(v gjson.Result, u *untranslated) (string, *apierr.Error) {
	if v.Type == gjson.Null {
		return "", nil
	}
	if !v.IsObject() {
		return "", apierr.Invalid("invalid_type", "metadata", "metadata must be an object")
	}
	var user string
	var bad *apierr.Error
	v.ForEach(func(k, val gjson.Result) bool {
		switch {
		case k.Str != "user_id" && u.nativeOnly("metadata."+apierr.Truncate(k.Str, 64)):
			u.raw = append(u.raw, json.RawMessage(k.Raw), json.RawMessage(val.Raw)) // classified, sent as is
		case k.Str != "user_id":
			bad = apierr.Invalid("unsupported_parameter", "metadata", "metadata.%s is not supported (only user_id is)", apierr.Truncate(k.Str, 64))
		case val.Type == gjson.String:
			user = val.Str
		case val.Type != gjson.Null:
			bad = apierr.Invalid("invalid_type", "metadata.user_id", "metadata.user_id must be a string")
		}
		return bad == nil
	})
	return user, bad
}

// msgsSystem is the system prompt (a string or text blocks) as one
// system message's content; nil when there is none.
func msgsSystem(v gjson.Result, u *untranslated) (json.RawMessage, *apierr.Error) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return nil, nil
	case v.Type == gjson.String:
		if v.Str == "" {
			return nil, nil
		}
		return json.RawMessage(v.Raw), nil
	case !v.IsArray():
		return nil, apierr.Invalid("invalid_type", "system", "system must be a string or an array of text blocks")
	}
	var parts []string
	var bad *apierr.Error
	i := -1
	v.ForEach(func(_, b gjson.Result) bool {
		i++
		p := "system[" + strconv.Itoa(i) + "]"
		if b.Get("type").Str != "text" || b.Get("text").Type != gjson.String {
			bad = apierr.Invalid("invalid_value", p, "%s must be a text block {\"type\":\"text\",\"text\":…}", p)
			return false
		}
		bad = msgsBlockKeys(b, p, u, "type", "text", "cache_control", "citations")
		u.rest(b, "type", "text")
		parts = append(parts, b.Get("text").Str)
		return bad == nil
	})
	if bad != nil || len(parts) == 0 {
		return nil, bad
	}
	return jsonString(strings.Join(parts, "\n\n")), nil
}

// msgsBlockKeys refuses a block member the translation would drop
// without saying so. A null member is no value to drop: Anthropic's SDKs
// write their optional fields as null when a client resends a block it
// received (model_dump), such as tool_use's caller.
func msgsBlockKeys(b gjson.Result, p string, u *untranslated, known ...string) *apierr.Error {
	var bad *apierr.Error
	b.ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null {
			return true
		}
		for _, n := range known {
			if k.Str == n {
				return true
			}
		}
		if u.nativeOnly(p + "." + apierr.Truncate(k.Str, 64)) {
			return true // the caller's u.rest reads it
		}
		bad = apierr.Invalid("unsupported_parameter", p+"."+apierr.Truncate(k.Str, 64), "%s.%s is not supported on /v1/messages by stellwerk", p, apierr.Truncate(k.Str, 64))
		return false
	})
	return bad
}

// chatPart is a chat content part: text, an image or a file.
type chatPart struct {
	Type     string        `json:"type"`
	Text     *string       `json:"text,omitempty"`
	ImageURL *chatImageURL `json:"image_url,omitempty"`
	File     *chatFile     `json:"file,omitempty"`
}

type chatImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

type chatFile struct {
	FileData string `json:"file_data,omitempty"`
	// FileID is a Responses input_file's file_id, in a decision copy only:
	// the classifiers count a file they cannot read.
	FileID string `json:"file_id,omitempty"`
}

// msgsMessages turns the messages into chat messages: a user message's
// tool_result blocks become tool messages (before its other blocks, which
// stay a user message), an assistant message's tool_use blocks its
// tool_calls.
func msgsMessages(v gjson.Result, u *untranslated) ([]chatMessage, *apierr.Error) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return nil, apierr.Invalid("missing_messages", "messages", "you must provide a messages parameter")
	case !v.IsArray():
		return nil, apierr.Invalid("invalid_type", "messages", "messages must be an array")
	}
	var out []chatMessage
	var bad *apierr.Error
	i := -1
	v.ForEach(func(_, m gjson.Result) bool {
		i++
		p := "messages[" + strconv.Itoa(i) + "]"
		if !m.IsObject() {
			bad = apierr.Invalid("invalid_type", p, "%s must be an object", p)
			return false
		}
		if bad = msgsBlockKeys(m, p, u, "role", "content"); bad != nil {
			return false
		}
		u.rest(m, "role", "content") // what only an Anthropic-wire provider takes, read
		role := m.Get("role")
		if role.Str != "user" && role.Str != "assistant" {
			bad = apierr.Invalid("invalid_value", p+".role", "%s.role must be user or assistant", p)
			return false
		}
		c := m.Get("content")
		switch {
		case c.Type == gjson.String:
			out = append(out, chatMessage{Role: role.Str, Content: json.RawMessage(c.Raw)})
			return true
		case !c.IsArray():
			bad = apierr.Invalid("invalid_type", p+".content", "%s.content must be a string or an array of content blocks", p)
			return false
		}
		out, bad = msgsBlocks(out, role.Str, c, p+".content", u)
		return bad == nil
	})
	if bad != nil {
		return nil, bad
	}
	if len(out) == 0 {
		return nil, apierr.Invalid("empty_messages", "messages", "messages must contain at least one message")
	}
	return out, nil
}

// msgsBlocks appends the chat messages of one message's content blocks.
func msgsBlocks(out []chatMessage, role string, c gjson.Result, p string, u *untranslated) ([]chatMessage, *apierr.Error) {
	var parts []chatPart
	var calls []chatToolCall
	var bad *apierr.Error
	j := -1
	c.ForEach(func(_, b gjson.Result) bool {
		j++
		bp := p + "[" + strconv.Itoa(j) + "]"
		if !b.IsObject() {
			bad = apierr.Invalid("invalid_type", bp, "%s must be a content block", bp)
			return false
		}
		switch t := b.Get("type").Str; {
		case t == "text":
			if bad = msgsBlockKeys(b, bp, u, "type", "text", "cache_control", "citations"); bad != nil {
				return false
			}
			text := b.Get("text")
			if text.Type != gjson.String {
				bad = apierr.Invalid("invalid_type", bp+".text", "%s.text must be a string", bp)
				return false
			}
			u.rest(b, "type", "text")
			parts = append(parts, chatPart{Type: "text", Text: &text.Str})
		case t == "image" && role == "user":
			if st := b.Get("source.type"); st.Str != "base64" && st.Str != "url" && st.Exists() && u.nativeOnly(bp+".source.type "+apierr.Truncate(st.Str, 64)) {
				// An image by file id (Anthropic's Files API, the
				// multimodal probe): only the provider holding the file
				// can read it, as for a document by file id.
				parts = nativeParts(parts, b)
				return true
			}
			if bad = msgsBlockKeys(b, bp, u, "type", "source", "cache_control"); bad != nil {
				return false
			}
			u.rest(b, "type", "source")
			u.rest(b.Get("source"), "type", "media_type", "data", "url") // what else the source carries
			var u string
			if u, bad = msgsImage(b.Get("source"), bp+".source"); bad != nil {
				return false
			}
			parts = append(parts, chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: u}})
		case t == "tool_use" && role == "assistant":
			if bad = msgsBlockKeys(b, bp, u, "type", "id", "name", "input", "cache_control"); bad != nil {
				return false
			}
			u.rest(b, "type", "id", "name", "input")
			id, name, input := b.Get("id"), b.Get("name"), b.Get("input")
			if id.Type != gjson.String || id.Str == "" || name.Type != gjson.String || name.Str == "" || !input.IsObject() {
				bad = apierr.Invalid("invalid_value", bp, "%s: a tool_use block needs id and name (strings) and input (an object)", bp)
				return false
			}
			calls = append(calls, chatToolCall{ID: id.Str, Type: "function", Function: chatFunction{Name: chatToolName(name, u), Arguments: compactJSON(input)}})
		case t == "tool_result" && role == "user":
			if bad = msgsBlockKeys(b, bp, u, "type", "tool_use_id", "content", "is_error", "cache_control"); bad != nil {
				return false
			}
			u.rest(b, "type", "tool_use_id", "content", "is_error")
			var tm chatMessage
			var media []chatPart
			if tm, media, bad = msgsToolResult(b, bp, u); bad != nil {
				return false
			}
			if len(parts) > 0 { // text before a tool result keeps its place
				out = append(out, chatMessage{Role: role, Content: partsContent(parts)})
				parts = nil
			}
			out = append(out, tm)
			parts = append(parts, media...) // a decision copy's images and documents of the result
		default:
			if u.nativeOnly(bp + ".type " + apierr.Truncate(t, 64)) {
				parts = nativeParts(parts, b)
				return true
			}
			bad = apierr.Invalid("unsupported_value", bp+".type",
				"content blocks of type %q are not supported in %s messages on /v1/messages by stellwerk (text, image, tool_use, tool_result are)", apierr.Truncate(t, 64), role)
			return false
		}
		return true
	})
	if bad != nil {
		return nil, bad
	}
	switch {
	case len(calls) > 0:
		content := json.RawMessage("null")
		if len(parts) > 0 {
			content = textContent(parts)
		}
		out = append(out, chatMessage{Role: role, Content: content, ToolCalls: calls})
	case len(parts) > 0:
		out = append(out, chatMessage{Role: role, Content: partsContent(parts)})
	case j < 0:
		return nil, apierr.Invalid("invalid_value", p, "%s must not be empty", p)
	}
	return out, nil
}

// partsContent is a message's parts: text alone as one string, with
// images as chat's parts.
func partsContent(parts []chatPart) json.RawMessage {
	for _, pt := range parts {
		if pt.Type != "text" {
			b, _ := marshal(parts)
			return b
		}
	}
	return textContent(parts)
}

func textContent(parts []chatPart) json.RawMessage {
	if len(parts) == 1 {
		return jsonString(*parts[0].Text)
	}
	var sb strings.Builder
	for i, pt := range parts {
		if pt.Text == nil {
			continue
		}
		if i > 0 {
			sb.WriteString("\n\n")
		}
		sb.WriteString(*pt.Text)
	}
	return jsonString(sb.String())
}

// msgsImage is an image source as chat's image URL: base64 data as a
// data: URL, a url source as is.
func msgsImage(src gjson.Result, p string) (string, *apierr.Error) {
	switch src.Get("type").Str {
	case "base64":
		mt, data := src.Get("media_type"), src.Get("data")
		ok := false
		for _, t := range anthImageTypes {
			ok = ok || mt.Str == t
		}
		if !ok || data.Type != gjson.String || data.Str == "" {
			return "", apierr.Invalid("invalid_value", p, "%s: a base64 image needs media_type (image/jpeg, image/png, image/gif or image/webp) and data", p)
		}
		return "data:" + mt.Str + ";base64," + data.Str, nil
	case "url":
		if u := src.Get("url"); u.Type == gjson.String && (strings.HasPrefix(u.Str, "https://") || strings.HasPrefix(u.Str, "http://")) {
			return u.Str, nil
		}
		return "", apierr.Invalid("invalid_value", p+".url", "%s.url must be an http(s) URL", p)
	}
	return "", apierr.Invalid("unsupported_value", p+".type", "%s.type must be base64 or url (files are not supported)", p)
}

// msgsToolResult is a tool_result block as a tool message: its content
// a string or text blocks (joined). is_error has no chat field: the text
// says so. A decision copy takes its other blocks (an image, a document:
// an agent's screenshot or PDF) as media, the parts the classifiers read.
func msgsToolResult(b gjson.Result, p string, u *untranslated) (chatMessage, []chatPart, *apierr.Error) {
	id := b.Get("tool_use_id")
	if id.Type != gjson.String || id.Str == "" {
		return chatMessage{}, nil, apierr.Invalid("invalid_value", p+".tool_use_id", "%s.tool_use_id must be a non-empty string", p)
	}
	var media []chatPart
	var text string
	switch c := b.Get("content"); {
	case !c.Exists() || c.Type == gjson.Null:
	case c.Type == gjson.String:
		text = c.Str
	case c.IsArray():
		var parts []string
		var bad *apierr.Error
		k := -1
		c.ForEach(func(_, blk gjson.Result) bool {
			k++
			bp := p + ".content[" + strconv.Itoa(k) + "]"
			if blk.Get("type").Str == "text" && blk.Get("text").Type != gjson.String {
				bad = apierr.Invalid("invalid_type", bp+".text", "%s.text must be a string", bp)
				return false
			}
			if blk.Get("type").Str != "text" {
				if blk.IsObject() && u.nativeOnly(bp+".type "+apierr.Truncate(blk.Get("type").Str, 64)) {
					media = nativeParts(media, blk)
					return true
				}
				bad = apierr.Invalid("unsupported_value", bp, "%s: tool results are translated as text; only text blocks are supported", bp)
				return false
			}
			// A member of a text block the translation would drop is
			// refused, as in a message's blocks.
			if bad = msgsBlockKeys(blk, bp, u, "type", "text", "cache_control", "citations"); bad != nil {
				return false
			}
			u.rest(blk, "type", "text")
			parts = append(parts, blk.Get("text").Str)
			return true
		})
		if bad != nil {
			return chatMessage{}, nil, bad
		}
		text = strings.Join(parts, "\n\n")
	default:
		return chatMessage{}, nil, apierr.Invalid("invalid_type", p+".content", "%s.content must be a string or an array of text blocks", p)
	}
	switch e := b.Get("is_error"); e.Type {
	case gjson.True:
		text = "Error: " + text
	case gjson.False, gjson.Null:
	default:
		return chatMessage{}, nil, apierr.Invalid("invalid_type", p+".is_error", "%s.is_error must be a boolean", p)
	}
	return chatMessage{Role: "tool", ToolCallID: id.Str, Content: jsonString(text)}, media, nil
}

// nativeParts appends what an Anthropic block the translation has no
// form for holds, as the parts the classifiers read: a thinking block's
// text (not its signature), a document's text or file (base64 decoded as
// a chat file part: a PDF counts as a file they cannot read), an image,
// a search result's text; any other block's JSON as text, with the files
// and images in it (unreadText's walk). A redacted_thinking block is the
// provider's own ciphertext: nothing to read.
func nativeParts(parts []chatPart, b gjson.Result) []chatPart {
	// text reads a member that should hold text; one that holds another
	// value is read as its JSON (the provider gets it as sent).
	text := func(v gjson.Result) {
		var s string
		switch {
		case v.Type == gjson.String:
			s = v.Str
		case v.Exists() && v.Type != gjson.Null:
			var sb strings.Builder
			unreadWalk(v, &sb, &parts)
			s = sb.String()
		}
		if s != "" {
			parts = append(parts, chatPart{Type: "text", Text: &s})
		}
	}
	// others reads obj's members but read (as text, with the files and
	// images in them as parts): a member the cases below do not name
	// reaches the provider too.
	others := func(obj gjson.Result, read ...string) {
		var sb strings.Builder
		obj.ForEach(func(k, v gjson.Result) bool {
			if v.Type != gjson.Null && !slices.Contains(read, k.Str) {
				sb.WriteString(k.Raw)
				sb.WriteByte(':')
				unreadWalk(v, &sb, &parts)
				sb.WriteByte(' ')
			}
			return true
		})
		if sb.Len() > 0 {
			s := sb.String()
			parts = append(parts, chatPart{Type: "text", Text: &s})
		}
	}
	src := b.Get("source")
	switch b.Get("type").Str {
	case "redacted_thinking":
		others(b, "type", "data")
	case "thinking":
		text(b.Get("thinking"))
		others(b, "type", "thinking", "signature")
	case "image":
		if url, bad := msgsImage(src, ""); bad == nil {
			parts = append(parts, chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: url}})
			others(src, "type", "media_type", "data", "url")
		} else {
			parts = append(parts, chatPart{Type: "input_image"}) // by file id: an image all the same
			others(src)                                          // whatever the source is, read
		}
		others(b, "type", "source")
	case "document":
		text(b.Get("title"))
		text(b.Get("context"))
		switch src.Get("type").Str {
		case "base64":
			parts = append(parts, chatPart{Type: "file", File: &chatFile{FileData: "data:" + src.Get("media_type").Str + ";base64," + src.Get("data").Str}})
			others(src, "type", "media_type", "data")
		case "text":
			text(src.Get("data"))
			others(src, "type", "media_type", "data")
		case "content":
			if c := src.Get("content"); c.IsArray() {
				c.ForEach(func(_, blk gjson.Result) bool {
					parts = nativeParts(parts, blk)
					return true
				})
			} else {
				text(c)
			}
			others(src, "type", "content")
		default: // url, file: the provider fetches it, the classifiers cannot
			parts = append(parts, chatPart{Type: "file", File: &chatFile{FileID: cmp.Or(src.Get("file_id").Str, "document")}})
			others(src, "type", "file_id")
		}
		others(b, "type", "title", "context", "source")
	case "search_result":
		text(b.Get("title"))
		text(b.Get("source"))
		if c := b.Get("content"); c.IsArray() {
			c.ForEach(func(_, blk gjson.Result) bool {
				parts = nativeParts(parts, blk)
				return true
			})
		} else {
			text(c)
		}
		others(b, "type", "title", "source", "content")
	case "text":
		text(b.Get("text"))
		others(b, "type", "text")
	default:
		parts = appendUnreadPart(parts, b)
	}
	return parts
}

// msgsTools are custom (client) tools as chat's functions, and the
// names too long for chat they give short ones; Anthropic's server and
// built-in tools (web search, bash, text editor, …) have no chat
// counterpart.
func msgsTools(v gjson.Result, u *untranslated) ([]chatTool, ToolNames, *apierr.Error) {
	if !v.IsArray() {
		return nil, nil, apierr.Invalid("invalid_type", "tools", "tools must be an array")
	}
	type fn struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      bool            `json:"strict,omitempty"`
	}
	var out []chatTool
	var names ToolNames
	var bad *apierr.Error
	i := -1
	v.ForEach(func(_, t gjson.Result) bool {
		i++
		p := "tools[" + strconv.Itoa(i) + "]"
		if typ := t.Get("type"); typ.Exists() && typ.Type != gjson.Null && typ.Str != "custom" {
			if u.nativeOnly(p + " of type " + apierr.Truncate(typ.Str, 64)) {
				u.add(t) // a server tool's settings are the caller's text too
				return true
			}
			bad = apierr.Invalid("unsupported_value", p+".type",
				"tools of type %q (Anthropic's server and built-in tools) are not supported by stellwerk; custom tools with input_schema are", apierr.Truncate(typ.Str, 64))
			return false
		}
		// strict is chat's function.strict; eager_input_streaming asks
		// Anthropic to stream a call's input unbuffered, a hint chat has
		// no use for. The Vercel AI SDK sends it on every tool of a
		// stream, and both kept such requests off OpenAI-wire models (the
		// frameworks probe).
		if bad = msgsBlockKeys(t, p, u, "type", "name", "description", "input_schema", "cache_control", "strict", "eager_input_streaming"); bad != nil {
			return false
		}
		u.rest(t, "type", "name", "description", "input_schema", "strict", "eager_input_streaming")
		name, desc, schema, strict := t.Get("name"), t.Get("description"), t.Get("input_schema"), t.Get("strict")
		if strict.Exists() && strict.Type != gjson.True && strict.Type != gjson.False && strict.Type != gjson.Null {
			bad = apierr.Invalid("invalid_type", p+".strict", "%s.strict must be a boolean", p)
			return false
		}
		if name.Type != gjson.String || name.Str == "" {
			bad = apierr.Invalid("invalid_value", p+".name", "%s.name must be a non-empty string", p)
			return false
		}
		if desc.Exists() && desc.Type != gjson.String {
			bad = apierr.Invalid("invalid_type", p+".description", "%s.description must be a string", p)
			return false
		}
		if !schema.IsObject() {
			bad = apierr.Invalid("invalid_value", p+".input_schema", "%s.input_schema must be a JSON Schema object", p)
			return false
		}
		short := chatToolName(name, u)
		if short != name.Str {
			names = append(names, toolName{short: short, long: name.Str})
		}
		b, _ := marshal(fn{Name: short, Description: desc.Str, Parameters: json.RawMessage(compactJSON(schema)), Strict: strict.Type == gjson.True})
		out = append(out, chatTool{Type: "function", Function: b})
		return true
	})
	if bad == nil && names != nil {
		// A tool of the client's named as another's short name would make
		// two functions of one name, and its calls come back as the other
		// tool's (the red team): refused, it cannot be told apart.
		v.ForEach(func(_, t gjson.Result) bool {
			n := t.Get("name").Str
			for _, tn := range names {
				if n == tn.short {
					bad = apierr.Invalid("invalid_value", "tools", "tool %q has the name stellwerk gives tool %q for models that take names of at most %d characters; rename one",
						apierr.Truncate(n, 64), apierr.Truncate(tn.long, 128), toolNameMax)
					return false
				}
			}
			return true
		})
	}
	return out, names, bad
}

// msgsToolChoice is tool_choice as chat's, and disable_parallel_tool_use
// as parallel_tool_calls: false.
func msgsToolChoice(v gjson.Result, u *untranslated) (json.RawMessage, *bool, *apierr.Error) {
	if !v.IsObject() {
		return nil, nil, apierr.Invalid("invalid_type", "tool_choice", "tool_choice must be an object with a type")
	}
	if bad := msgsBlockKeys(v, "tool_choice", nil, "type", "name", "disable_parallel_tool_use"); bad != nil {
		return nil, nil, bad
	}
	var parallel *bool
	switch d := v.Get("disable_parallel_tool_use"); d.Type {
	case gjson.True:
		f := false
		parallel = &f
	case gjson.False, gjson.Null:
	default:
		return nil, nil, apierr.Invalid("invalid_type", "tool_choice.disable_parallel_tool_use", "tool_choice.disable_parallel_tool_use must be a boolean")
	}
	switch v.Get("type").Str {
	case "auto":
		return json.RawMessage(`"auto"`), parallel, nil
	case "any":
		return json.RawMessage(`"required"`), parallel, nil
	case "none":
		return json.RawMessage(`"none"`), nil, nil
	case "tool":
		if n := v.Get("name"); n.Type == gjson.String && n.Str != "" {
			var buf bytes.Buffer
			buf.WriteString(`{"type":"function","function":{"name":`)
			buf.Write(jsonw.AppendString(nil, chatToolName(n, u)))
			buf.WriteString(`}}`)
			return buf.Bytes(), parallel, nil
		}
		return nil, nil, apierr.Invalid("invalid_value", "tool_choice.name", "tool_choice of type tool needs a name")
	}
	return nil, nil, apierr.Invalid("invalid_value", "tool_choice.type", "tool_choice.type must be auto, any, tool or none")
}

// jsonString is s as a JSON string, escaped as marshal escapes it (no
// HTML escaping, unlike quote's encoding/json).
func jsonString(s string) json.RawMessage {
	return jsonw.AppendString(make([]byte, 0, len(s)+2), s)
}
