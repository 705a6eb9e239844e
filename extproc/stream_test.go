package extproc

import (
	"bytes"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// streamThrough feeds chunks to a filter following a stream, the last
// one with end_of_stream, and returns what the client receives.
func streamThrough(p phases, chunks ...string) string {
	var out bytes.Buffer
	for i, c := range chunks {
		r := p.responseBody(&extprocv3.HttpBody{Body: []byte(c), EndOfStream: i == len(chunks)-1})
		if m := r.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
			out.Write(m.GetBody())
		} else {
			out.WriteString(c)
		}
	}
	return out.String()
}

func edgeStream(anthropic bool) *edge {
	p := &edge{filter: filter{log: zap.NewNop(), id: "test", served: &catalog.Model{ID: "m"}, stream: &streamState{checkEnd: true}}}
	if anthropic {
		p.stream.conv = translate.NewAnthropicStream(false)
	}
	return p
}

const (
	oaiChunk  = `data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\n"
	oaiFinish = `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	antStart  = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	antDelta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"
	antEnd   = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
)

// TestSecurityTruncatedStreamEndsWithError (issue 11, finding 7): a stream
// that stops before its end, in either wire format, reaches the client as
// well-formed SSE whose last event is the stream_incomplete error; a
// complete stream gets no such event.
func TestSecurityTruncatedStreamEndsWithError(t *testing.T) {
	cases := map[string]struct {
		anthropic  bool
		chunks     []string
		incomplete bool
		lastData   string // when complete
	}{
		"openai complete":                      {false, []string{oaiChunk, oaiFinish + "data: [DONE]\n\n"}, false, "[DONE]"},
		"openai cut after a chunk":             {false, []string{oaiChunk, ""}, true, ""},
		"openai cut after a chunk, same frame": {false, []string{oaiChunk}, true, ""},
		"openai cut inside an event":           {false, []string{oaiChunk, `data: {"choices":[{"ind`}, true, ""},
		"openai [DONE] without its blank line": {false, []string{oaiChunk, "data: [DONE]"}, false, "[DONE]"},
		"openai provider error event":          {false, []string{oaiChunk, `data: {"error":{"message":"overloaded"}}` + "\n\n"}, false, `{"error":{"message":"overloaded"}}`},
		// Ended cleanly after its finish_reason, without [DONE] (older TGI,
		// llama.cpp servers): whole. Not when a choice is still open, or
		// content followed the finish (the red-team probe).
		"openai finished without [DONE]":          {false, []string{oaiChunk, oaiFinish, ""}, false, `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`},
		"openai one of two choices finished":      {false, []string{oaiChunk, `data: {"choices":[{"index":1,"delta":{"content":"Wor"}}]}` + "\n\n", oaiFinish, ""}, true, ""},
		"openai content after a finish":           {false, []string{oaiFinish, oaiChunk, ""}, true, ""},
		"anthropic complete":                      {true, []string{antStart, antDelta, antEnd}, false, "[DONE]"},
		"anthropic cut after a delta":             {true, []string{antStart, antDelta, ""}, true, ""},
		"anthropic cut after a delta, same frame": {true, []string{antStart + antDelta}, true, ""},
		"anthropic cut inside an event":           {true, []string{antStart, antDelta + "event: content_block_delta\ndata: {\"type\":\"content_bl"}, true, ""},
		"anthropic cut after message_delta":       {true, []string{antStart, antDelta + strings.Split(antEnd, "event: message_stop")[0]}, true, ""},
		"anthropic provider error event": {true, []string{antStart, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"},
			false, `{"error":{"message":"busy","type":"server_error","code":"overloaded_error","param":null}}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := streamThrough(edgeStream(tc.anthropic), tc.chunks...)
			if !strings.HasSuffix(got, "\n\n") {
				t.Fatalf("the stream does not end with a complete event: %q", got)
			}
			var f translate.Framer
			evs := f.Feed([]byte(got), nil)
			if f.Pending() != 0 || len(evs) == 0 {
				t.Fatalf("not well-formed SSE: %q", got)
			}
			last := string(evs[len(evs)-1].Data)
			errs := strings.Count(got, "stream_incomplete")
			switch {
			case tc.incomplete && (last != strings.TrimSuffix(strings.TrimPrefix(string(incompleteEvent), "data: "), "\n\n") || errs != 1):
				t.Errorf("a cut stream does not end with the stream_incomplete error event:\n%s", got)
			case !tc.incomplete && (errs != 0 || last != tc.lastData):
				t.Errorf("last event %q, want %q (%d stream_incomplete events):\n%s", last, tc.lastData, errs, got)
			}
			for _, ev := range evs {
				if d := string(ev.Data); d != "[DONE]" && !strings.HasPrefix(d, "{") {
					t.Errorf("the client gets a malformed event %q", d)
				}
			}
		})
	}
}

// TestTruncatedAnthropicStreamThroughEgress: with failover the egress filter
// translates and the edge filter ends the stream.
func TestTruncatedAnthropicStreamThroughEgress(t *testing.T) {
	g := &egress{filter: filter{log: zap.NewNop(), id: "test",
		stream: &streamState{conv: translate.NewAnthropicStream(true)}}, provider: "claude"}
	translated := streamThrough(g, antStart, antDelta, "")
	if strings.Contains(translated, "stream_incomplete") {
		t.Errorf("the egress filter ended the stream itself: %s", translated)
	}
	got := streamThrough(edgeStream(false), translated)
	if !strings.HasSuffix(got, string(incompleteEvent)) || !strings.Contains(got, `"Hel"`) {
		t.Errorf("edge output:\n%s", got)
	}
}

// TestStreamSplitEvents: however the provider's bytes are cut into chunks,
// the client gets exactly the stream the provider sent. An event held back
// at the end of one chunk goes out with the next one, never lost.
func TestStreamSplitEvents(t *testing.T) {
	in := oaiChunk + oaiChunk + oaiFinish + "data: [DONE]\n\n"
	for cut := 1; cut < len(in); cut++ {
		for _, step := range []int{cut, 7} {
			var chunks []string
			for i := 0; i < len(in); i += step {
				chunks = append(chunks, in[i:min(len(in), i+step)])
			}
			if got := streamThrough(edgeStream(false), chunks...); got != in {
				t.Fatalf("chunks of %d bytes: the client gets\n%q\nnot\n%q", step, got, in)
			}
		}
	}
}

// FuzzStreamSplit: what the client gets of an OpenAI stream does not depend
// on how the provider's bytes were cut into chunks.
func FuzzStreamSplit(f *testing.F) {
	for _, s := range []string{oaiChunk + oaiFinish + "data: [DONE]\n\n", oaiChunk + `data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}` + "\n\n", oaiChunk + `data: {"choices":[{"ind`, "data: [DONE]"} {
		f.Add([]byte(s), uint8(5), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8, hideUsage bool) {
		var parts []string
		step := int(split%32) + 1
		for i := 0; i < len(in); i += step {
			parts = append(parts, string(in[i:min(len(in), i+step)]))
		}
		if len(parts) == 0 {
			return
		}
		whole, split1 := edgeStream(false), edgeStream(false)
		whole.stream.hideUsage, split1.stream.hideUsage = hideUsage, hideUsage
		if a, b := streamThrough(whole, string(in)), streamThrough(split1, parts...); a != b {
			t.Fatalf("in one chunk:\n%q\nin chunks of %d:\n%q", a, step, b)
		}
	})
}

// TestStreamPastTheModelIsCut: a stream stellwerk counts past what its
// model can write (outputCap) ends there with an error event, in the
// client's API's shape, and what the provider sends on is dropped; its
// charge is at most the output held (the hostile-upstream probe: an endless
// stream without usage was charged 403 EUR under a 5 EUR budget).
func TestStreamPastTheModelIsCut(t *testing.T) {
	chunk := `data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("word ", 200) + `"}}]}` + "\n\n"
	for name, tc := range map[string]struct {
		endEvent []byte
		want     string
	}{
		"chat":     {nil, `"code":"provider_bad_response"`},
		"messages": {incompleteMessagesEvent, `"type":"api_error"`},
	} {
		t.Run(name, func(t *testing.T) {
			st := &streamState{checkEnd: true, maxOut: 1000, endEvent: tc.endEvent}
			var out strings.Builder
			ends := ""
			for range 100 {
				r, end := st.follow(&extprocv3.HttpBody{Body: []byte(chunk)})
				ends += end
				if r.GetImmediateResponse() != nil { // Envoy resets the stream
					continue
				}
				if m := r.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
					out.Write(m.GetBody())
				} else {
					out.WriteString(chunk)
				}
			}
			if ends != "overlong" || !st.cut {
				t.Fatalf("ends %q, want one overlong", ends)
			}
			if !strings.HasSuffix(out.String(), "\n\n") || !strings.Contains(out.String(), tc.want) || out.Len() > 8*len(chunk) {
				t.Fatalf("client got %d bytes, ending %q", out.Len(), out.String()[max(0, out.Len()-300):])
			}
		})
	}
}

// TestStreamPastTheModelIsCutWithinAChunk: Envoy passes on up to a
// megabyte at once; the events after the one past the bound are dropped.
func TestStreamPastTheModelIsCutWithinAChunk(t *testing.T) {
	event := `data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("word ", 200) + `"}}]}` + "\n\n"
	st := &streamState{checkEnd: true, maxOut: 1000}
	r, end := st.follow(&extprocv3.HttpBody{Body: []byte(strings.Repeat(event, 1000))})
	out := r.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if end != "overlong" || len(out) > 8*len(event) || !strings.HasSuffix(string(out), string(overlongEvent)) {
		t.Fatalf("%s, %d bytes", end, len(out))
	}
}

// TestStreamUsageTwice: a chunk with two usage members is not believed:
// stellwerk read the first, the SDKs the last (the hostile-upstream probe).
func TestStreamUsageTwice(t *testing.T) {
	st := &streamState{}
	st.openaiEvent([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	if st.dupUsage || st.usage == nil {
		t.Fatalf("one usage: dup %v, usage %v", st.dupUsage, st.usage)
	}
	st.openaiEvent([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1},"usage":{"prompt_tokens":10000,"completion_tokens":10000}}`))
	if !st.dupUsage {
		t.Fatal("two usage members read as one")
	}
}
