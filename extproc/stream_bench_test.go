package extproc

import (
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/stellwerk/stellwerk/internal/translate"
)

// BenchmarkStreamBody is one chunk of a streamed answer through the edge
// filter: 16 content events, as a provider batches them under load, in each
// wire format. The OpenAI case asks for no usage and gets the usage chunk,
// which the filter reads and drops.
func BenchmarkStreamBody(b *testing.B) {
	oaiUsage := `data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}` + "\n\n"
	cases := map[string]struct {
		anthropic bool
		chunk     string
	}{
		"openai":          {false, strings.Repeat(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello wor"},"finish_reason":null}]}`+"\n\n", 16)},
		"openai_usage":    {false, strings.Repeat(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello wor"},"finish_reason":null}]}`+"\n\n", 15) + oaiUsage},
		"anthropic":       {true, strings.Repeat(antDelta, 16)},
		"anthropic_usage": {true, strings.Repeat(antDelta, 15) + "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":16}}\n\n"},
	}
	for name, tc := range cases {
		b.Run(name, func(b *testing.B) {
			p := edgeStream(tc.anthropic)
			p.stream.hideUsage = true
			if tc.anthropic {
				p.stream.conv = translate.NewAnthropicStream(false)
				p.streamBody(&extprocv3.HttpBody{Body: []byte(antStart)})
			}
			msg := &extprocv3.HttpBody{Body: []byte(tc.chunk)}
			b.SetBytes(int64(len(tc.chunk)))
			b.ReportAllocs()
			for b.Loop() {
				p.streamBody(msg)
			}
		})
	}
}

// BenchmarkStreamBodyResponses is BenchmarkStreamBody's openai chunk
// translated into the Responses API's events (one output_text.delta per
// chat chunk).
func BenchmarkStreamBodyResponses(b *testing.B) {
	chunk := strings.Repeat(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello wor"},"finish_reason":null}]}`+"\n\n", 16)
	p := edgeStream(false)
	p.stream.conv = translate.NewResponsesStream()
	p.streamBody(&extprocv3.HttpBody{Body: []byte(chunk)}) // opens the response and its message
	msg := &extprocv3.HttpBody{Body: []byte(chunk)}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		p.streamBody(msg)
	}
}

// BenchmarkStreamBodyMessages is a Messages API stream through the edge:
// the openai chunk translated into Anthropic's events (one text_delta per
// chat chunk), and Anthropic's own events passed through and read for the
// usage (served natively, or translated by the egress listener).
func BenchmarkStreamBodyMessages(b *testing.B) {
	chat := strings.Repeat(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello wor"},"finish_reason":null}]}`+"\n\n", 16)
	for name, translated := range map[string]bool{"translated": true, "native": false} {
		b.Run(name, func(b *testing.B) {
			p := edgeStream(false)
			p.stream.endEvent = incompleteMessagesEvent
			chunk := chat
			if translated {
				p.stream.conv = translate.NewMessagesStream()
				p.streamBody(&extprocv3.HttpBody{Body: []byte(chunk)}) // opens the message and its text block
			} else {
				p.stream.messages = true
				chunk = strings.Repeat(antDelta, 16)
				p.streamBody(&extprocv3.HttpBody{Body: []byte(antStart)})
			}
			msg := &extprocv3.HttpBody{Body: []byte(chunk)}
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				p.streamBody(msg)
			}
		})
	}
}

// BenchmarkStreamBodyResponsesNative is a native Responses API stream
// through the edge: 16 output_text.delta events passed through unchanged
// (CONTINUE) and read in place for the text and the usage.
func BenchmarkStreamBodyResponsesNative(b *testing.B) {
	chunk := strings.Repeat(`event: response.output_text.delta`+"\n"+`data: {"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello wor"}`+"\n\n", 16)
	p := edgeStream(false)
	p.stream.native = translate.NewResponsesFollower()
	msg := &extprocv3.HttpBody{Body: []byte(chunk)}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if r := p.streamBody(msg); r.GetResponseBody().GetResponse().GetBodyMutation() != nil {
			b.Fatal("a whole chunk of events was copied")
		}
	}
}
