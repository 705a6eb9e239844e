package translate

// Chat Completions stream → Anthropic Messages streaming events, for a
// streamed Messages API request an OpenAI-wire provider served.

import (
	"strconv"
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
type MessagesStream struct {
	started bool
	done    bool
	text    string // the text the last event streamed

	block      int      // the open content block's index, -1 when none
	next       int      // the next content block's index
	textOpen   bool     // the open block is a text block
	calls      []int    // content block index per chat tool-call index
	stopReason string   // the stop_reason the finish_reason maps to, "" until one came
	usage      [3]int64 // prompt, completion, cached
	usageOK    bool
}

// NewMessagesStream starts a conversion.
func NewMessagesStream() *MessagesStream { return &MessagesStream{block: -1} }

// TextDelta is the text (or tool arguments) the last Event streamed, for
// usage estimates. It may point into that event's data: use it before the
// next Feed of the framer.
func (s *MessagesStream) TextDelta() string { return s.text }

// Ended reports whether message_stop (or an error event) went out.
func (s *MessagesStream) Ended() bool { return s.done }

// Usage is the chat stream's usage once its usage chunk came, as prompt
// and completion tokens (stellwerk's meter counts cached tokens in the
// prompt, as OpenAI does).
func (s *MessagesStream) Usage() (promptTokens, completionTokens int, ok bool) {
	return int(s.usage[0]), int(s.usage[1]), s.usageOK
}

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
		dst = append(dst, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	}
	if usage.IsObject() {
		s.usage = [3]int64{usage.Get("prompt_tokens").Int(), usage.Get("completion_tokens").Int(), usage.Get("prompt_tokens_details.cached_tokens").Int()}
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
	if t := delta.Get("content"); t.Type == gjson.String && t.Str != "" {
		if !s.textOpen {
			dst = s.closeBlock(dst)
			dst = s.openBlock(dst)
			s.textOpen = true
			dst = append(dst, `{"type":"text","text":""}}`+"\n\n"...)
		}
		s.text = t.Str
		dst = s.delta(dst, "text_delta", "text", t.Str)
	}
	delta.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		i := int(tc.Get("index").Int())
		if i < 0 || i > 1024 {
			return true // no provider numbers calls so; ignore rather than grow
		}
		for len(s.calls) <= i {
			s.calls = append(s.calls, -1)
		}
		if s.calls[i] < 0 {
			dst = s.closeBlock(dst)
			s.calls[i] = s.next
			dst = s.openBlock(dst)
			dst = append(dst, `{"type":"tool_use","id":`...)
			dst = jsonw.AppendString(dst, tc.Get("id").Str)
			dst = append(dst, `,"name":`...)
			dst = jsonw.AppendString(dst, tc.Get("function.name").Str)
			dst = append(dst, `,"input":{}}}`+"\n\n"...)
		}
		if a := tc.Get("function.arguments").Str; a != "" && s.calls[i] == s.block {
			// Anthropic streams one block at a time: arguments of a call
			// whose block closed (interleaved parallel calls) are dropped
			// rather than sent into another block.
			s.text = a
			dst = s.delta(dst, "input_json_delta", "partial_json", a)
		}
		return true
	})
	if finish.Type == gjson.String {
		s.stopReason = stopReason(finish.Str) // a constant: finish.Str points into the event
	}
	return dst
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

// closeBlock ends the open block, if any.
func (s *MessagesStream) closeBlock(dst []byte) []byte {
	if s.block < 0 {
		return dst
	}
	dst = append(dst, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	dst = strconv.AppendInt(dst, int64(s.block), 10)
	s.block, s.textOpen = -1, false
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
	dst = s.closeBlock(dst)
	dst = append(dst, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
	if s.stopReason == "" {
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
