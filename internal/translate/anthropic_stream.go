package translate

// Anthropic streaming events → OpenAI chat.completion.chunk frames.

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/jsonw"
)

type oaiChunk struct {
	ID      string           `json:"id"`
	Object  string           `json:"object"`
	Created int64            `json:"created"`
	Model   string           `json:"model"`
	Choices []oaiChunkChoice `json:"choices"` // [] in the usage chunk
	Usage   *oaiUsage        `json:"usage,omitempty"`
}

type oaiChunkChoice struct {
	Index        int       `json:"index"`
	Delta        oaiDelta  `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"` // always null
	FinishReason *string   `json:"finish_reason"`
}

type oaiDelta struct {
	Role      string             `json:"role,omitempty"`
	Content   *string            `json:"content,omitempty"`
	ToolCalls []oaiToolCallDelta `json:"tool_calls,omitempty"`
}

type oaiToolCallDelta struct {
	Index    int              `json:"index"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function oaiFunctionDelta `json:"function"`
}

type oaiFunctionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

var (
	framePrefix = []byte("data: ")
	frameEnd    = []byte("\n\n")
	frameDone   = []byte("data: [DONE]\n\n")
)

// AnthropicStream converts Anthropic streaming events to OpenAI
// chat.completion.chunk payloads. Zero value is not ready: use
// NewAnthropicStream. Not safe for concurrent use.
type AnthropicStream struct {
	includeUsage bool
	created      int64
	id, model    string
	// head is every chunk's JSON up to its delta, built once per message:
	// {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[{"index":0,"delta":
	head      []byte
	usage     anthUsage
	usageSeen bool
	// tools maps an Anthropic content block index to the OpenAI tool-call
	// index: OpenAI counts tool calls, Anthropic counts all blocks.
	tools    map[int64]int
	nextTool int
	// noArgs[k] holds while tool call k has streamed no arguments: its
	// block's end then sends "{}", as the JSON answer has it (a tool
	// without parameters gets no input_json_delta, or an empty one).
	noArgs   []bool
	finished bool   // a finish_reason chunk went out
	done     bool   // [DONE] or an error frame went out; ignore the rest
	text     string // the text the last event streamed
	other    string // the other output it carried: thinking, a tool's input
}

// NewAnthropicStream starts a conversion. includeUsage is the client's
// stream_options.include_usage: OpenAI sends usage only when asked.
func NewAnthropicStream(includeUsage bool) *AnthropicStream {
	return &AnthropicStream{includeUsage: includeUsage, created: nowUnix(), tools: map[int64]int{}}
}

// Event consumes one Anthropic SSE event (ev.Name is the event type, ev.Data
// its JSON) and appends zero or more complete OpenAI SSE frames to dst:
// "data: {...}\n\n", and "data: [DONE]\n\n" after message_stop. After an
// error event it emits one OpenAI error frame and nothing more, so the
// OpenAI SDKs raise instead of seeing a clean end.
//
// ev.Data is read in place: strings kept past the call are copied.
func (s *AnthropicStream) Event(ev Event, dst []byte) []byte {
	s.text, s.other = "", ""
	if s.done {
		return dst
	}
	// A view of the data, not a copy: gjson.GetBytes would copy every
	// result, gjson.ParseBytes the whole event.
	text := unsafe.String(unsafe.SliceData(ev.Data), len(ev.Data))
	if len(text) == 0 || text[0] != '{' || !gjson.Valid(text) {
		// Not one event's JSON: events run together without the blank
		// line between them read as one whose data is several objects,
		// named by the last event line (message_stop) — an empty answer
		// that looked complete (the chaos probe). Skipped, the stream
		// ends without its end and is incomplete.
		return dst
	}
	data := gjson.Parse(text)
	// The data's type names the event (Anthropic sends both, alike).
	name := data.Get("type").String()
	if name == "" {
		name = ev.Name
	}
	switch name {
	case "message_start":
		m := data.Get("message")
		s.id = strings.Clone(m.Get("id").String())
		s.model = strings.Clone(m.Get("model").String())
		s.head = nil
		if u := m.Get("usage"); u.IsObject() {
			s.usage.read(u)
			s.usageSeen = true
		}
		dst = s.open(dst)
		dst = append(dst, `{"role":"assistant","content":""}`...)
		return s.close(dst, "")
	case "content_block_start":
		b := data.Get("content_block")
		if b.Get("type").String() != "tool_use" {
			return dst // text arrives in deltas; thinking is dropped
		}
		k := s.nextTool
		s.nextTool++
		s.tools[data.Get("index").Int()] = k
		s.noArgs = append(s.noArgs, true)
		dst = s.open(dst)
		dst = append(dst, `{"tool_calls":[{"index":`...)
		dst = strconv.AppendInt(dst, int64(k), 10)
		if id := b.Get("id").String(); id != "" {
			dst = append(dst, `,"id":`...)
			dst = jsonw.AppendString(dst, id)
		}
		dst = append(dst, `,"type":"function","function":{`...)
		if n := b.Get("name").String(); n != "" {
			dst = append(dst, `"name":`...)
			dst = jsonw.AppendString(dst, n)
			dst = append(dst, ',')
		}
		dst = append(dst, `"arguments":""}}]}`...)
		return s.close(dst, "")
	case "content_block_delta":
		d := data.Get("delta")
		switch d.Get("type").String() {
		case "text_delta":
			text := d.Get("text").String()
			if text == "" {
				return dst
			}
			s.text = text
			dst = s.open(dst)
			dst = append(dst, `{"content":`...)
			dst = jsonw.AppendString(dst, text)
			dst = append(dst, '}')
			return s.close(dst, "")
		case "input_json_delta":
			k, ok := s.tools[data.Get("index").Int()]
			partial := d.Get("partial_json").String()
			s.other = partial
			if !ok || partial == "" {
				return dst
			}
			s.noArgs[k] = false
			dst = s.open(dst)
			dst = append(dst, `{"tool_calls":[{"index":`...)
			dst = strconv.AppendInt(dst, int64(k), 10)
			dst = append(dst, `,"function":{"arguments":`...)
			dst = jsonw.AppendString(dst, partial)
			dst = append(dst, `}}]}`...)
			return s.close(dst, "")
		}
		// Thinking (billed as output), signature and citations deltas
		// are dropped.
		s.other = d.Get("thinking").String()
		return dst
	case "content_block_stop":
		k, ok := s.tools[data.Get("index").Int()]
		if !ok || !s.noArgs[k] {
			return dst
		}
		s.noArgs[k] = false
		dst = s.open(dst)
		dst = append(dst, `{"tool_calls":[{"index":`...)
		dst = strconv.AppendInt(dst, int64(k), 10)
		dst = append(dst, `,"function":{"arguments":"{}"}}]}`...)
		return s.close(dst, "")
	case "message_delta":
		if u := data.Get("usage"); u.IsObject() {
			s.usage.read(u)
			s.usageSeen = true
		}
		if stop := data.Get("delta.stop_reason"); stop.Type == gjson.String {
			return s.finish(dst, finishReason(stop.Str))
		}
		return dst
	case "message_stop":
		if !s.finished {
			dst = s.finish(dst, "stop") // a stream must end with a finish_reason
		}
		if s.includeUsage {
			dst = s.usageChunk(dst)
		}
		s.done = true
		return append(dst, frameDone...)
	case "error":
		s.done = true
		if s.includeUsage && s.usageSeen {
			// What the provider counted so far (message_start's input): a
			// stream cut by its error is charged that prompt, not an
			// estimate, also past the egress listener.
			dst = s.usageChunk(dst)
		}
		return frame(dst, FromAnthropicError(ev.Data))
	}
	return dst // ping, and event types added later
}

// usageChunk appends the usage-only chunk (choices []) with the usage so far.
func (s *AnthropicStream) usageChunk(dst []byte) []byte {
	u := s.usage.openai()
	if b, err := marshal(oaiChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model, Choices: []oaiChunkChoice{}, Usage: u}); err == nil {
		dst = frame(dst, b)
	}
	return dst
}

// TextDelta is the text the last Event streamed to the client ("" if none),
// for estimating usage without parsing the event again. It may point into
// that event's data: use it before the next Feed of the framer.
func (s *AnthropicStream) TextDelta() string { return s.text }

// OtherOutput is the output the last Event carried that TextDelta does
// not have: a tool's input, extended thinking. The provider bills both.
func (s *AnthropicStream) OtherOutput() string { return s.other }

// Ended reports whether the conversion emitted the stream's end: [DONE]
// after message_stop, or an error frame. A stream that stops before it was
// cut off.
func (s *AnthropicStream) Ended() bool { return s.done }

// Usage is the usage seen so far (input and output tokens; ok=false if none
// yet). Prompt tokens include cache reads and writes, as in the chunks.
func (s *AnthropicStream) Usage() (promptTokens, completionTokens int, ok bool) {
	return s.usage.prompt(), s.usage.output, s.usageSeen
}

// Cached is the cache reads among the prompt tokens.
func (s *AnthropicStream) Cached() int { return s.usage.cacheRead }

// CacheWrites is the cache writes among the prompt tokens, for five
// minutes and for an hour.
func (s *AnthropicStream) CacheWrites() (fiveMin, oneHour int) {
	return s.usage.cacheWrite - s.usage.cacheWrite1h, s.usage.cacheWrite1h
}

func (s *AnthropicStream) finish(dst []byte, reason string) []byte {
	if s.finished {
		return dst
	}
	s.finished = true
	dst = s.open(dst)
	dst = append(dst, "{}"...)
	return s.close(dst, reason)
}

// open starts a chunk frame: "data: " and the chunk's JSON up to its delta.
// The JSON is what encoding/json makes of oaiChunk, byte for byte.
func (s *AnthropicStream) open(dst []byte) []byte {
	if s.head == nil {
		h := append([]byte(nil), `{"id":`...)
		h = jsonw.AppendString(h, s.id)
		h = append(h, `,"object":"chat.completion.chunk","created":`...)
		h = strconv.AppendInt(h, s.created, 10)
		h = append(h, `,"model":`...)
		h = jsonw.AppendString(h, s.model)
		s.head = append(h, `,"choices":[{"index":0,"delta":`...)
	}
	dst = append(dst, framePrefix...)
	return append(dst, s.head...)
}

// close ends a chunk frame opened by open, after its delta; finish is the
// finish_reason, "" for null.
func (s *AnthropicStream) close(dst []byte, finish string) []byte {
	dst = append(dst, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		dst = append(dst, "null"...)
	} else {
		dst = jsonw.AppendString(dst, finish)
	}
	dst = append(dst, "}]}"...)
	return append(dst, frameEnd...)
}

func frame(dst, payload []byte) []byte {
	dst = append(dst, framePrefix...)
	dst = append(dst, payload...)
	return append(dst, frameEnd...)
}
