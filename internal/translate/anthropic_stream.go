package translate

// Anthropic streaming events → OpenAI chat.completion.chunk frames.

import (
	"github.com/tidwall/gjson"
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
	usage        anthUsage
	usageSeen    bool
	// tools maps an Anthropic content block index to the OpenAI tool-call
	// index: OpenAI counts tool calls, Anthropic counts all blocks.
	tools    map[int64]int
	nextTool int
	finished bool // a finish_reason chunk went out
	done     bool // [DONE] or an error frame went out; ignore the rest
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
func (s *AnthropicStream) Event(ev Event, dst []byte) []byte {
	if s.done {
		return dst
	}
	data := gjson.ParseBytes(ev.Data)
	name := ev.Name
	if name == "" {
		name = data.Get("type").String()
	}
	switch name {
	case "message_start":
		m := data.Get("message")
		s.id = m.Get("id").String()
		s.model = m.Get("model").String()
		if u := m.Get("usage"); u.IsObject() {
			s.usage.read(u)
			s.usageSeen = true
		}
		empty := ""
		return s.chunk(dst, oaiDelta{Role: "assistant", Content: &empty}, nil)
	case "content_block_start":
		b := data.Get("content_block")
		if b.Get("type").String() != "tool_use" {
			return dst // text arrives in deltas; thinking is dropped
		}
		k := s.nextTool
		s.nextTool++
		s.tools[data.Get("index").Int()] = k
		return s.chunk(dst, oaiDelta{ToolCalls: []oaiToolCallDelta{{
			Index:    k,
			ID:       b.Get("id").String(),
			Type:     "function",
			Function: oaiFunctionDelta{Name: b.Get("name").String()},
		}}}, nil)
	case "content_block_delta":
		d := data.Get("delta")
		switch d.Get("type").String() {
		case "text_delta":
			text := d.Get("text").String()
			if text == "" {
				return dst
			}
			return s.chunk(dst, oaiDelta{Content: &text}, nil)
		case "input_json_delta":
			k, ok := s.tools[data.Get("index").Int()]
			partial := d.Get("partial_json").String()
			if !ok || partial == "" {
				return dst
			}
			return s.chunk(dst, oaiDelta{ToolCalls: []oaiToolCallDelta{{
				Index: k, Function: oaiFunctionDelta{Arguments: partial},
			}}}, nil)
		}
		return dst // thinking, signature and citations deltas are dropped
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
			u := s.usage.openai()
			if b, err := marshal(oaiChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model, Choices: []oaiChunkChoice{}, Usage: u}); err == nil {
				dst = frame(dst, b)
			}
		}
		s.done = true
		return append(dst, frameDone...)
	case "error":
		s.done = true
		return frame(dst, FromAnthropicError(ev.Data))
	}
	return dst // ping, content_block_stop, and event types added later
}

// Ended reports whether the conversion emitted the stream's end: [DONE]
// after message_stop, or an error frame. A stream that stops before it was
// cut off.
func (s *AnthropicStream) Ended() bool { return s.done }

// Usage is the usage seen so far (input and output tokens; ok=false if none
// yet). Prompt tokens include cache reads and writes, as in the chunks.
func (s *AnthropicStream) Usage() (promptTokens, completionTokens int, ok bool) {
	return s.usage.prompt(), s.usage.output, s.usageSeen
}

func (s *AnthropicStream) finish(dst []byte, reason string) []byte {
	if s.finished {
		return dst
	}
	s.finished = true
	return s.chunk(dst, oaiDelta{}, &reason)
}

func (s *AnthropicStream) chunk(dst []byte, d oaiDelta, finish *string) []byte {
	b, err := marshal(oaiChunk{
		ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
		Choices: []oaiChunkChoice{{Delta: d, FinishReason: finish}},
	})
	if err != nil { // strings and ints always marshal; never emit half a frame
		return dst
	}
	return frame(dst, b)
}

func frame(dst, payload []byte) []byte {
	dst = append(dst, framePrefix...)
	dst = append(dst, payload...)
	return append(dst, frameEnd...)
}
