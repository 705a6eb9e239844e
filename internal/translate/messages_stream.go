package translate

// Chat Completions stream → Anthropic Messages streaming events, for a
// streamed Messages API request an OpenAI-wire provider served.

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/jsonw"
)

// MessagesStream turns a Chat Completions stream (chat.completion.chunk
// events, the usage chunk, [DONE]) into Anthropic's events: message_start,
// per content block content_block_start, its deltas (text_delta, or
// input_json_delta for a tool call's arguments) and content_block_stop,
// then message_delta with the stop_reason and usage, and message_stop.
// Only the first choice is read (Anthropic has no n). Events are built by
// appends; no map per event. Not safe for concurrent use.
//
// Anthropic streams one block at a time, and a tool call's arguments must
// all be in its block; a chat stream may interleave parallel calls (more
// arguments for call 0 after call 1 began). So a call's block stays open
// until its arguments are a whole JSON value; what arrives for another
// block meanwhile (text, a later call) is held back in order and streamed
// once the call is whole, or at the end. A provider that streams its
// calls one after another, as OpenAI does, is streamed as it comes.
//
// A text block starts with its first text that is not whitespace: the
// whitespace before it is held back, and a block that ends as whitespace
// only (the "\n\n" models send before their tool calls) never starts.
// Sent back in the conversation's history, a blank text block has
// Anthropic refuse every later turn.
type MessagesStream struct {
	started bool
	done    bool
	text    string // the text the last event streamed

	block      int           // the open content block's index, -1 when none
	next       int           // the next content block's index
	textOpen   bool          // the open block is a text block, not yet started (block -1) while its text is whitespace
	ws         []byte        // that whitespace, held back
	call       *messagesCall // the open block's call, nil when it is not a call
	calls      []*messagesCall
	held       []heldBlock // blocks that wait for the open call to be whole, in order
	stopReason string      // the stop_reason the finish_reason maps to, "" until one came
	finished   bool        // the choice's last chunk carried a finish_reason (Finished)
	usage      [3]int64    // prompt, completion, cached
	usageOK    bool
	refused    bool      // the chat stream sent a refusal
	names      ToolNames // the tools the request's translation named short (WithToolNames)
}

// messagesCall is one chat tool call (by its index) of the stream.
type messagesCall struct {
	id, name string // copies when held: the event's bytes are the framer's
	args     []byte // the arguments while the call is held
	whole    jsonEnd
	state    uint8 // callHeld, callOpen or callClosed
}

const (
	callHeld = iota
	callOpen
	callClosed
)

// heldBlock is text (call nil) or a call held back.
type heldBlock struct {
	call *messagesCall
	text []byte
}

// jsonEnd follows a JSON value fed in pieces, in one pass over each piece,
// and tells when an object or array has ended.
type jsonEnd struct {
	depth        int32
	started, end bool
	str, esc     bool
	scalar       bool // the value is not an object or array: whole only at the stream's end
}

func (j *jsonEnd) feed(s string) {
	if j.end || j.scalar {
		return
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case j.str:
			switch {
			case j.esc:
				j.esc = false
			case c == '\\':
				j.esc = true
			case c == '"':
				j.str = false
			}
		case c == '"':
			j.str = true
		case c == '{' || c == '[':
			j.started = true
			j.depth++
		case c == '}' || c == ']':
			j.depth--
			if j.depth <= 0 && j.started {
				j.end = true
				return
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			if !j.started {
				j.scalar = true
				return
			}
		}
	}
}

// NewMessagesStream starts a conversion.
func NewMessagesStream() *MessagesStream { return &MessagesStream{block: -1} }

// WithToolNames has the stream's tool calls name their tools as the
// client did: names are the tools the request's translation named short
// (MessagesToChat).
func (s *MessagesStream) WithToolNames(names ToolNames) *MessagesStream {
	s.names = names
	return s
}

// TextDelta is the text (or tool arguments) the last Event streamed, for
// usage estimates. It may point into that event's data: use it before the
// next Feed of the framer.
func (s *MessagesStream) TextDelta() string { return s.text }

// Ended reports whether message_stop (or an error event) went out.
func (s *MessagesStream) Ended() bool { return s.done }

// Finished reports whether the last chunk of the choice carried a
// finish_reason: the answer is whole, its [DONE] aside (content after a
// finish reopens it).
func (s *MessagesStream) Finished() bool { return s.finished }

// Usage is the chat stream's usage once its usage chunk came, as prompt
// and completion tokens (stellwerk's meter counts cached tokens in the
// prompt, as OpenAI does).
func (s *MessagesStream) Usage() (promptTokens, completionTokens int, ok bool) {
	return int(s.usage[0]), int(s.usage[1]), s.usageOK
}

// Cached is the chat usage's cached prompt tokens.
func (s *MessagesStream) Cached() int { return int(s.usage[2]) }

// Event consumes one chat SSE event and appends zero or more Anthropic
// events to dst. ev.Data is read in place.
func (s *MessagesStream) Event(ev Event, dst []byte) []byte {
	s.text = ""
	if s.done || len(ev.Data) == 0 {
		return dst
	}
	if string(ev.Data) == "[DONE]" {
		return s.stop(dst)
	}
	data := gjson.Parse(unsafe.String(unsafe.SliceData(ev.Data), len(ev.Data)))
	if !data.IsObject() {
		return dst
	}
	// One pass over the top level and one over the choice, as gjson.Get
	// would read them (the first of duplicate keys), not one scan per field.
	var errv, usage, choices, id, model gjson.Result
	data.ForEach(func(k, v gjson.Result) bool {
		var f *gjson.Result
		switch k.Str {
		case "error":
			f = &errv
		case "usage":
			f = &usage
		case "choices":
			f = &choices
		case "id":
			f = &id
		case "model":
			f = &model
		default:
			return true
		}
		if !f.Exists() {
			*f = v
		}
		return true
	})
	if errv.Exists() {
		s.done = true
		msg := errv.Get("message").String()
		if msg == "" {
			msg = "the provider's stream failed"
		}
		return AppendMessagesError(dst, "api_error", msg)
	}
	if !s.started {
		s.started = true
		dst = append(dst, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":"...)
		dst = jsonw.AppendString(dst, messageID(id.Str))
		dst = append(dst, `,"type":"message","role":"assistant","model":`...)
		dst = jsonw.AppendString(dst, model.Str)
		dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`+"\n\n"...)
	}
	if usage.IsObject() {
		s.usage = [3]int64{int64(Tokens(usage.Get("prompt_tokens"))), int64(Tokens(usage.Get("completion_tokens"))),
			int64(Tokens(usage.Get("prompt_tokens_details.cached_tokens")))}
		s.usageOK = true
	}
	var ch, index, delta, finish gjson.Result
	choices.ForEach(func(_, v gjson.Result) bool {
		ch = v
		return false // the first choice only
	})
	ch.ForEach(func(k, v gjson.Result) bool {
		var f *gjson.Result
		switch k.Str {
		case "index":
			f = &index
		case "delta":
			f = &delta
		case "finish_reason":
			f = &finish
		default:
			return true
		}
		if !f.Exists() {
			*f = v
		}
		return true
	})
	if !ch.IsObject() || index.Int() != 0 {
		return dst
	}
	text := AnswerText(delta.Get("content"))
	if r := delta.Get("refusal"); r.Type == gjson.String && r.Str != "" {
		// A refusal streams as text, and the message stops as refused.
		text, s.refused = r.Str, true
	}
	if text != "" {
		s.text = text
		switch {
		case s.textOpen:
		case s.callWhole() && len(s.held) == 0:
			dst = s.closeBlock(dst)
			s.textOpen = true
		default: // after the held blocks
			if n := len(s.held); n > 0 && s.held[n-1].call == nil {
				s.held[n-1].text = append(s.held[n-1].text, text...)
			} else {
				s.held = append(s.held, heldBlock{text: []byte(text)})
			}
		}
		if s.textOpen {
			dst = s.textDelta(dst, text)
		}
	}
	toolCalls(delta.Get("tool_calls")).ForEach(func(_, tc gjson.Result) bool {
		lastID := ""
		if n := len(s.calls); n > 0 && s.calls[n-1] != nil {
			lastID = s.calls[n-1].id
		}
		i := callSlot(tc, len(s.calls), lastID)
		if i < 0 || i > 1024 {
			return true // no provider numbers calls so; ignore rather than grow
		}
		for len(s.calls) <= i {
			s.calls = append(s.calls, nil)
		}
		c := s.calls[i]
		if c == nil {
			c = &messagesCall{id: strings.Clone(tc.Get("id").Str)} // kept: a later delta without an index names it
			s.calls[i] = c
			if s.callWhole() && len(s.held) == 0 {
				dst = s.openCall(s.closeBlock(dst), c, c.id, tc.Get("function.name").Str)
			} else {
				c.name = strings.Clone(tc.Get("function.name").Str)
				s.held = append(s.held, heldBlock{call: c})
			}
		}
		if a := tc.Get("function.arguments").Str; a != "" {
			s.text = a
			switch c.state {
			case callOpen:
				c.whole.feed(a)
				dst = s.delta(dst, "input_json_delta", "partial_json", a)
			case callHeld:
				c.whole.feed(a)
				c.args = append(c.args, a...)
			}
			// A closed call's arguments were a whole JSON value: more
			// would only make them invalid, and are dropped.
		}
		return true
	})
	s.finished = finish.Type == gjson.String && finish.Str != ""
	if finish.Type == gjson.String {
		s.stopReason = stopReason(finish.Str) // a constant: finish.Str points into the event
	}
	return s.release(dst, false)
}

// callWhole reports whether the open block may close: it is not a call,
// or the call's arguments are a whole JSON value.
func (s *MessagesStream) callWhole() bool { return s.call == nil || s.call.whole.end }

// release streams the held blocks while the open call is whole, or all of
// them at the end. A held call opens with its arguments so far in one
// delta and, if they are not yet whole, stays open for the rest.
func (s *MessagesStream) release(dst []byte, end bool) []byte {
	for len(s.held) > 0 && (end || s.callWhole()) {
		h := s.held[0]
		s.held = s.held[1:]
		dst = s.closeBlock(dst)
		if h.call == nil {
			s.textOpen = true
			dst = s.textDelta(dst, unsafe.String(unsafe.SliceData(h.text), len(h.text)))
			continue
		}
		dst = s.openCall(dst, h.call, h.call.id, h.call.name)
		if len(h.call.args) > 0 {
			dst = s.delta(dst, "input_json_delta", "partial_json", unsafe.String(unsafe.SliceData(h.call.args), len(h.call.args)))
			h.call.args = nil
		}
	}
	if len(s.held) == 0 {
		s.held = nil
	}
	return dst
}

// textDelta streams text in the open text block, starting the block with
// the first text that is not whitespace and the whitespace held back
// before it, in one delta. The held whitespace is copied into a buffer
// the stream reuses, so whitespace chunks cost no allocation each.
func (s *MessagesStream) textDelta(dst []byte, text string) []byte {
	if s.block < 0 {
		if blank(text) {
			s.ws = append(s.ws, text...)
			return dst
		}
		dst = s.openBlock(dst)
		dst = append(dst, `{"type":"text","text":""}}`+"\n\n"...)
		if len(s.ws) > 0 {
			s.ws = append(s.ws, text...)
			text = unsafe.String(unsafe.SliceData(s.ws), len(s.ws))
		}
	}
	return s.delta(dst, "text_delta", "text", text)
}

// openCall opens call c's tool_use block.
func (s *MessagesStream) openCall(dst []byte, c *messagesCall, id, name string) []byte {
	dst = s.openBlock(dst)
	s.call, c.state = c, callOpen
	dst = append(dst, `{"type":"tool_use","id":`...)
	dst = jsonw.AppendString(dst, id)
	dst = append(dst, `,"name":`...)
	dst = jsonw.AppendString(dst, s.names.original(name))
	return append(dst, `,"input":{}}}`+"\n\n"...)
}

// openBlock appends a content_block_start event up to its content_block
// value, and opens the block.
func (s *MessagesStream) openBlock(dst []byte) []byte {
	s.block = s.next
	s.next++
	dst = append(dst, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(s.block), 10)
	return append(dst, `,"content_block":`...)
}

// closeBlock ends the open block, if any. A text block that never
// started (whitespace only) is dropped: its index goes to the next block.
func (s *MessagesStream) closeBlock(dst []byte) []byte {
	s.textOpen, s.ws = false, s.ws[:0]
	if s.block < 0 {
		return dst
	}
	dst = append(dst, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(s.block), 10)
	if s.call != nil {
		s.call.state = callClosed
	}
	s.block, s.textOpen, s.call = -1, false, nil
	return append(dst, "}\n\n"...)
}

// delta appends a content_block_delta of the open block.
func (s *MessagesStream) delta(dst []byte, typ, field, v string) []byte {
	dst = append(dst, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(s.block), 10)
	dst = append(dst, `,"delta":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","`...)
	dst = append(dst, field...)
	dst = append(dst, `":`...)
	dst = jsonw.AppendString(dst, v)
	return append(dst, "}}\n\n"...)
}

// stop closes the open block and ends the message: message_delta with the
// stop reason and usage, then message_stop.
func (s *MessagesStream) stop(dst []byte) []byte {
	s.done = true
	if !s.started {
		return AppendMessagesError(dst, "api_error", "the provider's stream ended without an answer")
	}
	if s.next == 0 && len(s.held) == 0 && len(s.ws) > 0 {
		// Nothing but whitespace: kept, as the one block (see
		// ChatToMessage).
		dst = s.openBlock(dst)
		dst = append(dst, `{"type":"text","text":""}}`+"\n\n"...)
		dst = s.delta(dst, "text_delta", "text", unsafe.String(unsafe.SliceData(s.ws), len(s.ws)))
	}
	dst = s.closeBlock(s.release(dst, true))
	dst = append(dst, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	if s.refused {
		s.stopReason = "refusal"
	} else if s.stopReason == "" {
		s.stopReason = stopReason("")
	}
	dst = jsonw.AppendString(dst, s.stopReason)
	dst = append(dst, `,"stop_sequence":null},"usage":`...)
	dst = appendUsage(dst, s.usage[0]-s.usage[2], s.usage[1], s.usage[2])
	dst = append(dst, "}\n\n"...)
	return append(dst, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
}

// AppendMessagesError appends an Anthropic error event, what the anthropic
// SDKs raise mid-stream.
func AppendMessagesError(dst []byte, typ, msg string) []byte {
	dst = append(dst, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"...)
	dst = jsonw.AppendString(dst, typ)
	dst = append(dst, `,"message":`...)
	dst = jsonw.AppendString(dst, msg)
	return append(dst, "}}\n\n"...)
}
