package extproc

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
)

func chunkMsg(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

// TestPipelineHoldsUntilTheBodyIsIn: in the pipelined mode nothing is
// answered until the request body is complete; then the headers' answer
// carries the decision, and one answer per chunk follows, in order, the
// first with the rewritten body and the others cleared.
func TestPipelineHoldsUntilTheBodyIsIn(t *testing.T) {
	p := newProc(t)
	q := &pipeline{p: p, respLimit: 1 << 20}
	body := `{"model":"small","messages":[{"role":"user","content":"hello there, how are you today?"}]}`
	if out := q.step(headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer client",
		"content-length", strconv.Itoa(len(body)), "x-stellwerk-cluster", "provider_nokey"), nil); len(out) != 0 {
		t.Fatalf("answered the request headers before the body: %v", out)
	}
	parts := []string{body[:10], body[10:40], body[40:]}
	for _, part := range parts[:2] {
		if out := q.step(chunkMsg(part, false), nil); len(out) != 0 {
			t.Fatalf("answered a chunk before the end: %v", out)
		}
	}
	// The body is complete at its content-length: decided at once, without
	// waiting for Envoy's end-of-stream message.
	out := q.step(chunkMsg(parts[2], false), nil)
	if len(out) != 1+len(parts) {
		t.Fatalf("%d answers for the headers and %d chunks", len(out), len(parts))
	}
	if end := q.step(chunkMsg("", true), nil); len(end) != 1 || !end[0].GetRequestBody().GetResponse().GetBodyMutation().GetClearBody() {
		t.Fatalf("end-of-stream message answered with %v", end)
	}
	hr := out[0].GetRequestHeaders().GetResponse()
	if hr == nil || !hr.ClearRouteCache {
		t.Fatalf("first answer is not the headers': %v", out[0])
	}
	hs := setHeaders(hr.GetHeaderMutation())
	if hs["x-stellwerk-cluster"] != "provider_remote" || hs[":path"] == "" {
		t.Errorf("decision headers missing: %v", hs)
	}
	removed := hr.GetHeaderMutation().GetRemoveHeaders()
	if !slices.Contains(removed, "authorization") {
		t.Errorf("client credential not removed: %v", removed)
	}
	if slices.Contains(removed, "x-stellwerk-cluster") {
		t.Errorf("the cluster the decision sets is also removed: %v", removed)
	}
	nb := out[1].GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	var got map[string]any
	if err := json.Unmarshal(nb, &got); err != nil || got["model"] != "small-2024" {
		t.Fatalf("first chunk's answer %s (%v)", nb, err)
	}
	if hs["content-length"] != strconv.Itoa(len(nb)) {
		t.Errorf("content-length %q for a %d-byte body", hs["content-length"], len(nb))
	}
	for i, r := range out[2:] {
		if r.GetRequestBody() == nil {
			t.Fatalf("answer %d is not a body chunk's: %v", i+2, r)
		}
		if !r.GetRequestBody().GetResponse().GetBodyMutation().GetClearBody() {
			t.Errorf("chunk %d not cleared: %v", i+1, r)
		}
	}

	// The JSON answer: headers answered at once (its length will change),
	// its chunks held until the end; the routing object goes into the first.
	out = q.step(respHeadersMsg("200", "application/json"), nil)
	if len(out) != 1 || out[0].ModeOverride != nil {
		t.Fatalf("response headers: %v", out)
	}
	rh := out[0].GetResponseHeaders().GetResponse()
	if setHeaders(rh.GetHeaderMutation())["x-stellwerk-model"] != "small" || !slices.Contains(rh.GetHeaderMutation().GetRemoveHeaders(), "content-length") {
		t.Errorf("response headers' answer: %v", rh)
	}
	answer := `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`
	if out := q.step(respBodyMsg(answer[:50], false), nil); len(out) != 0 {
		t.Fatalf("answered a JSON chunk before the end: %v", out)
	}
	out = q.step(respBodyMsg(answer[50:], true), nil)
	if len(out) != 2 {
		t.Fatalf("%d answers for 2 chunks", len(out))
	}
	first := out[0].GetResponseBody().GetResponse()
	var ans map[string]any
	if err := json.Unmarshal(first.GetBodyMutation().GetBody(), &ans); err != nil || ans["routing"] == nil {
		t.Fatalf("first chunk's answer lacks the routing object: %s (%v)", first.GetBodyMutation().GetBody(), err)
	}
	if first.GetHeaderMutation() != nil {
		t.Errorf("a body chunk's answer mutates headers already sent: %v", first)
	}
	if !out[1].GetResponseBody().GetResponse().GetBodyMutation().GetClearBody() {
		t.Errorf("second chunk not cleared: %v", out[1])
	}
}

// TestPipelineRefusesDataBeyondContentLength: once the body reached its
// declared length it was decided; more data would reach the provider
// unread, so the request is refused.
func TestPipelineRefusesDataBeyondContentLength(t *testing.T) {
	q := &pipeline{p: newProc(t), respLimit: 1 << 20}
	body := `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	q.step(headersMsg("POST", "/v1/chat/completions", false, "content-length", strconv.Itoa(len(body))), nil)
	if out := q.step(chunkMsg(body, false), nil); len(out) != 2 {
		t.Fatalf("%d answers for the headers and one chunk", len(out))
	}
	out := q.step(chunkMsg(`,"smuggled":1`, true), nil)
	if len(out) != 1 || out[0].GetImmediateResponse().GetStatus().GetCode() != 400 {
		t.Fatalf("data beyond content-length: %v", out)
	}
}

// TestPipelineStreamsEvents: a streamed answer's chunks are each answered
// as they come; an error answer passes chunk by chunk.
func TestPipelineStreamsEvents(t *testing.T) {
	p := newProc(t)
	q := &pipeline{p: p, respLimit: 1 << 20}
	body := `{"model":"small","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	q.step(headersMsg("POST", "/v1/chat/completions", false, "content-length", strconv.Itoa(len(body))), nil)
	if out := q.step(chunkMsg(body, true), nil); len(out) != 2 {
		t.Fatalf("%d answers for headers and one chunk", len(out))
	}
	out := q.step(respHeadersMsg("200", "text/event-stream"), nil)
	if len(out) != 1 || q.resp != respStream {
		t.Fatalf("stream not followed: %v (mode %d)", out, q.resp)
	}
	for _, ev := range []string{"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "data: [DONE]\n\n"} {
		if out := q.step(respBodyMsg(ev, ev == "data: [DONE]\n\n"), nil); len(out) != 1 || out[0].GetResponseBody() == nil {
			t.Fatalf("stream chunk answered with %v", out)
		}
	}
}

// TestPipelineLimits: a body over the limit is refused while it arrives;
// a body-less request and a refusal in the headers are answered at once.
func TestPipelineLimits(t *testing.T) {
	p := newProc(t)
	p.state.MaxRequestBytes = 100
	q := &pipeline{p: p, respLimit: 1 << 20}
	if out := q.step(headersMsg("POST", "/v1/chat/completions", false), nil); len(out) != 0 {
		t.Fatalf("request headers answered before the body: %v", out)
	}
	out := q.step(chunkMsg(string(make([]byte, 101)), false), nil)
	if len(out) != 1 || out[0].GetImmediateResponse().GetStatus().GetCode() != 413 {
		t.Fatalf("over the limit: %v", out)
	}

	q = &pipeline{p: newProc(t), respLimit: 1 << 20}
	out = q.step(headersMsg("GET", "/v1/models", true), nil)
	if len(out) != 1 || out[0].GetImmediateResponse().GetStatus().GetCode() != 200 {
		t.Fatalf("models listing: %v", out)
	}
}

// FuzzPipeline: whatever the body and however it is cut, the pipeline
// never panics, and unless it refuses the request it answers every
// message exactly once, in order (Envoy pairs answers with messages).
func FuzzPipeline(f *testing.F) {
	f.Add(`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, 5, `{"choices":[]}`, 3)
	f.Add(`{"model":"small"}`, 0, `data: x`, 1)
	f.Add("\x00", 1, "", 0)
	st := testState(f)
	f.Fuzz(func(t *testing.T, body string, cut int, answer string, acut int) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
		q := &pipeline{p: p, respLimit: 64}
		sent, answered := 0, 0
		var done bool
		send := func(m *extprocv3.ProcessingRequest) {
			if done {
				return
			}
			sent++
			for _, r := range q.step(m, nil) {
				if r.GetImmediateResponse() != nil {
					done = true
					return
				}
				if r.OverrideMessageTimeout == nil {
					answered++
				}
			}
		}
		send(headersMsg("POST", "/v1/chat/completions", false, "content-length", strconv.Itoa(len(body))))
		cut = min(max(cut, 0), len(body))
		send(chunkMsg(body[:cut], false))
		send(chunkMsg(body[cut:], true))
		if done {
			return
		}
		if answered != sent {
			t.Fatalf("%d messages, %d answers", sent, answered)
		}
		send(respHeadersMsg("200", "application/json"))
		acut = min(max(acut, 0), len(answer))
		send(respBodyMsg(answer[:acut], false))
		send(respBodyMsg(answer[acut:], true))
		if !done && answered != sent {
			t.Fatalf("%d messages, %d answers", sent, answered)
		}
	})
}

// TestUploadGraceEnds: a body still arriving after the upload limit gets no
