package translate

// The OpenAI Responses API (POST /v1/responses) → Chat Completions request
// translation, and the chat.completion → response object back, for
// providers that speak only Chat Completions (and, composed with the
// Anthropic translation, for Anthropic-wire providers). Streams:
// responses_stream.go.
// docs/api.md#the-responses-api holds the mapping; keep the two in step.

import (
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// chatRequest is the Chat Completions request a Responses request becomes,
// in the order the tests show.
type chatRequest struct {
	Model             string          `json:"model"`
	Messages          []chatMessage   `json:"messages"`
	Tools             []chatTool      `json:"tools,omitempty"`
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls json.RawMessage `json:"parallel_tool_calls,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
	MaxTokens         json.RawMessage `json:"max_completion_tokens,omitempty"`
	Temperature       json.RawMessage `json:"temperature,omitempty"`
	TopP              json.RawMessage `json:"top_p,omitempty"`
	ReasoningEffort   json.RawMessage `json:"reasoning_effort,omitempty"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	User              json.RawMessage `json:"user,omitempty"`
	ServiceTier       json.RawMessage `json:"service_tier,omitempty"`
	Policy            json.RawMessage `json:"policy,omitempty"`
	Stream            bool            `json:"stream,omitempty"`
	StreamOptions     json.RawMessage `json:"stream_options,omitempty"`
	Unread            json.RawMessage `json:"x_stellwerk_unread,omitempty"` // UnreadMember, the decision copy's alone
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []chatToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string          `json:"type"`
	Function json.RawMessage `json:"function"`
}

// responsesRefused are Responses members no Chat Completions request can
// carry: refused, never dropped, so no request means less than it says.
var responsesRefused = map[string]string{
	"previous_response_id": "stored responses (previous_response_id) need a provider that serves the Responses API natively; none is configured, send the whole conversation in input",
	"conversation":         "conversations need a provider that serves the Responses API natively; none is configured, send the whole conversation in input",
	"prompt":               "prompt templates need a provider that serves the Responses API natively; none is configured",
}

// responsesIgnored are members with no effect on a single stateless answer.
// stream_options has include_obfuscation alone, which a translated
// stream has no use for.
var responsesIgnored = map[string]bool{"store": true, "include": true, "truncation": true, "stream_options": true}

// errBadAnswer: a provider's 2xx answer is not a chat completion.
var errBadAnswer = errors.New("the provider's answer is not a chat completion")

// ResponsesNeeds is what a Responses request needs of a provider beyond
// what its Chat Completions translation carries.
type ResponsesNeeds struct {
	// Native names the first member, tool, item or part only a provider
	// that serves the Responses API natively can take ("" for none).
	Native string
	// Stored: the request continues a stored response or conversation
	// (previous_response_id, conversation): only a native provider that
	// keeps its responses can answer it.
	Stored bool
	// Unread: the decision copy carries UnreadMember, which the edge
	// deletes from the translation it sends on.
	Unread bool
	u      *untranslated
}

// ResponsesToChat translates a Responses API request into a Chat Completions
// request. Errors are *apierr.Error (400, param naming the member).
func ResponsesToChat(body []byte) ([]byte, error) {
	return responsesToChat(body, nil)
}

// ResponsesForDecision translates a Responses API request into the Chat
// Completions request that is classified and decided: what a native
// provider alone can take (previous_response_id, built-in tools, other
// item types, members chat has no field for) is not refused but reported
// in needs, and the text of what chat cannot carry is still read (as user
// text), so the classifiers see everything the model will. Errors are
// *apierr.Error for requests no provider could take.
func ResponsesForDecision(body []byte) ([]byte, ResponsesNeeds, error) {
	needs := ResponsesNeeds{u: &untranslated{}}
	b, err := responsesToChat(body, &needs)
	needs.u = nil
	return b, needs, err
}

// keep is the decision copy's unread text, nil for a provider's
// translation.
func (n *ResponsesNeeds) keep() *untranslated {
	if n == nil {
		return nil
	}
	return n.u
}

// native records, in lenient mode, that what names needs a native
// provider; it reports false in strict mode (needs nil): refuse.
func (n *ResponsesNeeds) native(what string) bool {
	if n == nil {
		return false
	}
	if n.Native == "" {
		n.Native = what
	}
	return true
}

func responsesToChat(body []byte, needs *ResponsesNeeds) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, apierr.Invalid("invalid_json", "", "the request body is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, apierr.Invalid("invalid_request_body", "", "the request body must be a JSON object")
	}
	var req chatRequest
	var input, instructions gjson.Result
	var bad *apierr.Error
	var unread []chatMessage // text of what only a native provider takes, for the classifiers
	root.ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null && k.Str != "model" {
			return true // null is absent, as OpenAI reads it
		}
		raw := json.RawMessage(v.Raw)
		switch k.Str {
		case "model":
			if v.Type != gjson.String {
				bad = apierr.Invalid("invalid_type", "model", "model must be a string")
			}
			req.Model = v.Str
		case "input":
			input = v
		case "instructions":
			instructions = v
		case "tools":
			req.Tools, bad = responsesTools(v, needs, &unread)
		case "tool_choice":
			if v.IsObject() { // allowed_tools, a built-in or an MCP tool's names
				needs.keep().add(v)
			}
			req.ToolChoice, bad = responsesToolChoice(v)
			if bad != nil && needs.native("tool_choice") { // a built-in tool's
				req.ToolChoice, bad = nil, nil
			}
		case "parallel_tool_calls":
			req.ParallelToolCalls = raw
		case "text":
			needs.keep().rest(v, "format") // verbosity
			if f := v.Get("format"); f.Get("type").Str != "json_schema" {
				needs.keep().rest(f, "type") // what text and json_object formats carry beside their type
			}
			req.ResponseFormat, bad = responsesFormat(v.Get("format"))
		case "max_output_tokens":
			// Checked here, under the client's name for it: chat's check
			// would name max_completion_tokens, which it never sent.
			if v.Type != gjson.Null && (v.Type != gjson.Number || v.Num < 1 || v.Num != float64(int64(v.Num))) {
				bad = apierr.Invalid("invalid_value", "max_output_tokens", "max_output_tokens must be a positive integer")
			}
			req.MaxTokens = raw
		case "temperature":
			req.Temperature = raw
		case "top_p":
			req.TopP = raw
		case "reasoning":
			needs.keep().rest(v, "effort") // summary, …
			if e := v.Get("effort"); e.Exists() {
				req.ReasoningEffort = json.RawMessage(e.Raw)
			}
		case "metadata":
			req.Metadata = raw
		case "user":
			req.User = raw
		case "service_tier":
			req.ServiceTier = raw
		case "safety_identifier", "prompt_cache_key":
			// No effect on a translated answer (dropped there), but a native
			// provider gets them: the decision's copy reads them.
			if needs != nil && v.Type == gjson.String && v.Str != "" {
				unread = append(unread, unreadText(v))
			}
		case "policy":
			req.Policy = raw
		case "stream":
			switch v.Type {
			case gjson.True: // the chat stream becomes typed events (ResponsesStream), its usage with them
				req.Stream, req.StreamOptions = true, json.RawMessage(`{"include_usage":true}`)
			case gjson.False, gjson.Null:
			default:
				bad = apierr.Invalid("invalid_type", "stream", "stream must be a boolean")
			}
		case "background":
			// A background response is fetched later (GET
			// /v1/responses/{id}), which stellwerk does not route: the
			// job would run, be billed and never be collected (the SDK
			// probe). Refused for every model; false passes.
			switch v.Type {
			case gjson.False, gjson.Null:
			case gjson.True:
				bad = apierr.Invalid("unsupported_parameter", "background",
					"background responses are not supported: stellwerk does not route GET /v1/responses/{id}, so the result could not be fetched; send the request without background (stream it for a long answer)")
			default:
				bad = apierr.Invalid("invalid_type", "background", "background must be a boolean")
			}
		default:
			if why, ok := responsesRefused[k.Str]; ok {
				if v.Type == gjson.Null {
					return true
				}
				if needs.native(k.Str) {
					needs.Stored = needs.Stored || k.Str == "previous_response_id" || k.Str == "conversation"
					unread = append(unread, unreadText(v))
					return true
				}
				bad = apierr.Invalid("unsupported_parameter", k.Str, "%s", why)
			} else if responsesIgnored[k.Str] {
				needs.keep().add(v) // a native provider gets include, truncation, stream_options
			} else {
				if needs.native(k.Str) {
					unread = append(unread, unreadText(v))
					return true
				}
				bad = apierr.Invalid("unsupported_parameter", k.Str,
					"%s is not supported on /v1/responses by stellwerk (it translates to chat completions; docs/api.md)", apierr.Truncate(k.Str, 64))
			}
		}
		return bad == nil
	})
	if bad != nil {
		return nil, bad
	}
	if instructions.Exists() && instructions.Type != gjson.Null {
		if instructions.Type != gjson.String {
			return nil, apierr.Invalid("invalid_type", "instructions", "instructions must be a string")
		}
		req.Messages = append(req.Messages, chatMessage{Role: "system", Content: quote(instructions.Str)})
	}
	msgs, err := responsesInput(input, needs)
	if err != nil {
		return nil, err
	}
	req.Messages = append(req.Messages, msgs...)
	req.Messages = append(req.Messages, unread...)
	if req.Unread = needs.keep().member(); req.Unread != nil {
		needs.Unread = true
	}
	return json.Marshal(req)
}

// unreadText is a member chat cannot carry as a user message of its JSON
// text, so that it is classified all the same. The files and images in it,
// wherever they are (a prompt's variables, a tool output's parts, a
// built-in tool's file_ids), become the parts the classifiers read in a
// chat request: a file sent inline is decoded (and not also read as base64
// text), one by reference counted as a file they cannot read, an image
// counted — a file in a prompt's variables reached a US model unread (the
// red-team probe).
func unreadText(v gjson.Result) chatMessage {
	if v.Type == gjson.String {
		return chatMessage{Role: "user", Content: quote(v.Str)}
	}
	var parts []chatPart
	var b strings.Builder
	unreadWalk(v, &b, &parts)
	text := b.String()
	if len(parts) == 0 {
		return chatMessage{Role: "user", Content: quote(text)}
	}
	c, _ := json.Marshal(append(parts, chatPart{Type: "text", Text: &text}))
	return chatMessage{Role: "user", Content: c}
}

// unreadWalk writes v's JSON to b, each inline file's and image's data
// left out, and appends the parts those and the files by reference are:
// a file_data or an Anthropic base64 source decoded (a text one read as
// text, a PDF counted), an image anywhere (input_image, an image_url, a
// screenshot, a base64 image/* source) counted as an image, a file_id,
// file_ids or vector_store_ids counted as files the classifiers cannot
// read, and an Anthropic image or document block read as nativeParts
// reads it.
func unreadWalk(v gjson.Result, b *strings.Builder, parts *[]chatPart) {
	switch {
	case v.IsObject():
		typ := v.Get("type").Str
		if (typ == "image" || typ == "document") && v.Get("source").IsObject() {
			*parts = nativeParts(*parts, v)
			return
		}
		image := typ == "input_image" || typ == "image"
		switch {
		case typ == "input_image":
			if u := v.Get("image_url"); u.Type == gjson.String {
				*parts = append(*parts, imagePart(u.Str))
			} else {
				*parts = append(*parts, chatPart{Type: "input_image"})
			}
		case typ == "input_file" && v.Get("file_data").Type != gjson.String:
			*parts = append(*parts, chatPart{Type: "file", File: &chatFile{FileID: cmp.Or(v.Get("file_id").Str, "file_url")}})
		case typ == "base64" && v.Get("data").Type == gjson.String:
			// An Anthropic source outside the blocks nativeParts knows.
			url := "data:" + v.Get("media_type").Str + ";base64," + v.Get("data").Str
			if strings.HasPrefix(v.Get("media_type").Str, "image/") {
				*parts = append(*parts, chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: url}})
			} else {
				*parts = append(*parts, chatPart{Type: "file", File: &chatFile{FileData: url}})
			}
		}
		b.WriteByte('{')
		n := 0
		v.ForEach(func(k, m gjson.Result) bool {
			key := strings.ToLower(k.Str)
			switch {
			case key == "file_data" && m.Type == gjson.String:
				*parts = append(*parts, chatPart{Type: "file", File: &chatFile{FileData: m.Str}})
				return true // decoded there, not read again as base64
			case key == "data" && typ == "base64" && m.Type == gjson.String:
				return true // the source's data: a part above
			case key == "image_url" && !image:
				// A screenshot, an image in a prompt's variables: an image.
				if m.Type == gjson.String {
					*parts = append(*parts, imagePart(m.Str))
				} else {
					*parts = append(*parts, chatPart{Type: "input_image"})
				}
				if m.Type == gjson.String && strings.HasPrefix(m.Str, "data:") {
					return true
				}
			case key == "image_url" && m.Type == gjson.String && strings.HasPrefix(m.Str, "data:"):
				return true // counted above; base64 is no text
			case key == "file_id" && m.Type == gjson.String && !image && typ != "input_file":
				*parts = append(*parts, chatPart{Type: "file", File: &chatFile{FileID: cmp.Or(m.Str, "file")}})
			case (key == "file_ids" || key == "vector_store_ids") && m.IsArray():
				m.ForEach(func(_, id gjson.Result) bool {
					*parts = append(*parts, chatPart{Type: "file", File: &chatFile{FileID: cmp.Or(id.Str, "file")}})
					return true
				})
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			b.WriteString(k.Raw)
			b.WriteByte(':')
			unreadWalk(m, b, parts)
			return true
		})
		b.WriteByte('}')
	case v.IsArray():
		b.WriteByte('[')
		n := 0
		v.ForEach(func(_, m gjson.Result) bool {
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			unreadWalk(m, b, parts)
			return true
		})
		b.WriteByte(']')
	default:
		b.WriteString(v.Raw)
	}
}

// imagePart is an image by its URL, for the classifiers: a data: URL that
// holds no image (data:text/plain,…) is a file they decode and read.
func imagePart(url string) chatPart {
	if rest, ok := strings.CutPrefix(url, "data:"); ok && !strings.HasPrefix(strings.ToLower(rest), "image/") {
		return chatPart{Type: "file", File: &chatFile{FileData: url}}
	}
	return chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: url}}
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// responsesInput turns input (a string, or a list of items: messages,
// function calls and their outputs) into chat messages. Consecutive
// function calls become one assistant message with parallel tool calls.
func responsesInput(input gjson.Result, needs *ResponsesNeeds) ([]chatMessage, *apierr.Error) {
	switch {
	case !input.Exists() || input.Type == gjson.Null:
		return nil, apierr.Invalid("missing_input", "input", "you must provide an input parameter")
	case input.Type == gjson.String:
		return []chatMessage{{Role: "user", Content: quote(input.Str)}}, nil
	case !input.IsArray():
		return nil, apierr.Invalid("invalid_type", "input", "input must be a string or an array of items")
	}
	var msgs, tail []chatMessage // tail: what only a native provider reads, after the conversation
	var bad *apierr.Error
	i := -1
	input.ForEach(func(_, it gjson.Result) bool {
		i++
		p := "input[" + strconv.Itoa(i) + "]"
		if !it.IsObject() {
			bad = apierr.Invalid("invalid_type", p, "%s must be an object", p)
			return false
		}
		switch t := it.Get("type").Str; t {
		case "", "message":
			role := it.Get("role").Str
			switch role {
			case "user", "assistant", "system", "developer":
			default:
				bad = apierr.Invalid("invalid_value", p+".role", "%s.role must be user, assistant, system or developer", p)
				return false
			}
			needs.keep().rest(it, "type", "role", "content") // id, status
			content, err := responsesContent(it.Get("content"), p+".content", needs)
			if err != nil {
				bad = err
				return false
			}
			msgs = append(msgs, chatMessage{Role: role, Content: content})
		case "function_call":
			name, args, id := it.Get("name"), it.Get("arguments"), it.Get("call_id")
			if name.Type != gjson.String || id.Type != gjson.String || args.Type != gjson.String {
				bad = apierr.Invalid("invalid_value", p, "%s: a function_call needs call_id, name and arguments (strings)", p)
				return false
			}
			needs.keep().rest(it, "type", "name", "arguments", "call_id")
			call := chatToolCall{ID: id.Str, Type: "function", Function: chatFunction{Name: name.Str, Arguments: args.Str}}
			// The model's text and the calls after it are one assistant
			// turn (stellwerk's own answers have that shape): two
			// assistant messages in a row break chat templates that
			// require turns to alternate.
			if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" {
				msgs[n-1].ToolCalls = append(msgs[n-1].ToolCalls, call)
			} else {
				msgs = append(msgs, chatMessage{Role: "assistant", Content: json.RawMessage("null"), ToolCalls: []chatToolCall{call}})
			}
		case "function_call_output":
			id, out := it.Get("call_id"), it.Get("output")
			if id.Type != gjson.String || (out.Type != gjson.String && !out.IsArray()) {
				bad = apierr.Invalid("invalid_value", p, "%s: a function_call_output needs call_id (a string) and output (a string or an array of parts)", p)
				return false
			}
			needs.keep().rest(it, "type", "call_id", "output")
			text := out.Str
			if out.IsArray() {
				var others []gjson.Result
				text, others = outputText(out, needs.keep())
				if len(others) > 0 {
					other := apierr.Truncate(others[0].Get("type").Str, 64)
					if !needs.native(p + ".output with a part of type " + other) {
						bad = apierr.Invalid("unsupported_value", p+".output",
							"%s.output: parts of type %q need a provider that serves the Responses API natively (text parts are translated)", p, other)
						return false
					}
					for _, o := range others {
						tail = append(tail, unreadText(o)) // a file decoded, an image counted
					}
				}
			}
			msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: id.Str, Content: quote(text)})
		default:
			if needs.native(p + ".type " + apierr.Truncate(t, 64)) {
				msgs = append(msgs, unreadText(it))
				return true
			}
			bad = apierr.Invalid("unsupported_value", p+".type",
				"input items of type %q are not supported on /v1/responses by stellwerk (message, function_call, function_call_output are)", apierr.Truncate(t, 64))
			return false
		}
		return true
	})
	if bad != nil {
		return nil, bad
	}
	if len(msgs) == 0 {
		return nil, apierr.Invalid("invalid_value", "input", "input must not be empty")
	}
	return append(msgs, tail...), nil
}

// outputText is a function_call_output's output parts as the text of a chat
// tool message: its input_text (output_text) parts, one per line. others
// are the parts of other types (an image, a file), which chat's tool
// messages cannot carry: a decision copy has them read as unreadText.
func outputText(parts gjson.Result, u *untranslated) (text string, others []gjson.Result) {
	var b strings.Builder
	parts.ForEach(func(_, pt gjson.Result) bool {
		switch t := pt.Get("text"); {
		case (pt.Get("type").Str == "input_text" || pt.Get("type").Str == "output_text") && t.Type == gjson.String:
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			u.rest(pt, "type", "text") // annotations, …
			b.WriteString(t.Str)
		default: // another type, or a text that is no string: read whole
			others = append(others, pt)
		}
		return true
	})
	return b.String(), others
}

// appendUnreadPart appends a part only a native provider reads, for the
// classifiers of the decision copy: its JSON as text, and the files and
// images in it as the parts they read (unreadText).
func appendUnreadPart(parts []chatPart, pt gjson.Result) []chatPart {
	var b strings.Builder
	unreadWalk(pt, &b, &parts)
	text := b.String()
	return append(parts, chatPart{Type: "text", Text: &text})
}

// responsesContent is a message's content as chat's: a string as is; parts
// input_text/output_text → text, input_image → image_url.
func responsesContent(c gjson.Result, p string, needs *ResponsesNeeds) (json.RawMessage, *apierr.Error) {
	if c.Type == gjson.String {
		return json.RawMessage(c.Raw), nil
	}
	if !c.IsArray() {
		return nil, apierr.Invalid("invalid_type", p, "%s must be a string or an array of parts", p)
	}
	var parts []chatPart
	var bad *apierr.Error
	j := -1
	c.ForEach(func(_, pt gjson.Result) bool {
		j++
		pp := p + "[" + strconv.Itoa(j) + "]"
		switch t := pt.Get("type").Str; t {
		case "input_text", "output_text":
			if pt.Get("text").Type != gjson.String {
				bad = apierr.Invalid("invalid_type", pp+".text", "%s.text must be a string", pp)
				return false
			}
			needs.keep().rest(pt, "type", "text") // annotations, logprobs, …
			text := pt.Get("text").Str
			parts = append(parts, chatPart{Type: "text", Text: &text})
		case "input_image":
			u := pt.Get("image_url")
			if u.Type != gjson.String {
				needs.keep().rest(pt, "type", "detail") // a file_id, an image_url object, whatever else it carries
				if needs.native(pp + " (image by file_id)") {
					// The decision copy counts it (vision, an image's
					// tokens in the worst case); no provider gets the copy.
					parts = append(parts, chatPart{Type: "input_image"})
					return true
				}
				bad = apierr.Invalid("unsupported_value", pp, "%s: images by file_id are not supported; send image_url", pp)
				return false
			}
			needs.keep().rest(pt, "type", "image_url", "detail") // a file_id beside the link
			parts = append(parts, chatPart{Type: "image_url", ImageURL: &chatImageURL{URL: u.Str, Detail: pt.Get("detail").Str}})
		default:
			if needs.native(pp + ".type " + apierr.Truncate(t, 64)) {
				parts = appendUnreadPart(parts, pt)
				return true
			}
			bad = apierr.Invalid("unsupported_value", pp+".type", "content parts of type %q are not supported on /v1/responses by stellwerk", apierr.Truncate(t, 64))
			return false
		}
		return true
	})
	if bad != nil {
		return nil, bad
	}
	b, _ := json.Marshal(parts)
	return b, nil
}

// responsesTools are function tools as chat's; built-in tools (web
// search, file search, computer use, MCP, …) need a native provider, and
// their JSON is added to unread for the classifiers: it carries the
// caller's text (an MCP server's headers, a location, a description).
func responsesTools(v gjson.Result, needs *ResponsesNeeds, unread *[]chatMessage) ([]chatTool, *apierr.Error) {
	if !v.IsArray() {
		return nil, apierr.Invalid("invalid_type", "tools", "tools must be an array")
	}
	var out []chatTool
	var bad *apierr.Error
	i := -1
	v.ForEach(func(_, t gjson.Result) bool {
		i++
		if typ := t.Get("type").Str; typ != "function" {
			if needs.native("tools[" + strconv.Itoa(i) + "] of type " + apierr.Truncate(typ, 64)) {
				*unread = append(*unread, unreadText(t))
				return true
			}
			bad = apierr.Invalid("unsupported_value", "tools["+strconv.Itoa(i)+"].type",
				"tools of type %q need a provider that serves the Responses API natively; none is configured (function tools are translated)", apierr.Truncate(typ, 64))
			return false
		}
		fn := map[string]json.RawMessage{}
		t.ForEach(func(k, fv gjson.Result) bool {
			if k.Str != "type" {
				fn[k.Str] = json.RawMessage(fv.Raw)
			}
			return true
		})
		b, _ := json.Marshal(fn)
		out = append(out, chatTool{Type: "function", Function: b})
		return true
	})
	return out, bad
}

func responsesToolChoice(v gjson.Result) (json.RawMessage, *apierr.Error) {
	if v.Type == gjson.String {
		return json.RawMessage(v.Raw), nil
	}
	if v.Get("type").Str == "function" && v.Get("name").Type == gjson.String {
		b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": v.Get("name").Str}})
		return b, nil
	}
	return nil, apierr.Invalid("unsupported_value", "tool_choice", "tool_choice must be auto, none, required or a function")
}

// responsesFormat is text.format as chat's response_format.
func responsesFormat(f gjson.Result) (json.RawMessage, *apierr.Error) {
	switch f.Get("type").Str {
	case "", "text":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		js := map[string]json.RawMessage{}
		f.ForEach(func(k, v gjson.Result) bool {
			if k.Str != "type" {
				js[k.Str] = json.RawMessage(v.Raw)
			}
			return true
		})
		b, _ := json.Marshal(map[string]any{"type": "json_schema", "json_schema": js})
		return b, nil
	}
	return nil, apierr.Invalid("unsupported_value", "text.format.type", "text.format.type must be text, json_object or json_schema")
}

// echoed are the members a response object repeats of its request, with
// OpenAI's default for a request that did not send one ("" for none: the
// member is left out then). store is always false: stellwerk keeps nothing.
var echoed = [...]struct{ name, def string }{
	{"instructions", "null"}, {"metadata", "{}"}, {"parallel_tool_calls", "true"}, {"temperature", "1"}, {"top_p", "1"},
	{"tool_choice", `"auto"`}, {"tools", "[]"}, {"max_output_tokens", "null"}, {"text", `{"format":{"type":"text"}}`},
	{"truncation", `"disabled"`}, {"user", "null"}, {"reasoning", ""}, {"service_tier", ""}, {"previous_response_id", "null"},
}

// ResponsesEcho is what a response object repeats of the request that
// asked for it, as OpenAI's does: the settings it sent, OpenAI's defaults
// for those it did not, store false (resp.metadata was None through the
// SDK). It is a fragment of JSON members ("instructions":…,"metadata":…)
// to splice into the object, the request's values as they are (the
// request was validated). dropped names members the serving model was not
// given (reasoning for an Anthropic model, which the translation drops):
// they are left out rather than echoed as if applied (the agent probe).
func ResponsesEcho(req []byte, dropped ...string) []byte {
	var got [len(echoed)]string
	gjson.ParseBytes(req).ForEach(func(k, v gjson.Result) bool {
		if slices.Contains(dropped, k.Str) {
			return true
		}
		for i := range echoed {
			if echoed[i].name == k.Str && echoed[i].name != "previous_response_id" && got[i] == "" {
				got[i] = v.Raw
			}
		}
		return true
	})
	out := make([]byte, 0, 256)
	for i, e := range echoed {
		v := got[i]
		if v == "" {
			v = e.def
		}
		if v == "" {
			continue
		}
		out = append(out, '"')
		out = append(out, e.name...)
		out = append(out, `":`...)
		out = append(out, v...)
		out = append(out, ',')
	}
	return append(out, `"store":false`...)
}

// spliceEcho adds the members of echo (ResponsesEcho) to the JSON object b.
func spliceEcho(b, echo []byte) []byte {
	if len(echo) == 0 || len(b) < 2 || b[len(b)-1] != '}' {
		return b
	}
	b = append(b[:len(b)-1], ',')
	b = append(b, echo...)
	return append(b, '}')
}

// ChatToResponse translates a chat.completion answer into a Responses API
// response object: the first choice's text as an output message, its tool
// calls as function_call items, usage renamed, and what echo repeats of
// the request (ResponsesEcho; nil: nothing). A finish by length or a
// content filter is status incomplete (incompleteFor).
func ChatToResponse(chat []byte, echo []byte) ([]byte, error) {
	c := gjson.ParseBytes(chat)
	if !c.IsObject() || !c.Get("choices").IsArray() {
		return nil, errBadAnswer
	}
	id := strings.TrimPrefix(c.Get("id").Str, "chatcmpl-")
	ch := c.Get("choices.0")
	msg := ch.Get("message")
	var output []any
	if t := AnswerText(msg.Get("content")); t != "" {
		output = append(output, map[string]any{"type": "message", "id": "msg_" + id, "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": t, "annotations": []any{}}}})
	}
	if r := msg.Get("refusal"); r.Type == gjson.String && r.Str != "" {
		output = append(output, map[string]any{"type": "message", "id": "msg_" + id, "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "refusal", "refusal": r.Str}}})
	}
	toolCalls(msg.Get("tool_calls")).ForEach(func(_, tc gjson.Result) bool {
		output = append(output, map[string]any{"type": "function_call", "id": "fc_" + tc.Get("id").Str, "call_id": tc.Get("id").Str,
			"name": tc.Get("function.name").Str, "arguments": tc.Get("function.arguments").Str, "status": "completed"})
		return true
	})
	if output == nil {
		output = []any{}
	}
	status, incomplete := incompleteFor(ch.Get("finish_reason").Str)
	if status == "incomplete" && len(output) > 0 {
		// The item the limit cut is incomplete too, as OpenAI marks it: a
		// function call's arguments cut mid-JSON read "completed" (the
		// agent probe).
		output[len(output)-1].(map[string]any)["status"] = "incomplete"
	}
	resp := map[string]any{
		"id": "resp_" + id, "object": "response", "created_at": c.Get("created").Int(), "status": status,
		"model": c.Get("model").Str, "output": output, "error": nil, "incomplete_details": incomplete,
	}
	if u := c.Get("usage"); u.IsObject() {
		in, out := Tokens(u.Get("prompt_tokens")), Tokens(u.Get("completion_tokens"))
		resp["usage"] = map[string]any{"input_tokens": in, "output_tokens": out, "total_tokens": in + out,
			"input_tokens_details":  map[string]int{"cached_tokens": Tokens(u.Get("prompt_tokens_details.cached_tokens"))},
			"output_tokens_details": map[string]int{"reasoning_tokens": Tokens(u.Get("completion_tokens_details.reasoning_tokens"))}}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	return spliceEcho(b, echo), nil
}

// incompleteFor is a response's status and incomplete_details for a chat
// finish_reason: a length cut is max_output_tokens, a content filter's
// stop content_filter, as OpenAI reports them.
func incompleteFor(finish string) (string, any) {
	switch finish {
	case "length":
		return "incomplete", map[string]string{"reason": "max_output_tokens"}
	case "content_filter":
		return "incomplete", map[string]string{"reason": "content_filter"}
	}
	return "completed", nil
}
