package extproc

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
)

const echoedKey = "sk-p-0123456789abcdefSECRET"

// echoEdge is an edge that decided a request for provider p, whose
// credential is echoedKey.
func echoEdge(t testing.TB, stream bool) *edge {
	t.Helper()
	st := pricedProvider(t, echoedKey)
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "decision-1"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	body := `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	}
	if r := p.handle(bodyMsg(body)); r.GetImmediateResponse() != nil {
		t.Fatalf("refused: %v", r)
	}
	return p
}

// clientGets is what the client receives for a body chunk.
func clientGets(in string, r *extprocv3.ProcessingResponse) string {
	if m := r.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
		return string(m.GetBody())
	}
	return in
}

// TestScrubEchoes: what a provider (or a gateway before it) echoes of the
// credential stellwerk sent never reaches the client: not in an error
// event of a stream, not in a JSON error larger than Envoy's buffer, which
// comes in parts (a code review found both passed as sent).
func TestScrubEchoes(t *testing.T) {
	p := echoEdge(t, true)
	p.handle(respHeadersMsg("200", "text/event-stream"))
	chunk := `data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\n" +
		`data: {"error":{"message":"upstream gateway: you sent Bearer ` + echoedKey + `","type":"server_error"}}` + "\n\n"
	if got := clientGets(chunk, p.handle(respBodyMsg(chunk, true))); strings.Contains(got, echoedKey) || !strings.Contains(got, `you sent Bearer [credential]","type":"server_error"}}`) ||
		!strings.Contains(got, `"content":"Hel"`) {
		t.Errorf("stream: %s", got)
	}

	// Error events of other shapes, and an echo in content: every event is
	// looked at (an attacker's pass found a leading space or a "type"
	// member first passed the credential).
	for _, ev := range []string{
		`data: { "error": {"message":"you sent Bearer ` + echoedKey + `"}}`,
		`data: {"type":"error","error":{"message":"you sent Bearer ` + echoedKey + `"}}`,
		`data: {"choices":[{"index":0,"delta":{"content":"your key is ` + echoedKey + `"}}]}`,
	} {
		p := echoEdge(t, true)
		p.handle(respHeadersMsg("200", "text/event-stream"))
		chunk := ev + "\n\n"
		if got := clientGets(chunk, p.handle(respBodyMsg(chunk, true))); strings.Contains(got, echoedKey) || !strings.Contains(got, "[credential]") {
			t.Errorf("event %s: %s", ev, got)
		}
	}

	p = echoEdge(t, false)
	p.handle(respHeadersMsg("400", "application/json"))
	body := `{"error":{"message":"you sent Bearer ` + echoedKey + ` and ` + strings.Repeat("x", 2<<20) + `, ` + echoedKey + `"}}`
	first, rest := body[:1<<20], body[1<<20:] // Envoy's buffer full, then the rest
	for _, part := range []struct {
		s   string
		eos bool
	}{{first, false}, {rest, true}} {
		if got := clientGets(part.s, p.handle(respBodyMsg(part.s, part.eos))); strings.Contains(got, echoedKey) || !strings.Contains(got, "[credential]") {
			t.Errorf("part of %d bytes (end %v) has the credential", len(part.s), part.eos)
		}
	}
}

// TestCompressedErrorReplaced: a provider's compressed error cannot be
// read for a credential it echoes: without failover it is replaced by
// stellwerk's own error of the same status (an attacker's pass got a gzip
// 500 echoing the key through).
func TestCompressedErrorReplaced(t *testing.T) {
	p := echoEdge(t, false)
	msg := respHeadersMsg("500", "application/json")
	h := msg.GetResponseHeaders().Headers
	h.Headers = append(h.Headers, &corev3.HeaderValue{Key: "content-encoding", RawValue: []byte("gzip")})
	r := p.handle(msg)
	if rm := r.GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders(); !slices.Contains(rm, "content-encoding") {
		t.Fatalf("content-encoding kept: %v", r)
	}
	gz := "\x1f\x8b\x08\x00compressed bytes with " + echoedKey
	got := clientGets(gz, p.handle(respBodyMsg(gz, true)))
	if strings.Contains(got, echoedKey) || !strings.Contains(got, `"code":"provider_error"`) {
		t.Errorf("the client gets %q", got)
	}
}

// BenchmarkStreamBodyScrubbed is BenchmarkStreamBody's openai chunk (16
// events) through an edge that decided the request, as served: every event
// searched for the provider's credential.
func BenchmarkStreamBodyScrubbed(b *testing.B) {
	p := echoEdge(b, true)
	p.handle(respHeadersMsg("200", "text/event-stream"))
	chunk := strings.Repeat(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello wor"},"finish_reason":null}]}`+"\n\n", 16)
	msg := &extprocv3.HttpBody{Body: []byte(chunk)}
	p.stream.hideUsage = true
	// Every chunk goes to one answer: past any model's bound after a few
	// hundred (streamState.maxOut), and the rest would be dropped. The
	// bound is kept, out of reach, so its check is measured.
	p.stream.maxOut = math.MaxInt
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		p.streamBody(msg)
	}
}

// more grace, so Envoy's message timeout ends it; before, every chunk
// earned another 60 s and a client trickling one every 40 s held a request
// open without end (an attacker's pass).
func TestUploadGraceEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &procStream{ctx: ctx, cancel: cancel, out: make(chan *extprocv3.ProcessingResponse, 4)}
	w := &uploadWatch{stream: s, until: time.Now().Add(time.Hour)}
	w.holding.Store(true)
	w.extend()
	if r := <-s.out; r.GetOverrideMessageTimeout().AsDuration() != uploadGrace {
		t.Fatalf("within the limit: %v", r)
	}
	w.until = time.Now().Add(-time.Second)
	w.extend()
	if len(s.out) != 0 {
		t.Errorf("past the limit the grace was asked for again")
	}
}
