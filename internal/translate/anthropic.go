package translate

// The OpenAI chat-completions → Anthropic Messages request translation.
// docs/wire-formats.md holds the mapping tables; keep the two in step.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/jsonw"
	"github.com/stellwerk/stellwerk/internal/request"
)

// AnthropicVersion is sent as the anthropic-version header.
const AnthropicVersion = "2023-06-01"

// DefaultMaxTokens fills Anthropic's required max_tokens when the client set
// no limit. OpenAI means "up to the model's maximum"; 4096 is an output size
// every Claude model accepts. The budgets hold it for such a request.
const DefaultMaxTokens = 4096

// maxTokensLimit matches the request package's sanity bound.
const maxTokensLimit = 1e9

// nowUnix is the "created" timestamp; golden tests pin it.
var nowUnix = func() int64 { return time.Now().Unix() }

// JSON-mode approximations: Anthropic has no response_format, so the
// instruction goes into the system prompt. The model usually complies; the
// output is not validated.
const (
	jsonObjectInstruction = "Respond with a single valid JSON object and nothing else: no prose before or after it and no Markdown code fences."
	jsonSchemaInstruction = "Respond with a single valid JSON value and nothing else: no prose before or after it and no Markdown code fences. It must conform to this JSON Schema"
)

// Anthropic Messages request, in the field order the golden files show.
type anthRequest struct {
	Model         string          `json:"model"`
	System        any             `json:"system,omitempty"` // a string, or []anthBlock when a system part marks the prompt cache
	Messages      []anthMessage   `json:"messages"`
	MaxTokens     int64           `json:"max_tokens"`
	Metadata      *anthMetadata   `json:"metadata,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	Tools         []anthTool      `json:"tools,omitempty"`
	ToolChoice    *anthToolChoice `json:"tool_choice,omitempty"`
}

type anthMetadata struct {
	UserID string `json:"user_id"`
}

type anthMessage struct {
	Role    string      `json:"role"`
	Content []anthBlock `json:"content"`
}

// anthBlock is every content block kind the translation writes: text,
// image, tool_use and tool_result.
type anthBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *anthSource     `json:"source,omitempty"`
	Title     string          `json:"title,omitempty"` // a document's
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   any             `json:"content,omitempty"` // string or []anthBlock
	// CacheControl is the chat part's cache_control: the convention
	// LiteLLM and OpenRouter pass on to Anthropic.
	CacheControl *anthCache `json:"cache_control,omitempty"`
}

// anthCache is Anthropic's prompt-cache breakpoint, {"type":"ephemeral"}
// with an optional ttl, written from the validated chat member rather
// than passed on as sent.
type anthCache struct {
	Type string `json:"type"`
	TTL  string `json:"ttl,omitempty"`
	path string // the chat member, for the error when there are too many
}

// maxCacheBreakpoints is Anthropic's limit of cache_control markers in one
// request; it refuses a fifth.
const maxCacheBreakpoints = 4

type anthSource struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anthTool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl *anthCache      `json:"cache_control,omitempty"`
}

type anthToolChoice struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	// DisableParallelToolUse is parallel_tool_calls: false.
	DisableParallelToolUse bool `json:"disable_parallel_tool_use,omitempty"`
}

// anthImageTypes are the media types Anthropic accepts for base64 images:
// the request parser's list, which keeps auto off Anthropic-wire models
// for the others.
var anthImageTypes = request.AnthropicImageTypes

// ToAnthropicRequest turns an OpenAI chat-completions request body into an
// Anthropic Messages request body for the given provider model name.
// It returns an *apierr.Error (400, naming the field) for what Anthropic
// cannot express; fields without an Anthropic counterpart are dropped
// (docs/wire-formats.md lists them).
func ToAnthropicRequest(openaiBody []byte, providerModel string) ([]byte, error) {
	if !gjson.ValidBytes(openaiBody) {
		return nil, apierr.Invalid("invalid_json", "", "the request body is not valid JSON")
	}
	root := gjson.ParseBytes(openaiBody)
	if !root.IsObject() {
		return nil, apierr.Invalid("invalid_request_body", "", "the request body must be a JSON object")
	}
	out := anthRequest{Model: providerModel, MaxTokens: DefaultMaxTokens}
	var system []anthBlock
	var err error

	// Rejections first: they do not depend on anything else.
	if n := root.Get("n"); n.Exists() && n.Type != gjson.Null {
		if n.Type != gjson.Number || n.Num != 1 {
			return nil, apierr.Invalid("unsupported_parameter", "n", "n must be 1 for Anthropic models: they return one choice per request")
		}
	}
	if lp := root.Get("logprobs"); lp.Type == gjson.True {
		return nil, apierr.Invalid("unsupported_parameter", "logprobs", "logprobs is not available for Anthropic models")
	}
	for _, legacy := range [...]string{"functions", "function_call"} {
		if v := root.Get(legacy); v.Exists() && v.Type != gjson.Null {
			return nil, apierr.Invalid("unsupported_parameter", legacy, "%s is deprecated and not translated for Anthropic models; use tools and tool_choice", legacy)
		}
	}

	msgs := root.Get("messages")
	if !msgs.IsArray() {
		return nil, apierr.Invalid("invalid_type", "messages", "messages must be an array")
	}
	if out.Messages, system, err = convertMessages(msgs); err != nil {
		return nil, err
	}

	if out.MaxTokens, err = maxTokens(root); err != nil {
		return nil, err
	}
	if out.Temperature, err = number(root.Get("temperature"), "temperature", 0, 2); err != nil {
		return nil, err
	}
	if out.Temperature != nil && *out.Temperature > 1 {
		// OpenAI's range is 0–2, Anthropic's 0–1: keep the "as random as
		// possible" intent rather than failing the request.
		one := 1.0
		out.Temperature = &one
	}
	if out.TopP, err = number(root.Get("top_p"), "top_p", 0, 1); err != nil {
		return nil, err
	}
	if out.StopSequences, err = stopSequences(root.Get("stop")); err != nil {
		return nil, err
	}
	switch s := root.Get("stream"); s.Type {
	case gjson.True:
		out.Stream = true
	case gjson.False, gjson.Null:
	default:
		return nil, apierr.Invalid("invalid_type", "stream", "stream must be a boolean")
	}
	switch u := root.Get("user"); u.Type {
	case gjson.String:
		if u.Str != "" {
			out.Metadata = &anthMetadata{UserID: u.Str}
		}
	case gjson.Null:
	default:
		return nil, apierr.Invalid("invalid_type", "user", "user must be a string")
	}
	if out.Tools, err = convertTools(root.Get("tools")); err != nil {
		return nil, err
	}
	if out.ToolChoice, err = convertToolChoice(root.Get("tool_choice")); err != nil {
		return nil, err
	}
	if len(out.Tools) == 0 {
		out.ToolChoice = nil // Anthropic rejects a choice among no tools
	} else if ptc := root.Get("parallel_tool_calls"); ptc.Type == gjson.False {
		// One tool call at a time: Anthropic says it in the tool choice.
		if out.ToolChoice == nil {
			out.ToolChoice = &anthToolChoice{Type: "auto"}
		}
		out.ToolChoice.DisableParallelToolUse = out.ToolChoice.Type != "none"
	}
	instruction, err := jsonInstruction(root.Get("response_format"))
	if err != nil {
		return nil, err
	}
	if instruction != "" {
		system = append(system, anthBlock{Type: "text", Text: instruction})
	}
	out.System = systemPrompt(system)
	if err = cacheBreakpoints(&out); err != nil {
		return nil, err
	}

	b, err := marshal(out)
	if err != nil {
		// Only a pathological body (nesting encoding/json refuses) gets here.
		return nil, apierr.Invalid("invalid_request_body", "", "the request body cannot be expressed as an Anthropic request")
	}
	return b, nil
}

// convertMessages returns the Anthropic messages, with consecutive turns of
// one role merged, and the system texts in order.
func convertMessages(msgs gjson.Result) ([]anthMessage, []anthBlock, error) {
	var out []anthMessage
	var system []anthBlock
	var err error
	add := func(role string, blocks []anthBlock) {
		if len(blocks) == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			out[n-1].Content = append(out[n-1].Content, blocks...)
			return
		}
		out = append(out, anthMessage{Role: role, Content: blocks})
	}
	i := -1
	msgs.ForEach(func(_, m gjson.Result) bool {
		i++
		p := "messages[" + strconv.Itoa(i) + "]"
		if !m.IsObject() {
			err = apierr.Invalid("invalid_type", p, "%s must be an object", p)
			return false
		}
		role := m.Get("role")
		switch role.String() {
		case "system", "developer":
			var texts []anthBlock
			if texts, err = textParts(m.Get("content"), p+".content"); err != nil {
				return false
			}
			system = append(system, texts...)
		case "user":
			var blocks []anthBlock
			if blocks, err = contentBlocks(m.Get("content"), p+".content", true); err != nil {
				return false
			}
			add("user", blocks)
		case "assistant":
			var blocks, calls []anthBlock
			if c := m.Get("content"); c.Exists() && c.Type != gjson.Null {
				if blocks, err = contentBlocks(c, p+".content", false); err != nil {
					return false
				}
			}
			if calls, err = toolUses(m.Get("tool_calls"), p+".tool_calls"); err != nil {
				return false
			}
			add("assistant", append(blocks, calls...))
		case "tool":
			var block anthBlock
			if block, err = toolResult(m, p); err != nil {
				return false
			}
			add("user", []anthBlock{block})
		case "function":
			err = apierr.Invalid("unsupported_parameter", p+".role", "%s.role \"function\" is deprecated and not translated for Anthropic models; use tool messages", p)
			return false
		default:
			err = apierr.Invalid("invalid_value", p+".role", "%s.role must be one of system, developer, user, assistant or tool", p)
			return false
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	if len(out) == 0 {
		return nil, nil, apierr.Invalid("empty_messages", "messages", "messages must contain at least one user or assistant message with content; Anthropic models do not accept a system prompt alone")
	}
	return out, system, nil
}

// textParts reads content that may only hold text, a string or text parts,
// as text blocks with their cache markers. Blank text is skipped
// (appendText).
func textParts(c gjson.Result, p string) ([]anthBlock, error) {
	switch {
	case c.Type == gjson.String:
		if blank(c.Str) {
			return nil, nil
		}
		return []anthBlock{{Type: "text", Text: c.Str}}, nil
	case c.IsArray():
		var out []anthBlock
		var err error
		j := -1
		c.ForEach(func(_, part gjson.Result) bool {
			j++
			pp := p + "[" + strconv.Itoa(j) + "]"
			if part.Get("type").String() != "text" || part.Get("text").Type != gjson.String {
				err = apierr.Invalid("invalid_value", pp, "%s must be a text part ({\"type\":\"text\",\"text\":…})", pp)
				return false
			}
			var cc *anthCache
			if cc, err = cacheControl(part.Get("cache_control"), pp); err != nil {
				return false
			}
			out = appendText(out, part.Get("text").Str, cc)
			return true
		})
		return out, err
	case c.Type == gjson.Null:
		return nil, nil
	}
	return nil, apierr.Invalid("invalid_type", p, "%s must be a string or an array of content parts", p)
}

// contentBlocks converts user or assistant content. Anthropic rejects blank
// text blocks, so those are skipped.
func contentBlocks(c gjson.Result, p string, images bool) ([]anthBlock, error) {
	switch {
	case c.Type == gjson.String:
		if blank(c.Str) {
			return nil, nil
		}
		return []anthBlock{{Type: "text", Text: c.Str}}, nil
	case c.IsArray():
	case c.Type == gjson.Null:
		return nil, nil
	default:
		return nil, apierr.Invalid("invalid_type", p, "%s must be a string or an array of content parts", p)
	}
	var out []anthBlock
	var err error
	j := -1
	c.ForEach(func(_, part gjson.Result) bool {
		j++
		pp := p + "[" + strconv.Itoa(j) + "]"
		if !part.IsObject() {
			err = apierr.Invalid("invalid_type", pp, "%s must be an object", pp)
			return false
		}
		cc, cerr := cacheControl(part.Get("cache_control"), pp)
		if cerr != nil {
			err = cerr
			return false
		}
		switch typ := part.Get("type").String(); typ {
		case "text", "refusal": // an assistant's earlier refusal is plain text to Anthropic
			t := part.Get(typ)
			if t.Type != gjson.String {
				err = apierr.Invalid("invalid_type", pp+"."+typ, "%s.%s must be a string", pp, typ)
				return false
			}
			out = appendText(out, t.Str, cc)
		case "image_url":
			if !images {
				err = apierr.Invalid("invalid_value", pp, "%s: only user messages may carry images", pp)
				return false
			}
			var src *anthSource
			if src, err = imageSource(part.Get("image_url"), pp+".image_url"); err != nil {
				return false
			}
			out = append(out, anthBlock{Type: "image", Source: src, CacheControl: cc})
		case "file":
			// A PDF sent inline is Anthropic's document block; a file by
			// id is stored at another provider, and other types Claude
			// reads as documents only under other rules.
			f := part.Get("file")
			data, ok := request.AnthropicPDF(f)
			if !ok || !images {
				err = apierr.Invalid("unsupported_content", pp+".file", "%s: only a PDF sent inline (file_data: data:application/pdf;base64,…) in a user message is translated for Anthropic models", pp)
				return false
			}
			out = append(out, anthBlock{Type: "document", Title: f.Get("filename").Str,
				Source:       &anthSource{Type: "base64", MediaType: "application/pdf", Data: data},
				CacheControl: cc})
		default:
			err = apierr.Invalid("unsupported_content", pp+".type", "%s.type %q is not translated for Anthropic models; use text or image_url parts", pp, typ)
			return false
		}
		return true
	})
	return out, err
}

// appendText adds a text part's block to a message's blocks. Anthropic
// refuses a blank text block, with or without a marker, so a blank part is
// skipped and its marker goes to the block before it in the same message,
// which ends the same cached prefix (the one already there is kept if that
// block has its own). A blank first part's marker marks nothing that is
// sent and is dropped.
func appendText(out []anthBlock, text string, cc *anthCache) []anthBlock {
	if !blank(text) {
		return append(out, anthBlock{Type: "text", Text: text, CacheControl: cc})
	}
	if n := len(out); cc != nil && n > 0 && out[n-1].CacheControl == nil {
		out[n-1].CacheControl = cc
	}
	return out
}

// cacheControl reads the cache_control member of the chat object at p: nil
// when absent or null, Anthropic's {"type":"ephemeral"} with an optional
// ttl of "5m" or "1h" otherwise; anything else is refused, naming it,
// rather than left for the provider to refuse.
func cacheControl(v gjson.Result, p string) (*anthCache, error) {
	if !v.Exists() || v.Type == gjson.Null {
		return nil, nil
	}
	p += ".cache_control"
	if !v.IsObject() {
		return nil, apierr.Invalid("invalid_value", p, "%s must be an object: {\"type\":\"ephemeral\"}, with an optional \"ttl\" of \"5m\" or \"1h\"", p)
	}
	cc := &anthCache{path: p}
	var err error
	v.ForEach(func(k, x gjson.Result) bool {
		switch k.Str {
		case "type":
			if x.Type != gjson.String || x.Str != "ephemeral" {
				err = apierr.Invalid("invalid_value", p+".type", "%s.type must be \"ephemeral\", the only cache type Anthropic has", p)
				return false
			}
			cc.Type = x.Str
		case "ttl":
			switch {
			case x.Type == gjson.Null:
			case x.Type == gjson.String && (x.Str == "5m" || x.Str == "1h"):
				cc.TTL = x.Str
			default:
				err = apierr.Invalid("invalid_value", p+".ttl", "%s.ttl must be \"5m\" or \"1h\"", p)
				return false
			}
		default:
			err = apierr.Invalid("invalid_value", p, "%s has a member %q Anthropic does not take; it takes type and ttl", p, k.Str)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if cc.Type == "" {
		return nil, apierr.Invalid("invalid_value", p+".type", "%s.type must be \"ephemeral\", the only cache type Anthropic has", p)
	}
	return cc, nil
}

// systemPrompt is Anthropic's system member: the texts joined with a blank
// line, as a string, unless one carries a cache marker; then the text
// blocks themselves, so the marker stays where the client put it. nil when
// there is no system text.
func systemPrompt(blocks []anthBlock) any {
	for _, b := range blocks {
		if b.CacheControl != nil {
			return blocks
		}
	}
	if len(blocks) == 0 {
		return nil
	}
	texts := make([]string, len(blocks))
	for i, b := range blocks {
		texts[i] = b.Text
	}
	return strings.Join(texts, "\n\n")
}

// cacheBreakpoints refuses a request with more cache markers than
// Anthropic takes, naming the first one too many in the order Anthropic
// reads the prompt: tools, system, messages.
func cacheBreakpoints(r *anthRequest) error {
	n := 0
	check := func(cc *anthCache) error {
		if cc == nil {
			return nil
		}
		if n++; n > maxCacheBreakpoints {
			return apierr.Invalid("invalid_value", cc.path, "%s: Anthropic takes at most %d cache_control markers in one request; this is marker %d", cc.path, maxCacheBreakpoints, n)
		}
		return nil
	}
	var blocks func([]anthBlock) error
	blocks = func(bs []anthBlock) error {
		for _, b := range bs {
			if err := check(b.CacheControl); err != nil {
				return err
			}
			if inner, ok := b.Content.([]anthBlock); ok {
				if err := blocks(inner); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, t := range r.Tools {
		if err := check(t.CacheControl); err != nil {
			return err
		}
	}
	if sys, ok := r.System.([]anthBlock); ok {
		if err := blocks(sys); err != nil {
			return err
		}
	}
	for _, m := range r.Messages {
		if err := blocks(m.Content); err != nil {
			return err
		}
	}
	return nil
}

// imageSource maps an image_url object (or a bare URL string, which some
// clients send) to an Anthropic image source. The detail hint is dropped.
func imageSource(iu gjson.Result, p string) (*anthSource, error) {
	u := iu
	if iu.IsObject() {
		u = iu.Get("url")
		p += ".url"
	}
	if u.Type != gjson.String || u.Str == "" {
		return nil, apierr.Invalid("invalid_value", p, "%s must be a non-empty URL string", p)
	}
	url := u.Str
	switch {
	case strings.HasPrefix(url, "data:"):
		meta, data, ok := strings.Cut(url[len("data:"):], ",")
		mediaType, isB64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isB64 {
			return nil, apierr.Invalid("invalid_value", p, "%s must be a base64 data URL (data:image/png;base64,…) or an http(s) URL", p)
		}
		mediaType = strings.ToLower(mediaType)
		if mediaType == "image/jpg" {
			mediaType = "image/jpeg" // OpenAI takes the common misspelling; Anthropic only the registered type (the SDK probe)
		}
		for _, t := range anthImageTypes {
			if t == mediaType {
				return &anthSource{Type: "base64", MediaType: mediaType, Data: data}, nil
			}
		}
		return nil, apierr.Invalid("unsupported_content", p, "%s: image type %q is not supported by Anthropic models; use image/jpeg, image/png, image/gif or image/webp", p, mediaType)
	case hasPrefixFold(url, "https://"), hasPrefixFold(url, "http://"):
		return &anthSource{Type: "url", URL: url}, nil
	}
	return nil, apierr.Invalid("invalid_value", p, "%s must be a base64 data URL (data:image/png;base64,…) or an http(s) URL", p)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// toolUses maps an assistant's tool_calls to tool_use blocks.
func toolUses(calls gjson.Result, p string) ([]anthBlock, error) {
	if !calls.Exists() || calls.Type == gjson.Null {
		return nil, nil
	}
	if !calls.IsArray() {
		return nil, apierr.Invalid("invalid_type", p, "%s must be an array", p)
	}
	var out []anthBlock
	var err error
	j := -1
	calls.ForEach(func(_, call gjson.Result) bool {
		j++
		pp := p + "[" + strconv.Itoa(j) + "]"
		if typ := call.Get("type"); typ.Exists() && typ.String() != "function" {
			err = apierr.Invalid("unsupported_content", pp+".type", "%s.type must be \"function\"", pp)
			return false
		}
		id, name := call.Get("id"), call.Get("function.name")
		if id.Type != gjson.String || id.Str == "" {
			err = apierr.Invalid("invalid_value", pp+".id", "%s.id must be a non-empty string", pp)
			return false
		}
		if name.Type != gjson.String || name.Str == "" {
			err = apierr.Invalid("invalid_value", pp+".function.name", "%s.function.name must be a non-empty string", pp)
			return false
		}
		var input json.RawMessage
		if input, err = toolArguments(call.Get("function.arguments"), pp+".function.arguments"); err != nil {
			return false
		}
		out = append(out, anthBlock{Type: "tool_use", ID: id.Str, Name: name.Str, Input: input})
		return true
	})
	return out, err
}

// toolArguments parses the arguments JSON string into Anthropic's input
// object. An empty string means no arguments.
func toolArguments(a gjson.Result, p string) (json.RawMessage, error) {
	if a.Type == gjson.Null {
		return json.RawMessage("{}"), nil
	}
	if a.Type != gjson.String {
		return nil, apierr.Invalid("invalid_type", p, "%s must be a string holding a JSON object", p)
	}
	s := strings.TrimSpace(a.Str)
	if s == "" {
		return json.RawMessage("{}"), nil
	}
	if !gjson.Valid(s) {
		return nil, apierr.Invalid("invalid_value", p, "%s is not valid JSON; Anthropic needs the tool input as a JSON object", p)
	}
	if !gjson.Parse(s).IsObject() {
		return nil, apierr.Invalid("invalid_value", p, "%s must be a JSON object; Anthropic needs the tool input as a JSON object", p)
	}
	return json.RawMessage(s), nil
}

// toolResult maps a tool message to a tool_result block.
func toolResult(m gjson.Result, p string) (anthBlock, error) {
	id := m.Get("tool_call_id")
	if id.Type != gjson.String || id.Str == "" {
		return anthBlock{}, apierr.Invalid("invalid_value", p+".tool_call_id", "%s.tool_call_id must be a non-empty string", p)
	}
	b := anthBlock{Type: "tool_result", ToolUseID: id.Str}
	c := m.Get("content")
	// Anthropic refuses a text block of whitespace only (a tool that
	// printed a blank line): it is left out, as in messages.
	if c.Type == gjson.String {
		if !blank(c.Str) {
			b.Content = c.Str
		}
		return b, nil
	}
	blocks, err := textParts(c, p+".content")
	if err != nil {
		return anthBlock{}, err
	}
	if len(blocks) > 0 {
		b.Content = blocks
	}
	return b, nil
}

// convertTools maps function tools to Anthropic tools.
func convertTools(tools gjson.Result) ([]anthTool, error) {
	if !tools.Exists() || tools.Type == gjson.Null {
		return nil, nil
	}
	if !tools.IsArray() {
		return nil, apierr.Invalid("invalid_type", "tools", "tools must be an array")
	}
	var out []anthTool
	var err error
	j := -1
	tools.ForEach(func(_, t gjson.Result) bool {
		j++
		p := "tools[" + strconv.Itoa(j) + "]"
		if t.Get("type").String() != "function" {
			err = apierr.Invalid("unsupported_content", p+".type", "%s.type must be \"function\"; other tool types are not translated for Anthropic models", p)
			return false
		}
		fn := t.Get("function")
		name := fn.Get("name")
		if name.Type != gjson.String || name.Str == "" {
			err = apierr.Invalid("invalid_value", p+".function.name", "%s.function.name must be a non-empty string", p)
			return false
		}
		desc := fn.Get("description")
		if desc.Exists() && desc.Type != gjson.String && desc.Type != gjson.Null {
			err = apierr.Invalid("invalid_type", p+".function.description", "%s.function.description must be a string", p)
			return false
		}
		schema := json.RawMessage(`{"type":"object","properties":{}}`)
		switch params := fn.Get("parameters"); {
		case params.IsObject():
			schema = json.RawMessage(params.Raw)
		case params.Exists() && params.Type != gjson.Null:
			err = apierr.Invalid("invalid_type", p+".function.parameters", "%s.function.parameters must be a JSON Schema object", p)
			return false
		}
		var cc *anthCache
		if cc, err = cacheControl(t.Get("cache_control"), p); err != nil {
			return false
		}
		out = append(out, anthTool{Name: name.Str, Description: desc.String(), InputSchema: schema, CacheControl: cc})
		return true
	})
	return out, err
}

// convertToolChoice maps tool_choice; nil when unset.
func convertToolChoice(tc gjson.Result) (*anthToolChoice, error) {
	switch {
	case !tc.Exists() || tc.Type == gjson.Null:
		return nil, nil
	case tc.Type == gjson.String:
		switch tc.Str {
		case "auto":
			return &anthToolChoice{Type: "auto"}, nil
		case "required":
			return &anthToolChoice{Type: "any"}, nil
		case "none":
			return &anthToolChoice{Type: "none"}, nil
		}
	case tc.IsObject() && tc.Get("type").String() == "function":
		name := tc.Get("function.name")
		if name.Type != gjson.String || name.Str == "" {
			return nil, apierr.Invalid("invalid_value", "tool_choice.function.name", "tool_choice.function.name must be a non-empty string")
		}
		return &anthToolChoice{Type: "tool", Name: name.Str}, nil
	}
	return nil, apierr.Invalid("invalid_value", "tool_choice", "tool_choice must be \"auto\", \"required\", \"none\" or {\"type\":\"function\",\"function\":{\"name\":…}}")
}

// maxTokens prefers max_completion_tokens over the deprecated max_tokens.
func maxTokens(root gjson.Result) (int64, error) {
	for _, name := range [...]string{"max_completion_tokens", "max_tokens"} {
		v := root.Get(name)
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) || v.Num < 1 || v.Num > maxTokensLimit {
			return 0, apierr.Invalid("invalid_value", name, "%s must be a positive integer", name)
		}
		return int64(v.Num), nil
	}
	return DefaultMaxTokens, nil
}

// number reads an optional number in [lo, hi].
func number(v gjson.Result, name string, lo, hi float64) (*float64, error) {
	if !v.Exists() || v.Type == gjson.Null {
		return nil, nil
	}
	if v.Type != gjson.Number || v.Num < lo || v.Num > hi {
		return nil, apierr.Invalid("invalid_value", name, "%s must be a number between %g and %g", name, lo, hi)
	}
	f := v.Num
	return &f, nil
}

// stopSequences reads stop as a string or an array of strings; empty
// sequences are meaningless and skipped.
func stopSequences(v gjson.Result) ([]string, error) {
	switch {
	case !v.Exists() || v.Type == gjson.Null:
		return nil, nil
	case v.Type == gjson.String:
		if v.Str == "" {
			return nil, nil
		}
		return []string{v.Str}, nil
	case v.IsArray():
		var out []string
		ok := true
		v.ForEach(func(_, s gjson.Result) bool {
			if s.Type != gjson.String {
				ok = false
				return false
			}
			if s.Str != "" {
				out = append(out, s.Str)
			}
			return true
		})
		if ok {
			return out, nil
		}
	}
	return nil, apierr.Invalid("invalid_type", "stop", "stop must be a string or an array of strings")
}

// jsonInstruction returns the system instruction standing in for
// response_format, "" for plain text.
func jsonInstruction(rf gjson.Result) (string, error) {
	if !rf.Exists() || rf.Type == gjson.Null {
		return "", nil
	}
	if !rf.IsObject() {
		return "", apierr.Invalid("invalid_type", "response_format", "response_format must be an object")
	}
	switch rf.Get("type").String() {
	case "text":
		return "", nil
	case "json_object":
		return jsonObjectInstruction, nil
	case "json_schema":
		js := rf.Get("json_schema")
		schema := js.Get("schema")
		if !schema.IsObject() {
			return "", apierr.Invalid("invalid_value", "response_format.json_schema.schema", "response_format.json_schema.schema must be a JSON Schema object")
		}
		var b strings.Builder
		b.WriteString(jsonSchemaInstruction)
		if name := js.Get("name").String(); name != "" {
			b.WriteString(" (named ")
			b.WriteString(strconv.Quote(name))
			b.WriteString(")")
		}
		if d := js.Get("description").String(); d != "" {
			b.WriteString(", described as: ")
			b.WriteString(d)
		}
		b.WriteString(":\n")
		var compact bytes.Buffer
		if json.Compact(&compact, []byte(schema.Raw)) != nil {
			compact.WriteString(schema.Raw)
		}
		b.Write(compact.Bytes())
		return b.String(), nil
	}
	return "", apierr.Invalid("invalid_value", "response_format.type", "response_format.type must be text, json_object or json_schema")
}

// marshal renders v as compact JSON without HTML escaping, so prompt text
// such as "<b>" stays readable on the wire and in golden files.
func marshal(v any) ([]byte, error) { return jsonw.Marshal(v) }
