package extproc

import (
	"bytes"
	"strings"
	"time"
	"unsafe"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// streamState follows one streamed (SSE) answer: it forwards complete
// events only, so an event can be dropped whole, reads the usage the
// provider reports, and counts what was streamed to estimate usage when the
// provider reports none.
type streamState struct {
	framer    translate.Framer
	events    []translate.Event
	hideUsage bool // the client did not ask for the usage chunk
	usage     *usage
	cached    int // prompt tokens the provider served from its cache
	// cacheWrite and cacheWrite1h are the prompt tokens it wrote to its
	// cache for five minutes and for an hour (Anthropic).
	cacheWrite, cacheWrite1h int
	outTokens                int // estimated from streamed content
	// searches are the web searches the provider's usage counted (Anthropic's
	// server_tool_use), searchBlocks those the stream showed starting.
	searches, searchBlocks int
	finished               bool
	// conv translates the provider's events for the client: Anthropic
	// events into OpenAI chunks, or chat chunks into the Responses API's
	// events; nil passes them through.
	conv translate.StreamConverter
	// checkEnd makes a stream that ends without [DONE] or an error event end
	// with an error event: a provider that broke off must not look like a
	// complete answer to the client.
	checkEnd bool
	sawEnd   bool
	// sawFinish: every choice of a chat stream ended with a finish_reason
	// after its last content, so its answer is whole even if no [DONE]
	// follows (older TGI, llama.cpp servers end there: each such stream
	// was stream_incomplete and a provider failure, the provider-wire
	// probe). choicesOpen and choicesDone are the choice indexes (below
	// 64) that streamed, and that so ended; a stream with more is never
	// taken for whole without [DONE].
	sawFinish                bool
	choicesOpen, choicesDone uint64
	choicesWide              bool
	// failed: the provider ended the stream with an error event, after
	// the answer had started: interrupted, not served.
	failed bool
	// endEvent is what a stream that broke off ends with (nil:
	// incompleteEvent, the OpenAI SDKs' error).
	endEvent []byte
	// messages: the events are Anthropic's, passed through and read for
	// usage (a Messages API request served natively, or translated by the
	// egress listener).
	messages bool
	// native reads a native Responses API stream passed through: its text
	// deltas, and the usage and end of response.completed (nil: not one).
	native *translate.ResponsesFollower
	// answer collects the streamed text for an audit record with content
	// (nil: not kept), up to maxContentBytes.
	answer *strings.Builder
	// scrub takes a credential stellwerk sent out of a provider's error
	// event (the edge; nil: none to take out).
	scrub scrubber
	// maxOut is the most output (outTokens) the stream may have: the
	// served model's outputCap (0: no bound, an egress stream's). A stream
	// past it is no answer of the model's: it is ended with an error event
	// (cut) and the rest of it dropped. A provider streaming without end
	// sent 1 GB to the client in 15 s (the hostile-upstream probe).
	maxOut int
	cut    bool
	// dupUsage: a chunk had two usage members; stellwerk read the first,
	// the Python SDK the last. Its usage is not believed (the stream's own
	// count is charged, bounded).
	dupUsage bool
}

// scrubber replaces in s the credentials a request was sent with (edge).
type scrubber interface {
	scrubText(s string) (string, bool)
}

// maxContentBytes bounds the answer text an audit record keeps.
const maxContentBytes = 256 << 10

// finisher is a translation of chat chunks that tells whether a
// finish_reason came (translate.MessagesStream, ResponsesStream).
type finisher interface{ Finished() bool }

// doneData is the data of OpenAI's last event.
var doneData = []byte("[DONE]")

// incompleteEvent is what the OpenAI SDKs raise as an APIError.
var incompleteEvent = []byte(`data: {"error":{"message":"the provider's stream ended before the answer was complete","type":"server_error","code":"stream_incomplete","param":null}}` + "\n\n")

// incompleteMessagesEvent is incompleteEvent in Anthropic's shape, what the
// anthropic SDKs raise as an APIStatusError.
var incompleteMessagesEvent = translate.AppendMessagesError(nil, "api_error", "the provider's stream ended before the answer was complete")

// overlongEvent ends a stream that went past what its model can write
// (streamState.maxOut); overlongMessagesEvent in Anthropic's shape.
const overlong = "the provider's stream went on past the output the model can write; it was ended"

var (
	overlongEvent         = []byte(`data: {"error":{"message":"` + overlong + `","type":"server_error","code":"provider_bad_response","param":null}}` + "\n\n")
	overlongMessagesEvent = translate.AppendMessagesError(nil, "api_error", overlong)
)

// past reports whether the stream's output is past its bound.
func (st *streamState) past() bool { return st.maxOut > 0 && st.outTokens > st.maxOut }

// overran reports whether the stream has just passed its bound: it is then
// cut, and out (its last events) ends with the error event.
func (st *streamState) overran(out []byte) ([]byte, bool) {
	if !st.past() {
		return out, false
	}
	st.cut = true
	if st.endEvent != nil { // the Messages API's shape
		return append(out, overlongMessagesEvent...), true
	}
	return append(out, overlongEvent...), true
}

// streamBody handles one chunk of a streamed answer. At the stream's end
// the edge records its usage; an egress stream leaves that to the edge.
func (p *edge) streamBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if p.firstChunk.IsZero() {
		p.firstChunk = time.Now()
	}
	resp, end := p.stream.follow(b)
	if end != "" {
		p.endStream(end)
	}
	return resp
}

// follow handles one chunk of a streamed answer. Each event's data is read
// once, in place; the chunk is answered with CONTINUE, without a copy,
// unless an event is held back, dropped or added. end is how the stream
// ended ("complete" or "incomplete"), after its last chunk only.
func (st *streamState) follow(b *extprocv3.HttpBody) (resp *extprocv3.ProcessingResponse, end string) {
	if st.cut {
		// Ended at its bound, with its error event: an answer now makes
		// Envoy reset the stream, which closes the client's connection and
		// the provider's (a client that does not read the error event
		// would otherwise wait, and the provider write, until the
		// request's timeout).
		return resetStream, ""
	}
	// Bytes held back from an earlier chunk go out with this one: the
	// chunk as Envoy has it is then not what the client must get.
	held := st.framer.Pending() > 0
	st.events = st.framer.Feed(b.Body, st.events[:0])
	terminated := len(st.events) // the events that ended with a blank line
	// Part of this chunk is held back, or, at the end, was left over: the
	// chunk then goes out as its events say, the same whether the stream
	// came in one chunk or many (a whole stream kept white space after its
	// last event that a split one dropped; FuzzStreamSplit).
	changed := held || st.framer.Pending() > 0
	if b.EndOfStream {
		st.events = st.framer.Flush(st.events)
	}
	if st.scrub != nil {
		for i := range st.events {
			if st.scrubEvent(&st.events[i]) {
				changed = true
			}
		}
	}
	if st.conv != nil {
		out := make([]byte, 0, 2*len(b.Body)) // OpenAI chunks repeat id and model: larger than the events
		for i := range st.events {
			st.failed = st.failed || providerError(&st.events[i])
			out = st.conv.Event(st.events[i], out)
			if st.answer != nil && st.answer.Len() < maxContentBytes {
				st.answer.WriteString(st.conv.TextDelta())
			}
			st.outTokens += classify.EstimateTokens(st.conv.TextDelta())
			if o, ok := st.conv.(translate.OutputCounter); ok {
				st.outTokens += classify.EstimateTokens(o.OtherOutput())
			}
			if st.past() {
				break // the events after the one past the bound are dropped
			}
		}
		if pt, ct, ok := st.conv.Usage(); ok {
			st.usage = &usage{PromptTokens: pt, CompletionTokens: ct}
			st.cached = st.conv.Cached()
			if cw, ok := st.conv.(translate.CacheWriter); ok {
				st.cacheWrite, st.cacheWrite1h = cw.CacheWrites()
			}
		}
		st.sawEnd = st.sawEnd || st.conv.Ended()
		if f, ok := st.conv.(finisher); ok {
			st.sawFinish = f.Finished()
		}
		if out, cut := st.overran(out); cut {
			return streamChunk(out), "overlong"
		}
		if b.EndOfStream {
			out, end = st.end(out)
		}
		return streamChunk(out), end
	}
	for i := range st.events {
		if st.past() {
			// Envoy passes on what it has at once, up to a megabyte: the
			// events after the one past the bound are dropped.
			st.events = st.events[:i]
			break
		}
		ev := &st.events[i]
		if i >= terminated {
			// The stream ended inside this event. A client drops an event
			// without its blank line: end a complete one, drop a cut one.
			changed = true
			if string(ev.Data) != "[DONE]" && !gjson.ValidBytes(ev.Data) {
				ev.Raw = nil
				continue
			}
			ev.Raw = bytes.TrimRight(ev.Raw, "\r\n")
		}
		if st.messages {
			st.messagesEvent(ev.Data)
			continue
		}
		if st.native != nil {
			st.nativeEvent(*ev)
			continue
		}
		if st.openaiEvent(ev.Data) {
			ev.Raw = nil // the usage-only chunk the client did not ask for
			changed = true
		}
	}
	over := st.past()
	if !changed && !b.EndOfStream && !over {
		return continueResponseBody(), ""
	}
	out := make([]byte, 0, len(b.Body)+len(incompleteEvent)+len(st.endEvent))
	for i := range st.events {
		if raw := st.events[i].Raw; raw != nil {
			out = append(out, raw...)
			if i >= terminated {
				out = append(out, "\n\n"...)
			}
		}
	}
	if over {
		out, _ = st.overran(out)
		return streamChunk(out), "overlong"
	}
	if b.EndOfStream {
		n := len(out)
		out, end = st.end(out)
		changed = changed || len(out) != n
	}
	if !changed {
		return continueResponseBody(), end
	}
	return streamChunk(out), end
}

// scrubEvent takes the credential stellwerk sent out of an event (a
// provider, or a gateway before it, that echoes its request in an error of
// whatever shape, or in its content); whole events only: the framer holds
// an event until its blank line. Every event is looked at, in place: a
// search for each credential of the plan, no copy unless one is there.
func (st *streamState) scrubEvent(ev *translate.Event) bool {
	if len(ev.Raw) == 0 {
		return false
	}
	raw, held := st.scrub.scrubText(unsafe.String(&ev.Raw[0], len(ev.Raw)))
	if !held {
		return false
	}
	data := ""
	if len(ev.Data) > 0 {
		data, _ = st.scrub.scrubText(unsafe.String(&ev.Data[0], len(ev.Data)))
	}
	ev.Raw, ev.Data = []byte(raw), []byte(data)
	return true
}

// openaiEvent reads one OpenAI stream event: its end ([DONE] or an error),
// its usage and its streamed content, in one pass over the JSON (read in
// place, not copied). drop reports the usage-only chunk of a client that did
// not ask for usage.
func (st *streamState) openaiEvent(data []byte) (drop bool) {
	if string(data) == "[DONE]" {
		st.sawEnd = true
		return false
	}
	if len(data) == 0 || data[0] != '{' || !gjson.ValidBytes(data) {
		return false
	}
	var errv, u, choices gjson.Result
	gjson.Parse(unsafe.String(&data[0], len(data))).ForEach(func(k, v gjson.Result) bool {
		var f *gjson.Result
		switch k.Str {
		case "error":
			f = &errv
		case "usage":
			f = &u
		case "choices":
			f = &choices
		default:
			return true
		}
		if !f.Exists() { // the first of duplicate keys, as gjson.Get reads
			*f = v
		} else if f == &u {
			st.dupUsage = true // the SDKs read the last: not believed (finishStream)
		}
		return true
	})
	if errv.Exists() {
		st.sawEnd, st.failed = true, true
	}
	if u.IsObject() {
		pt, ct := u.Get("prompt_tokens"), u.Get("completion_tokens")
		if pt.Type == gjson.Number && ct.Type == gjson.Number {
			st.usage = &usage{PromptTokens: translate.Tokens(pt), CompletionTokens: translate.Tokens(ct)}
			st.cached = cachedTokens(u)
			st.cacheWrite, st.cacheWrite1h = translate.CacheWrites(u) // chunks translated from Anthropic's (egress)
		}
		// no choices: absent, null or [] (as gjson's Array() counts them)
		drop = st.hideUsage && (choices.Type == gjson.Null || choices.IsArray() && !choices.Get("0").Exists())
	}
	if choices.IsArray() {
		// The first choice's text is the answer kept; what every choice
		// streams is counted (readChoices).
		if text := st.readChoices(choices); st.answer != nil && st.answer.Len() < maxContentBytes {
			st.answer.WriteString(text)
		}
	}
	return drop
}

// countDelta adds to the estimate of the output what a choice's delta
// streams: its content, reasoning, refusal and tool-call arguments (a
// provider bills them all; only the first choice's content was counted,
// so a tool call or a reasoning stream without usage was charged nothing:
// the FinOps probe). content is its content, for the answer kept.
func (st *streamState) countDelta(delta gjson.Result) (content string) {
	delta.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "content":
			content = translate.AnswerText(v) // a string, or parts (magistral)
			st.outTokens += classify.EstimateTokens(content)
		case "reasoning_content", "reasoning", "refusal":
			if v.Type == gjson.String {
				st.outTokens += classify.EstimateTokens(v.Str)
			}
		case "tool_calls":
			v.ForEach(func(_, call gjson.Result) bool {
				if a := call.Get("function.arguments"); a.Type == gjson.String {
					st.outTokens += classify.EstimateTokens(a.Str)
				}
				return true
			})
		}
		return true
	})
	return content
}

// readChoices reads a chat chunk's choices in one pass: the first
// choice's text (delta.content, or a legacy completion's text), what each
// choice streams for the output's estimate (countDelta), and which
// choices streamed and which ended with a finish_reason. A choice's chunk
// without one (more content after a finish, a choice still streaming)
// leaves it open: a finish_reason on one choice of several, or before
// more content, was taken for the whole answer's end (the red-team
// probe).
func (st *streamState) readChoices(choices gjson.Result) (text string) {
	first := true
	choices.ForEach(func(_, ch gjson.Result) bool {
		var i int64
		var fin bool
		var content string
		ch.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "index":
				i = v.Int()
			case "finish_reason":
				fin = v.Type == gjson.String && v.Str != ""
			case "delta":
				content = st.countDelta(v)
			case "text": // a legacy completion's
				if v.Type == gjson.String {
					content = v.Str
					st.outTokens += classify.EstimateTokens(v.Str)
				}
			}
			return true
		})
		if first {
			text, first = content, false
		}
		if i < 0 || i >= 64 {
			st.choicesWide = true
			return true
		}
		bit := uint64(1) << i
		st.choicesOpen |= bit
		if fin {
			st.choicesDone |= bit
		} else {
			st.choicesDone &^= bit
		}
		return true
	})
	st.sawFinish = !st.choicesWide && st.choicesOpen != 0 && st.choicesDone == st.choicesOpen
	return text
}

// messagesEvent reads one Anthropic stream event, in place: its end
// (message_stop or an error), its usage (message_start's input,
// message_delta's output) and its streamed text.
// nativeEvent reads one event of a native Responses API stream in place.
func (st *streamState) nativeEvent(ev translate.Event) {
	f := st.native
	f.Read(ev)
	if t := f.TextDelta(); t != "" {
		st.outTokens += classify.EstimateTokens(t)
		if st.answer != nil && st.answer.Len() < maxContentBytes {
			st.answer.WriteString(t)
		}
	}
	if pt, ct, ok := f.Usage(); ok && st.usage == nil {
		st.usage = &usage{PromptTokens: pt, CompletionTokens: ct}
		st.cached = f.Cached()
	}
	st.sawEnd = st.sawEnd || f.Ended()
	st.failed = st.failed || providerError(&ev)
}

// providerError reports whether a provider's event is its error: an
// Anthropic or Responses error event, a failed response, an OpenAI chunk
// that is an error object.
func providerError(ev *translate.Event) bool {
	switch ev.Name {
	case "error", "response.failed":
		return true
	case "":
		return len(ev.Data) > 9 && bytes.HasPrefix(ev.Data, []byte(`{"error"`)) && gjson.GetBytes(ev.Data, "error").IsObject()
	}
	return false
}

func (st *streamState) messagesEvent(data []byte) {
	if len(data) == 0 || data[0] != '{' || !gjson.ValidBytes(data) {
		return
	}
	ev := gjson.Parse(unsafe.String(&data[0], len(data)))
	switch ev.Get("type").Str {
	case "message_start":
		u := ev.Get("message.usage")
		st.searches = max(st.searches, translate.Tokens(u.Get("server_tool_use.web_search_requests")))
		if in := u.Get("input_tokens"); in.Type == gjson.Number {
			st.cached = translate.Tokens(u.Get("cache_read_input_tokens"))
			st.cacheWrite, st.cacheWrite1h = translate.CacheWrites(u)
			st.usage = &usage{PromptTokens: translate.Tokens(in) + st.cached + st.cacheWrite + st.cacheWrite1h,
				CompletionTokens: translate.Tokens(u.Get("output_tokens"))}
		}
	case "message_delta":
		u := ev.Get("usage")
		st.searches = max(st.searches, translate.Tokens(u.Get("server_tool_use.web_search_requests")))
		if out := u.Get("output_tokens"); out.Type == gjson.Number {
			if st.usage == nil {
				st.usage = &usage{}
			}
			st.usage.CompletionTokens = translate.Tokens(out)
			if in := u.Get("input_tokens"); in.Type == gjson.Number && in.Num > 0 {
				st.cached = translate.Tokens(u.Get("cache_read_input_tokens"))
				st.cacheWrite, st.cacheWrite1h = translate.CacheWrites(u)
				st.usage.PromptTokens = translate.Tokens(in) + st.cached + st.cacheWrite + st.cacheWrite1h
			}
		}
	case "content_block_delta":
		// Text, a tool's input and extended thinking are all billed as
		// output: a stream cut while the model thought was charged the 1
		// output token message_start says (the reasoning probe).
		d := ev.Get("delta")
		t := d.Get("text")
		if t.Type != gjson.String {
			t = d.Get("partial_json")
		}
		if t.Type != gjson.String {
			t = d.Get("thinking")
		}
		if t.Type == gjson.String {
			st.outTokens += classify.EstimateTokens(t.Str)
			if st.answer != nil && st.answer.Len() < maxContentBytes && d.Get("type").Str == "text_delta" {
				st.answer.WriteString(t.Str)
			}
		}
	case "content_block_start":
		// A search the provider's web search tool runs: counted as it
		// starts, for a stream cut before the usage that counts them.
		if b := ev.Get("content_block"); b.Get("type").Str == "server_tool_use" && b.Get("name").Str == "web_search" {
			st.searchBlocks++
		}
	case "message_stop":
		st.sawEnd = true
	case "error":
		st.sawEnd, st.failed = true, true
	}
}

// end ends a stream whose last chunk out is: one that ended without
// [DONE] or an error event gets an error event, so that a provider that
// broke off never looks like a complete answer, whatever its wire format.
// (An egress stream leaves that to the edge, which sees every answer.)
func (st *streamState) end(out []byte) ([]byte, string) {
	if st.failed {
		return out, "failed" // the client got the provider's error event
	}
	if !st.sawEnd && st.sawFinish {
		// Ended cleanly after its finish_reason, without [DONE]: whole.
		// A translation is closed as [DONE] would close it (an egress
		// attempt's too: the edge reads the Messages events it made).
		if st.conv != nil {
			out = st.conv.Event(translate.Event{Data: doneData}, out)
		}
		return out, "complete"
	}
	if st.checkEnd && !st.sawEnd {
		if st.endEvent != nil {
			return append(out, st.endEvent...), "incomplete"
		}
		return append(out, incompleteEvent...), "incomplete"
	}
	return out, "complete"
}

// endStream records how a stream ended.
func (p *edge) endStream(how string) {
	if how == "incomplete" {
		served := ""
		if p.served != nil {
			served = p.served.ID
		}
		p.log.Warn("stream ended without [DONE]", zap.String("decision_id", p.id), zap.String("model", served))
	}
	if how == "overlong" {
		p.log.Warn("stream ended: it went on past the output the model can write", zap.String("decision_id", p.id),
			zap.String("model", p.served.ID), zap.Int("max_output_tokens_counted", p.stream.maxOut))
	}
	p.finishStream(how)
}

// resetStream is an immediate answer to a chunk of a stream whose headers
// the client has: Envoy cannot send it, and resets the stream instead.
var resetStream = immediateJSON(502, []byte(`{"error":{"message":"`+overlong+`","type":"server_error","code":"provider_bad_response","param":null}}`), "")

// streamChunk replaces one chunk of a streamed answer (no content-length:
// the stream's length is not known).
func streamChunk(out []byte) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
		}},
	}}
}

// streamHealth tells the served provider's health how its stream ended,
// with failover on (without it no attempt counts toward health, as in
// recordAttempt): one its provider broke off after it started (its error
// event, an end without the stream's end) is a failure of the provider's,
// as one before the first byte is, though no other provider can take the
// answer over (the chaos probe: five streams in a row ending in
// "overloaded" left the provider healthy and each attempt "served"); a
// stream that ended well, or that the client left, is its success. Such a
// stream's attempt is failed in the record either way.
func (p *edge) streamHealth(how string) {
	m := p.served
	if m == nil || p.routedAt.IsZero() {
		return
	}
	broken := how == "failed" || how == "incomplete" || how == "overlong"
	tg := attemptTarget(p.state, m, p.workspace)
	if !broken {
		if p.plan != nil {
			p.state.Router.Health.Succeeded(tg)
		}
		return
	}
	reason := "the provider's error event after the stream started"
	switch how {
	case "incomplete":
		reason = "the stream ended without its end"
	case "overlong":
		reason = "the stream went on past the output the model can write"
	}
	if p.plan != nil && p.state.Router.Health.Failed(tg, reason, 0) {
		p.log.Info("provider cooling down", zap.String("provider", m.Provider.Name), zap.String("reason", reason))
	}
	if n := len(p.attempts); n > 0 && p.attempts[n-1].Outcome == "served" {
		p.attempts[n-1].Outcome, p.attempts[n-1].Reason = "failed", reason
	}
	p.streamBroken = reason
}

// finishStream records the usage of a streamed answer once: the provider's
// if it sent one, an estimate otherwise (never zero for an answer that
// produced text).
func (p *edge) finishStream(how string) {
	st := p.stream
	if st == nil || st.finished || p.selection == nil {
		return
	}
	st.finished = true
	if how == "interrupted" && st.sawEnd {
		// The stream had ended ([DONE], message_stop, a converter's
		// end) before the client hung up, as the SDKs do once they read
		// it, ahead of the provider's end of stream.
		how = "complete"
		if st.failed {
			how = "failed"
		}
	}
	p.streamEnd = how
	p.streamHealth(how)
	if p.served.Provider.WireFormat != "anthropic" {
		st.cacheWrite, st.cacheWrite1h = 0, 0 // only Anthropic's (translated) usage says what it wrote
	}
	searches := p.out.searches(max(st.searches, st.searchBlocks))
	prompt := meter.Usage{CachedTokens: st.cached, CacheWriteTokens: st.cacheWrite, CacheWrite1hTokens: st.cacheWrite1h, WebSearches: searches}
	if st.usage != nil {
		prompt.PromptTokens, prompt.CompletionTokens = st.usage.PromptTokens, st.usage.CompletionTokens
		if st.dupUsage {
			p.log.Warn("the provider's stream has a usage member twice; charged as a stream without usage", zap.String("decision_id", p.id))
			st.usage, prompt = nil, meter.Usage{WebSearches: searches}
		} else if !p.plausible(prompt) {
			st.usage, prompt = nil, meter.Usage{WebSearches: searches} // what was streamed is counted instead
		}
	}
	var u meter.Usage
	switch pu := st.usage; {
	case pu != nil && how == "complete" && !(pu.CompletionTokens == 0 && st.outTokens > 0),
		pu != nil && how != "complete" && pu.CompletionTokens >= st.outTokens:
		u = prompt
	default:
		// What was streamed, counted here: the provider's count is
		// missing, or (a stream cut short) not final — Anthropic's
		// message_start says 1 output token. Its prompt count (with its
		// cache reads and writes, which were charged at the full input
		// price when the client left mid-stream: the FinOps probe), when
		// it sent one, is better than the estimate.
		u = meter.Usage{PromptTokens: p.promptEstimate(), CompletionTokens: st.outTokens, WebSearches: prompt.WebSearches, Estimated: true}
		if pu != nil && pu.PromptTokens > 0 {
			u.PromptTokens, u.CachedTokens, u.CacheWriteTokens, u.CacheWrite1hTokens =
				pu.PromptTokens, prompt.CachedTokens, prompt.CacheWriteTokens, prompt.CacheWrite1hTokens
		}
	}
	m := p.served
	var c meter.Charge
	if u.Estimated {
		c = p.estimateCharge(u) // stellwerk's count: at most what was held
	} else {
		c = meter.Meter(m, p.baseline(), u)
	}
	u = c.Usage
	// At the routed line's level: a policy that lowers a workspace's lines
	// lowers both.
	if ce := p.log.Check(p.logLevel, "stream finished"); ce != nil {
		ce.Write(zap.String("decision_id", p.id), zap.String("model", m.ID), zap.String("end", how),
			zap.Int("prompt_tokens", u.PromptTokens), zap.Int("completion_tokens", u.CompletionTokens),
			zap.Bool("usage_estimated", u.Estimated), zap.Float64("cost_eur", audit.Money(c.EUR))) // as the record has it
	}
	status := spend.Served
	if how != "complete" { // the client went away, or the provider broke off
		status = spend.Interrupted
	}
	p.settle(c, status)
}
