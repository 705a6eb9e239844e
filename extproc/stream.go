package extproc

import (
	"bytes"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/classify"
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
	outTokens int // estimated from streamed content
	finished  bool
	// anthropic translates Anthropic events into OpenAI chunks.
	anthropic *translate.AnthropicStream
	// checkEnd makes a stream that ends without [DONE] or an error event end
	// with an error event: a provider that broke off must not look like a
	// complete answer to the client.
	checkEnd bool
	sawEnd   bool
}

// incompleteEvent is what the OpenAI SDKs raise as an APIError.
var incompleteEvent = []byte(`data: {"error":{"message":"the provider's stream ended before the answer was complete","type":"server_error","code":"stream_incomplete","param":null}}` + "\n\n")

// streamBody handles one chunk of a streamed answer.
func (p *processor) streamBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	st := p.stream
	// Bytes held back from an earlier chunk go out with this one: the
	// chunk as Envoy has it is then not what the client must get.
	held := st.framer.Pending() > 0
	st.events = st.framer.Feed(b.Body, st.events[:0])
	terminated := len(st.events) // the events that ended with a blank line
	if b.EndOfStream {
		st.events = st.framer.Flush(st.events)
	}
	changed := held || st.framer.Pending() > 0 // part of this chunk is held back
	out := make([]byte, 0, len(b.Body))
	if st.anthropic != nil {
		for i := range st.events {
			ev := &st.events[i]
			out = st.anthropic.Event(*ev, out)
			if ev.Name == "content_block_delta" {
				if t := gjson.GetBytes(ev.Data, "delta.text"); t.Type == gjson.String {
					st.outTokens += classify.EstimateTokens(t.Str)
				}
			}
		}
		if pt, ct, ok := st.anthropic.Usage(); ok {
			st.usage = &usage{PromptTokens: pt, CompletionTokens: ct}
		}
		if b.EndOfStream {
			st.sawEnd = st.anthropic.Ended()
			out = p.endStream(out)
		}
		return streamChunk(out)
	}
	for i := range st.events {
		ev := &st.events[i]
		data := ev.Data
		raw, unterminated := ev.Raw, i >= terminated
		if unterminated {
			// The stream ended inside this event. A client drops an event
			// without its blank line: end a complete one, drop a cut one.
			changed = true
			if string(data) != "[DONE]" && !gjson.ValidBytes(data) {
				continue
			}
			raw = bytes.TrimRight(raw, "\r\n")
		}
		drop := false
		if string(data) == "[DONE]" {
			st.sawEnd = true
		}
		if len(data) > 0 && data[0] == '{' && gjson.ValidBytes(data) {
			root := gjson.ParseBytes(data)
			if root.Get("error").Exists() {
				st.sawEnd = true
			}
			if u := root.Get("usage"); u.IsObject() {
				pt, ct := u.Get("prompt_tokens"), u.Get("completion_tokens")
				if pt.Type == gjson.Number && ct.Type == gjson.Number {
					st.usage = &usage{PromptTokens: int(pt.Num), CompletionTokens: int(ct.Num)}
				}
				if st.hideUsage && len(root.Get("choices").Array()) == 0 {
					drop = true // the usage-only chunk the client did not ask for
				}
			}
			if c := root.Get("choices.0.delta.content"); c.Type == gjson.String {
				st.outTokens += classify.EstimateTokens(c.Str)
			}
		}
		if drop {
			changed = true
			continue
		}
		out = append(out, raw...)
		if unterminated {
			out = append(out, "\n\n"...)
		}
	}
	if b.EndOfStream {
		n := len(out)
		out = p.endStream(out)
		changed = changed || len(out) != n
	}
	if !changed {
		return continueResponseBody()
	}
	return streamChunk(out)
}

// endStream ends a stream whose last chunk out is: one that ended without
// [DONE] or an error event gets an error event, so that a provider that
// broke off never looks like a complete answer, whatever its wire format.
// (An egress stream leaves that to the edge, which sees every answer.)
func (p *processor) endStream(out []byte) []byte {
	st := p.stream
	how := "complete"
	if st.checkEnd && !st.sawEnd {
		served := ""
		if p.served != nil {
			served = p.served.ID
		}
		p.log.Warn("stream ended without [DONE]", zap.String("decision_id", p.id), zap.String("model", served))
		out, how = append(out, incompleteEvent...), "incomplete"
	}
	p.finishStream(how)
	return out
}

// streamChunk replaces one chunk of a streamed answer (no content-length:
// the stream's length is not known).
func streamChunk(out []byte) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out}},
		}},
	}}
}

// finishStream records the usage of a streamed answer once: the provider's
// if it sent one, an estimate otherwise (never zero for an answer that
// produced text).
func (p *processor) finishStream(how string) {
	st := p.stream
	if st == nil || st.finished || p.decision == nil {
		return
	}
	st.finished = true
	u, estimated := st.usage, false
	if u == nil || (u.CompletionTokens == 0 && st.outTokens > 0) {
		u = &usage{PromptTokens: p.class.InputTokens, CompletionTokens: st.outTokens}
		estimated = true
	}
	m := p.served
	p.log.Info("stream finished", zap.String("decision_id", p.id), zap.String("model", m.ID), zap.String("end", how),
		zap.Int("prompt_tokens", u.PromptTokens), zap.Int("completion_tokens", u.CompletionTokens),
		zap.Bool("usage_estimated", estimated), zap.Float64("cost_eur", m.CostEUR(u.PromptTokens, u.CompletionTokens)))
}
