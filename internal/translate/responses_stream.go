package translate

import (
	"encoding/json"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/jsonw"
)

// ResponsesStream turns a Chat Completions stream (chat.completion.chunk
// events, the usage chunk, [DONE]) into the Responses API's typed events:
// response.created, response.in_progress, then per output item
// response.output_item.added, its deltas (response.output_text.delta or
// response.function_call_arguments.delta) and their .done events, and
// response.completed with the whole response and its usage. Only the first
// choice is read (the Responses API has no n).
type ResponsesStream struct {
	id, model string
	msgName   string // the message item's id (msgID)
	created   int64
	seq       int
	started   bool
	done      bool
	text      string // the text the last event streamed

	msg     *strings.Builder // the open message item's text, nil when none
	msgIdx  int
	msgPart string                   // its content part's type: output_text or refusal
	msgItem string                   // its id: msgID for the first message item
	msgs    int                      // message items opened
	calls   map[int64]*responsesCall // by the chat tool call's index
	order   []*responsesCall
	outputs []any // finished items, by output index (text after a call closes before it)
	next    int   // the next output index
	finish  string
	// finished: the choice's last chunk carried a finish_reason (Finished).
	finished bool
	usage    [4]int64 // input, output, cached, reasoning
	usageOK  bool
	echo     []byte // what the response object repeats of the request (ResponsesEcho)
}

type responsesCall struct {
	idx          int
	callID, name string
	itemID       string // "fc_" + callID, the output item's id
	args         strings.Builder
}

// NewResponsesStream starts a conversion.
func NewResponsesStream() *ResponsesStream {
	return &ResponsesStream{created: nowUnix(), calls: map[int64]*responsesCall{}}
}

// WithEcho has the response objects of the stream (response.created,
// response.completed) repeat what echo holds of the request
// (ResponsesEcho).
func (s *ResponsesStream) WithEcho(echo []byte) *ResponsesStream {
	s.echo = echo
	return s
}

// TextDelta is the text the last Event streamed, for usage estimates. It
// may point into that event's data: use it before the next Feed.
func (s *ResponsesStream) TextDelta() string { return s.text }

// Ended reports whether response.completed (or an error) went out.
func (s *ResponsesStream) Ended() bool { return s.done }

// Finished reports whether the last chunk of the choice carried a
// finish_reason: the answer is whole, its [DONE] aside (content after a
// finish reopens it).
func (s *ResponsesStream) Finished() bool { return s.finished }

// Usage is the chat stream's usage, once its usage chunk came.
func (s *ResponsesStream) Usage() (promptTokens, completionTokens int, ok bool) {
	return int(s.usage[0]), int(s.usage[1]), s.usageOK
}

// Cached is the chat usage's cached prompt tokens.
func (s *ResponsesStream) Cached() int { return int(s.usage[2]) }

// Event consumes one chat SSE event and appends zero or more Responses
// events to dst.
func (s *ResponsesStream) Event(ev Event, dst []byte) []byte {
	s.text = ""
	if s.done || len(ev.Data) == 0 {
		return dst
	}
	if string(ev.Data) == "[DONE]" {
		return s.complete(dst)
	}
	data := gjson.Parse(unsafe.String(unsafe.SliceData(ev.Data), len(ev.Data)))
	if e := data.Get("error"); e.Exists() {
		s.done = true
		return s.emit(dst, "error", map[string]any{"code": e.Get("code").Value(), "message": e.Get("message").String(), "param": nil})
	}
	if !s.started {
		s.started = true
		s.id = "resp_" + strings.TrimPrefix(data.Get("id").String(), "chatcmpl-")
		s.model = strings.Clone(data.Get("model").String())
		if c := data.Get("created"); c.Exists() {
			s.created = c.Int()
		}
		dst = s.emit(dst, "response.created", map[string]any{"response": s.object(s.response("in_progress", []any{}, nil))})
		dst = s.emit(dst, "response.in_progress", map[string]any{"response": s.object(s.response("in_progress", []any{}, nil))})
	}
	if u := data.Get("usage"); u.IsObject() {
		s.usage = [4]int64{int64(Tokens(u.Get("prompt_tokens"))), int64(Tokens(u.Get("completion_tokens"))),
			int64(Tokens(u.Get("prompt_tokens_details.cached_tokens"))), int64(Tokens(u.Get("completion_tokens_details.reasoning_tokens")))}
		s.usageOK = true
	}
	ch := data.Get("choices.0")
	if !ch.Exists() || ch.Get("index").Int() != 0 {
		return dst
	}
	delta := ch.Get("delta")
	if t := AnswerText(delta.Get("content")); t != "" {
		dst = s.openMessage(dst, "output_text")
		s.msg.WriteString(t)
		s.text = t
		dst = s.delta(dst, "response.output_text.delta", s.msgItem, s.msgIdx, true, t)
	}
	// A refusal (structured outputs the model declines) is a message of
	// its own part type, as the JSON answer has it; it was dropped, and the
	// stream looked like an empty answer.
	if t := delta.Get("refusal"); t.Type == gjson.String && t.Str != "" {
		dst = s.openMessage(dst, "refusal")
		s.msg.WriteString(t.Str)
		s.text = t.Str
		dst = s.delta(dst, "response.refusal.delta", s.msgItem, s.msgIdx, true, t.Str)
	}
	toolCalls(delta.Get("tool_calls")).ForEach(func(_, tc gjson.Result) bool {
		lastID := ""
		if n := len(s.order); n > 0 {
			lastID = s.order[n-1].callID
		}
		i := int64(callSlot(tc, len(s.order), lastID))
		c := s.calls[i]
		if c == nil {
			dst = s.closeMessage(dst)
			// Copies: the event's data is the framer's buffer, reused by
			// the next Feed, and these outlive it.
			id := strings.Clone(tc.Get("id").String())
			c = &responsesCall{idx: s.next, callID: id, itemID: "fc_" + id, name: strings.Clone(tc.Get("function.name").String())}
			s.next++
			s.calls[i] = c
			s.order = append(s.order, c)
			dst = s.emit(dst, "response.output_item.added", map[string]any{"output_index": c.idx, "item": s.callItem(c, "in_progress")})
		}
		if a := tc.Get("function.arguments").String(); a != "" {
			c.args.WriteString(a)
			s.text = a
			dst = s.delta(dst, "response.function_call_arguments.delta", c.itemID, c.idx, false, a)
		}
		return true
	})
	f := ch.Get("finish_reason")
	s.finished = f.Type == gjson.String && f.Str != ""
	if f.Type == gjson.String {
		s.finish = strings.Clone(f.Str) // read at the end, after the framer reused this event's bytes
	}
	return dst
}

func (s *ResponsesStream) msgID() string {
	if s.msgName == "" {
		s.msgName = "msg_" + strings.TrimPrefix(s.id, "resp_")
	}
	return s.msgName
}

func (s *ResponsesStream) callItem(c *responsesCall, status string) map[string]any {
	return map[string]any{"type": "function_call", "id": c.itemID, "call_id": c.callID, "name": c.name,
		"arguments": c.args.String(), "status": status}
}

// openMessage opens a message item whose content part is of type part,
// unless one is open: another part type closes it first.
func (s *ResponsesStream) openMessage(dst []byte, part string) []byte {
	if s.msg != nil && s.msgPart == part {
		return dst
	}
	dst = s.closeMessage(dst)
	s.msg, s.msgIdx, s.msgPart = &strings.Builder{}, s.next, part
	s.next++
	s.msgItem = s.msgID()
	if s.msgs > 0 {
		s.msgItem += "_" + strconv.Itoa(s.msgIdx)
	}
	s.msgs++
	empty := map[string]any{"type": "output_text", "text": "", "annotations": []any{}}
	if part == "refusal" {
		empty = map[string]any{"type": "refusal", "refusal": ""}
	}
	dst = s.emit(dst, "response.output_item.added", map[string]any{"output_index": s.msgIdx,
		"item": map[string]any{"type": "message", "id": s.msgItem, "status": "in_progress", "role": "assistant", "content": []any{}}})
	return s.emit(dst, "response.content_part.added", map[string]any{"item_id": s.msgItem, "output_index": s.msgIdx, "content_index": 0,
		"part": empty})
}

// closeMessage ends the open message item, if any.
func (s *ResponsesStream) closeMessage(dst []byte) []byte {
	if s.msg == nil {
		return dst
	}
	text := s.msg.String()
	part := map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
	if s.msgPart == "refusal" {
		part = map[string]any{"type": "refusal", "refusal": text}
		dst = s.emit(dst, "response.refusal.done", map[string]any{"item_id": s.msgItem, "output_index": s.msgIdx, "content_index": 0, "refusal": text})
	} else {
		dst = s.emit(dst, "response.output_text.done", map[string]any{"item_id": s.msgItem, "output_index": s.msgIdx, "content_index": 0, "text": text})
	}
	dst = s.emit(dst, "response.content_part.done", map[string]any{"item_id": s.msgItem, "output_index": s.msgIdx, "content_index": 0, "part": part})
	status := "completed"
	if s.done && len(s.order) == 0 {
		status, _ = incompleteFor(s.finish) // the last item: cut with the response
	}
	item := map[string]any{"type": "message", "id": s.msgItem, "status": status, "role": "assistant", "content": []any{part}}
	dst = s.emit(dst, "response.output_item.done", map[string]any{"output_index": s.msgIdx, "item": item})
	s.output(s.msgIdx, item)
	s.msg = nil
	return dst
}

// output keeps a finished item at its output index.
func (s *ResponsesStream) output(idx int, item any) {
	for len(s.outputs) <= idx {
		s.outputs = append(s.outputs, nil)
	}
	s.outputs[idx] = item
}

// complete closes every open item and sends response.completed.
func (s *ResponsesStream) complete(dst []byte) []byte {
	s.done = true
	status, incomplete := incompleteFor(s.finish)
	dst = s.closeMessage(dst)
	for i, c := range s.order {
		dst = s.emit(dst, "response.function_call_arguments.done", map[string]any{"item_id": c.itemID, "output_index": c.idx, "arguments": c.args.String()})
		st := "completed"
		if i == len(s.order)-1 {
			st = status // the last item is cut with the response (a call's arguments mid-JSON)
		}
		item := s.callItem(c, st)
		dst = s.emit(dst, "response.output_item.done", map[string]any{"output_index": c.idx, "item": item})
		s.output(c.idx, item)
	}
	out := s.outputs
	if out == nil {
		out = []any{}
	}
	r := s.response(status, out, incomplete)
	if s.usageOK {
		r["usage"] = map[string]any{"input_tokens": s.usage[0], "output_tokens": s.usage[1], "total_tokens": s.usage[0] + s.usage[1],
			"input_tokens_details": map[string]int64{"cached_tokens": s.usage[2]}, "output_tokens_details": map[string]int64{"reasoning_tokens": s.usage[3]}}
	}
	name := "response.completed"
	if status == "incomplete" {
		name = "response.incomplete"
	}
	return s.emit(dst, name, map[string]any{"response": s.object(r)})
}

func (s *ResponsesStream) response(status string, output []any, incomplete any) map[string]any {
	return map[string]any{"id": s.id, "object": "response", "created_at": s.created, "status": status, "model": s.model,
		"output": output, "error": nil, "incomplete_details": incomplete}
}

// object is a response object as the events carry it, with what it
// repeats of the request.
func (s *ResponsesStream) object(r map[string]any) json.RawMessage {
	b, _ := json.Marshal(r) // strings, numbers and maps of them
	return spliceEcho(b, s.echo)
}

// delta appends a delta event, the stream's most frequent, built by
// appends in the field order encoding/json gives emit's events.
func (s *ResponsesStream) delta(dst []byte, typ, itemID string, idx int, content bool, delta string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: {"...)
	if content {
		dst = append(dst, `"content_index":0,`...)
	}
	dst = append(dst, `"delta":`...)
	dst = jsonw.AppendString(dst, delta)
	dst = append(dst, `,"item_id":`...)
	dst = jsonw.AppendString(dst, itemID)
	dst = append(dst, `,"output_index":`...)
	dst = strconv.AppendInt(dst, int64(idx), 10)
	dst = append(dst, `,"sequence_number":`...)
	dst = strconv.AppendInt(dst, int64(s.seq), 10)
	s.seq++
	dst = append(dst, `,"type":"`...)
	dst = append(dst, typ...)
	return append(dst, "\"}\n\n"...)
}

// emit appends one typed event: "event: <type>\ndata: {type, sequence_number, …}\n\n".
func (s *ResponsesStream) emit(dst []byte, typ string, fields map[string]any) []byte {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	b, _ := json.Marshal(fields)
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, '\n')
	return frame(dst, b)
}
