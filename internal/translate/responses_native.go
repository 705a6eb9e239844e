package translate

// Following a native Responses API answer (a provider that serves
// /responses itself): the events pass through unchanged; what stellwerk
// reads of them is the streamed text, for usage estimates, and the usage
// of response.completed.

import (
	"unsafe"

	"github.com/tidwall/gjson"
)

// ResponsesFollower passes a native Responses API stream through as it
// came and reads its end and usage: response.completed,
// response.incomplete and response.failed carry the whole response with
// usage.input_tokens and usage.output_tokens; an error event ends it too.
type ResponsesFollower struct {
	text    string
	ended   bool
	usage   [3]int // input, output, cached
	usageOK bool
}

// NewResponsesFollower starts following a native stream.
func NewResponsesFollower() *ResponsesFollower { return &ResponsesFollower{} }

// TextDelta is the text the last Event streamed.
func (f *ResponsesFollower) TextDelta() string { return f.text }

// Ended reports whether the stream's last event (a terminal response
// event or an error) came.
func (f *ResponsesFollower) Ended() bool { return f.ended }

// Usage is the terminal event's usage, once it came.
func (f *ResponsesFollower) Usage() (promptTokens, completionTokens int, ok bool) {
	return f.usage[0], f.usage[1], f.usageOK
}

// Cached is the usage's cached input tokens.
func (f *ResponsesFollower) Cached() int { return f.usage[2] }

// Event appends ev as it came (completed with its blank line when the
// stream ended inside it) and reads it.
func (f *ResponsesFollower) Event(ev Event, dst []byte) []byte {
	if len(ev.Raw) > 0 {
		dst = append(dst, ev.Raw...)
		if n := len(ev.Raw); n < 2 || ev.Raw[n-1] != '\n' || (ev.Raw[n-2] != '\n' && ev.Raw[n-2] != '\r') {
			dst = append(dst, '\n', '\n')
		}
	}
	f.Read(ev)
	return dst
}

// Read reads one event of the stream, in place, without passing it on:
// its text delta, and the end and usage of a terminal event.
func (f *ResponsesFollower) Read(ev Event) {
	f.text = ""
	if len(ev.Data) == 0 || ev.Data[0] != '{' {
		return
	}
	data := gjson.Parse(unsafe.String(unsafe.SliceData(ev.Data), len(ev.Data)))
	typ := ev.Name
	if t := data.Get("type"); t.Type == gjson.String {
		typ = t.Str
	}
	switch typ {
	case "response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta":
		if d := data.Get("delta"); d.Type == gjson.String {
			f.text = d.Str
		}
	case "response.completed", "response.incomplete", "response.failed":
		f.ended = true
		if u := data.Get("response.usage"); u.IsObject() {
			if in, out, ok := ResponseUsage(u); ok {
				f.usage, f.usageOK = [3]int{in, out, Tokens(u.Get("input_tokens_details.cached_tokens"))}, true
			}
		}
	case "error":
		f.ended = true
	}
}

// ResponseUsage reads a Responses API usage object: input_tokens and
// output_tokens, both non-negative numbers.
func ResponseUsage(u gjson.Result) (input, output int, ok bool) {
	in, out := u.Get("input_tokens"), u.Get("output_tokens")
	if in.Type != gjson.Number || out.Type != gjson.Number || in.Num < 0 || out.Num < 0 {
		return 0, 0, false
	}
	return Tokens(in), Tokens(out), true
}

// StreamConverter is one stream translation: each event in, zero or more
// events out, the text streamed, the end and the usage seen.
type StreamConverter interface {
	Event(ev Event, dst []byte) []byte
	TextDelta() string
	Ended() bool
	Usage() (promptTokens, completionTokens int, ok bool)
	// Cached is how many of the prompt tokens Usage reports the provider
	// served from its cache (0 when it said none).
	Cached() int
}

// OutputCounter is a stream translation whose events carry output it does
// not stream as text (TextDelta): a tool's input, extended thinking. A
// stream cut short is charged the output it counted (OtherOutput and
// TextDelta's), when the provider's count is not final.
type OutputCounter interface {
	OtherOutput() string
}

// CacheWriter is a stream translation that reads the prompt tokens the
// provider wrote to its cache (Anthropic's): for five minutes and for an
// hour, parts of Usage's prompt tokens.
type CacheWriter interface {
	CacheWrites() (fiveMin, oneHour int)
}

var (
	_ CacheWriter     = (*AnthropicStream)(nil)
	_ OutputCounter   = (*AnthropicStream)(nil)
	_ OutputCounter   = (*Chain)(nil)
	_ CacheWriter     = (*Chain)(nil)
	_ StreamConverter = (*AnthropicStream)(nil)
	_ StreamConverter = (*ResponsesStream)(nil)
	_ StreamConverter = (*ResponsesFollower)(nil)
	_ StreamConverter = (*Chain)(nil)
)

// Chain composes two stream translations: first's events are framed again
// and fed to second (Anthropic events → chat chunks → Responses events).
type Chain struct {
	first, second StreamConverter
	framer        Framer
	buf           []byte
	evs           []Event
	text, other   string
}

// NewChain composes first then second.
func NewChain(first, second StreamConverter) *Chain { return &Chain{first: first, second: second} }

// TextDelta is the text the last Event streamed, as the first translation
// read it.
func (c *Chain) TextDelta() string { return c.text }

// OtherOutput is the first translation's, when it counts any.
func (c *Chain) OtherOutput() string { return c.other }

// Ended reports whether the second translation ended.
func (c *Chain) Ended() bool { return c.second.Ended() }

// Usage is the usage the second translation read (the first's, passed on).
func (c *Chain) Usage() (int, int, bool) {
	if pt, ct, ok := c.second.Usage(); ok {
		return pt, ct, ok
	}
	return c.first.Usage()
}

// Cached is the cached prompt tokens of the usage Usage reports.
func (c *Chain) Cached() int {
	if _, _, ok := c.second.Usage(); ok {
		return c.second.Cached()
	}
	return c.first.Cached()
}

// CacheWrites is the first translation's cache writes (the second reads
// chat chunks, whose usage the first wrote).
func (c *Chain) CacheWrites() (fiveMin, oneHour int) {
	if cw, ok := c.first.(CacheWriter); ok {
		return cw.CacheWrites()
	}
	return 0, 0
}

// Event feeds ev through both translations.
func (c *Chain) Event(ev Event, dst []byte) []byte {
	c.buf = c.first.Event(ev, c.buf[:0])
	c.text, c.other = c.first.TextDelta(), ""
	if o, ok := c.first.(OutputCounter); ok {
		c.other = o.OtherOutput()
	}
	c.evs = c.framer.Feed(c.buf, c.evs[:0])
	for i := range c.evs {
		dst = c.second.Event(c.evs[i], dst)
	}
	return dst
}

// ResponsesToAnthropic translates a Responses API request into an
// Anthropic Messages request for model: through Chat Completions, so both
// translations' rules hold (docs/wire-formats.md). Errors are
// *apierr.Error 400.
func ResponsesToAnthropic(body []byte, model string) ([]byte, error) {
	chat, err := ResponsesToChat(body)
	if err != nil {
		return nil, err
	}
	return ToAnthropicRequest(chat, model)
}

// AnthropicToResponse translates an Anthropic Messages answer into a
// Responses API response object, through chat.completion.
func AnthropicToResponse(body []byte) ([]byte, error) {
	chat, err := FromAnthropicResponse(body)
	if err != nil {
		return nil, err
	}
	return ChatToResponse(chat, nil)
}

// NewAnthropicResponsesStream translates Anthropic's streaming events into
// the Responses API's typed events, through chat chunks (with their usage
// chunk, which the Responses events carry in response.completed).
func NewAnthropicResponsesStream(echo []byte) *Chain {
	return NewChain(NewAnthropicStream(true), NewResponsesStream().WithEcho(echo))
}
