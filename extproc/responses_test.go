package extproc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/policy"
)

// responsesState has a chat-only OpenAI-wire model, two native Responses
// models (one at a provider that keeps stored responses, one at a
// provider that does not) and an Anthropic-wire model.
func responsesState(t testing.TB) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: chat}
providers:
  - {name: us, base_url: "https://us.example.com/v1", residency: us}
  - {name: openai, base_url: "https://api.example.com/v1", residency: us, stored_responses: true}
  - {name: azure, base_url: "https://azure.example.com/openai/v1", residency: eu}
  - {name: claude, base_url: "https://claude.example.com/v1", residency: eu, wire_format: anthropic}
models:
  - {id: chat, provider: us, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: native, provider: openai, provider_model: gpt-up, context_window: 8000, capabilities: [chat, responses, tools, json_mode, streaming, vision], price: {input_per_mtok: 2, output_per_mtok: 2}}
  - {id: native-eu, provider: azure, provider_model: gpt-eu, context_window: 8000, capabilities: [chat, responses, tools, json_mode, streaming], price: {input_per_mtok: 3, output_per_mtok: 3}}
  - {id: sonnet, provider: claude, provider_model: claude-up, context_window: 200000, price: {input_per_mtok: 3, output_per_mtok: 15}}
`))
	if err != nil {
		t.Fatal(err)
	}
	return stateFor(t, c, func(string) string { return "" })
}

func responsesEdge(t testing.TB, st *State) *edge {
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/responses", false))
	return p
}

// TestResponsesRouting: a Responses request goes to a native provider as
// it is (model rewritten, stellwerk's policy removed), to a chat model as
// chat completions, to an Anthropic-wire model as Messages; and each
// answer comes back as a response object with the routing object.
func TestResponsesRouting(t *testing.T) {
	const req = `{"model":"%s","instructions":"be brief","input":"hi","store":true,"include":["reasoning.encrypted_content"],"policy":{"optimize":"cost"}}`
	for name, tc := range map[string]struct {
		model, path string
		sent        map[string]string // gjson path → value in the body sent
		answer      string
		usageIn     int64
	}{
		"native": {
			model: "native", path: "/v1/responses",
			sent: map[string]string{"model": "gpt-up", "input": "hi", "instructions": "be brief", "store": "true",
				"include.0": "reasoning.encrypted_content", "policy": "", "messages": ""},
			answer:  `{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"gpt-up","output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hello","annotations":[]}]}],"usage":{"input_tokens":7,"output_tokens":1,"total_tokens":8}}`,
			usageIn: 7,
		},
		"translated to chat": {
			model: "chat", path: "/v1/chat/completions",
			sent:    map[string]string{"model": "chat", "messages.0.content": "be brief", "messages.1.content": "hi", "input": "", "policy": "", "store": ""},
			answer:  `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"chat","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`,
			usageIn: 5,
		},
		"translated to anthropic": {
			model: "sonnet", path: "/v1/messages",
			sent:    map[string]string{"model": "claude-up", "system": "be brief", "messages.0.content.0.text": "hi", "input": "", "policy": ""},
			answer:  `{"id":"msg_01","type":"message","role":"assistant","model":"claude-up","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":6,"output_tokens":1}}`,
			usageIn: 6,
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := responsesEdge(t, responsesState(t))
			r := p.handle(bodyMsg(strings.Replace(req, "%s", tc.model, 1)))
			cr := r.GetRequestBody().GetResponse()
			if cr == nil || p.selection == nil {
				t.Fatalf("not routed: %v", r)
			}
			hs := setHeaders(cr.GetHeaderMutation())
			nb := cr.GetBodyMutation().GetBody()
			if hs[":path"] != tc.path {
				t.Errorf("path %q, want %q", hs[":path"], tc.path)
			}
			for path, want := range tc.sent {
				if got := gjson.GetBytes(nb, path).String(); got != want {
					t.Errorf("sent %s = %q, want %q (%s)", path, got, want, nb)
				}
			}
			p.handle(respHeadersMsg("200", "application/json"))
			out := p.handle(respBodyMsg(tc.answer, true))
			body := out.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
			a := gjson.ParseBytes(body)
			if a.Get("object").Str != "response" || a.Get("output.0.content.0.text").Str != "hello" ||
				a.Get("usage.input_tokens").Int() != tc.usageIn || a.Get("routing.model").Str != tc.model ||
				a.Get("routing.usage.prompt_tokens").Int() != tc.usageIn || a.Get("routing.cost.eur").Float() <= 0 {
				t.Fatalf("answer %s", body)
			}
		})
	}
}

// TestResponsesStored: previous_response_id goes only to a native model
// whose provider keeps stored responses; every other model is rejected
// with its reason, a pinned one with 400 model_unsuitable naming it.
func TestResponsesStored(t *testing.T) {
	for name, tc := range map[string]struct {
		model       string
		status      int    // 0: routed
		served      string // routed to
		code, cause string
	}{
		"auto picks the storing provider": {model: "auto", served: "native"},
		"pinned storing":                  {model: "native", served: "native"},
		"pinned chat model":               {model: "chat", status: 400, code: "model_unsuitable", cause: "previous_response_id needs a provider that serves the Responses API natively"},
		"pinned anthropic model":          {model: "sonnet", status: 400, code: "model_unsuitable", cause: "previous_response_id needs a provider that serves the Responses API natively"},
		"pinned native, not storing":      {model: "native-eu", status: 400, code: "model_unsuitable", cause: "provider azure keeps no stored responses"},
	} {
		t.Run(name, func(t *testing.T) {
			p := responsesEdge(t, responsesState(t))
			r := p.handle(bodyMsg(`{"model":"` + tc.model + `","input":"and then?","previous_response_id":"resp_123"}`))
			if tc.status != 0 {
				ir := r.GetImmediateResponse()
				if ir == nil || int(ir.GetStatus().GetCode()) != tc.status || gjson.GetBytes(ir.Body, "error.code").Str != tc.code ||
					!strings.Contains(gjson.GetBytes(ir.Body, "error.message").Str, tc.cause) {
					t.Fatalf("got %v, want %d %s: %s", ir, tc.status, tc.code, tc.cause)
				}
				return
			}
			nb := r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
			if p.selection == nil || p.selection.Model.ID != tc.served || gjson.GetBytes(nb, "previous_response_id").Str != "resp_123" {
				t.Fatalf("routed %v with %s", p.selection, nb)
			}
			for _, v := range p.selection.Table() {
				if v.ID == "chat" && (v.Verdict != "rejected" || !strings.Contains(v.Reason, "previous_response_id")) {
					t.Errorf("chat: %s %s", v.Verdict, v.Reason)
				}
			}
		})
	}
	// With the storing provider in the EU-only workspace's way: residency
	// leaves the non-storing one only, and auto has no model.
	p := responsesEdge(t, responsesState(t))
	ir := p.handle(bodyMsg(`{"model":"auto","input":"x","previous_response_id":"resp_1","policy":{"residency":"eu"}}`)).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 503 || gjson.GetBytes(ir.Body, "error.code").Str != "no_eligible_model" ||
		!strings.Contains(gjson.GetBytes(ir.Body, "error.message").Str, "keeps no stored responses") {
		t.Fatalf("eu + previous_response_id: %v", ir)
	}
}

// TestResponsesNativeOnly: a built-in tool only a native provider takes
// rejects the translating models with the reason; the request is still
// classified (a secret in it is denied).
func TestResponsesNativeOnly(t *testing.T) {
	p := responsesEdge(t, responsesState(t))
	r := p.handle(bodyMsg(`{"model":"auto","input":"find it","tools":[{"type":"web_search"}]}`))
	if p.selection == nil || !p.selection.Model.NativeResponses() {
		t.Fatalf("routed %v: %v", p.selection, r)
	}
	for _, v := range p.selection.Table() {
		if (v.ID == "chat" || v.ID == "sonnet") && !strings.Contains(v.Reason, "cannot carry tools[0] of type web_search") {
			t.Errorf("%s: %s %s", v.ID, v.Verdict, v.Reason)
		}
	}
	p = responsesEdge(t, responsesState(t))
	ir := p.handle(bodyMsg(`{"model":"auto","input":[{"type":"item_reference","id":"AKIAIOSFODNN7EXAMPLE"}]}`)).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 403 {
		t.Fatalf("a secret in an item only a native provider reads: %v", ir)
	}
	// A duplicate key would be classified as its first copy and read by
	// the provider as its last: refused.
	p = responsesEdge(t, responsesState(t))
	ir = p.handle(bodyMsg(`{"model":"native","input":[{"role":"user","content":"hi","content":"AKIAIOSFODNN7EXAMPLE"}]}`)).GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 400 || gjson.GetBytes(ir.Body, "error.code").Str != "duplicate_field" {
		t.Fatalf("duplicate key: %v", ir)
	}
}

// TestResponsesStreams: a native stream passes through unchanged with its
// usage read from response.completed; an Anthropic stream becomes the
// Responses API's events.
func TestResponsesStreams(t *testing.T) {
	native := "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[]}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"hello\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":3,\"total_tokens\":12}}}\n\n"
	p := responsesEdge(t, responsesState(t))
	p.handle(bodyMsg(`{"model":"native","input":"hi","stream":true}`))
	p.handle(respHeadersMsg("200", "text/event-stream"))
	var out []byte
	for _, part := range []string{native[:70], native[70:]} {
		r := p.handle(respBodyMsg(part, part != native[:70]))
		if bm := r.GetResponseBody().GetResponse().GetBodyMutation(); bm != nil {
			out = append(out, bm.GetBody()...)
		} else {
			out = append(out, part...)
		}
	}
	if string(out) != native || p.stream.usage == nil || p.stream.usage.PromptTokens != 9 || p.stream.usage.CompletionTokens != 3 || p.streamEnd != "complete" {
		t.Fatalf("native stream: %q, usage %+v, end %q", out, p.stream.usage, p.streamEnd)
	}

	// A native stream that breaks off before response.completed ends with
	// the error event the SDKs raise, never looking complete.
	p = responsesEdge(t, responsesState(t))
	p.handle(bodyMsg(`{"model":"native","input":"hi","stream":true}`))
	p.handle(respHeadersMsg("200", "text/event-stream"))
	cut := native[:strings.Index(native, "event: response.completed")]
	body := p.handle(respBodyMsg(cut, true)).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if !strings.HasPrefix(string(body), cut) || !strings.Contains(string(body), "stream_incomplete") || p.streamEnd != "incomplete" {
		t.Fatalf("cut native stream: %q, end %q", body, p.streamEnd)
	}

	anth := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"model\":\"claude-up\",\"usage\":{\"input_tokens\":5,\"output_tokens\":0}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	p = responsesEdge(t, responsesState(t))
	p.handle(bodyMsg(`{"model":"sonnet","input":"hi","stream":true}`))
	p.handle(respHeadersMsg("200", "text/event-stream"))
	body = p.handle(respBodyMsg(anth, true)).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	var types []string
	for _, line := range strings.Split(string(body), "\n") {
		if t, ok := strings.CutPrefix(line, "event: "); ok {
			types = append(types, t)
		}
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added response.output_text.delta " +
		"response.output_text.done response.content_part.done response.output_item.done response.completed"
	if strings.Join(types, " ") != want || !strings.Contains(string(body), `"input_tokens":5`) || p.streamEnd != "complete" {
		t.Fatalf("anthropic stream as Responses events: %v\n%s", types, body)
	}
}

// BenchmarkResponsesRequest: the edge's request phases for a 2 KB
// Responses request routed to a native provider (passed through) and to a
// chat model (translated).
func BenchmarkResponsesRequest(b *testing.B) {
	st := responsesState(b)
	text := strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30)
	for _, model := range []string{"native", "chat", "sonnet"} {
		body := `{"model":"` + model + `","instructions":"You are helpful.","input":"` + text + `"}`
		b.Run(model, func(b *testing.B) {
			hm, bm := headersMsg("POST", "/v1/responses", false, "content-type", "application/json"), bodyMsg(body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
				p.handle(hm)
				if r := p.handle(bm); r.GetRequestBody() == nil {
					b.Fatalf("not routed: %v", r)
				}
			}
		})
	}
}

// TestResponsesPolicyInput: the platform's Rego sees input.request.api
// "responses" (and the request's metadata) for a Responses request, native
// or not, and its denial is the client's 403 with the reason.
func TestResponsesPolicyInput(t *testing.T) {
	dir := t.TempDir()
	rule := "package stellwerk\n\ndeny contains \"agents use chat completions here\" if {\n\tinput.request.api == \"responses\"\n\tinput.request.metadata.flow == \"agent\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "apis.rego"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	st := responsesState(t)
	pm, err := policy.NewManager(context.Background(), policy.Source{Library: true, Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	st.Router.Policy = pm
	for model, want := range map[string]int{"native": 403, "chat": 403} {
		p := responsesEdge(t, st)
		ir := p.handle(bodyMsg(`{"model":"` + model + `","input":"hi","metadata":{"flow":"agent"}}`)).GetImmediateResponse()
		if ir == nil || int(ir.GetStatus().GetCode()) != want || !strings.Contains(string(ir.Body), "agents use chat completions here") {
			t.Errorf("%s: %v", model, ir)
		}
	}
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	if r := p.handle(bodyMsg(`{"model":"chat","messages":[{"role":"user","content":"hi"}],"metadata":{"flow":"agent"}}`)); r.GetImmediateResponse() != nil {
		t.Errorf("chat denied too: %v", r.GetImmediateResponse())
	}
}

// TestAnthropicRefusalsAreRejections: what the translation to Anthropic
// refuses (n > 1, logprobs, the deprecated functions) rejects an
// Anthropic-wire model at decision time, with the reason, instead of a 400
// blaming the request once such a model is chosen (found with the SDKs: a
// valid request failed only while the OpenAI provider cooled down).
func TestAnthropicRefusalsAreRejections(t *testing.T) {
	for _, extra := range []string{`"n":2`, `"logprobs":true`, `"functions":[{"name":"f"}]`} {
		chat := func(model, policy string) *extprocv3.ImmediateResponse {
			p := &edge{filter: filter{state: responsesState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
			p.handle(headersMsg("POST", "/v1/chat/completions", false))
			return p.handle(bodyMsg(`{"model":"` + model + `",` + extra + `,"messages":[{"role":"user","content":"hi"}]` + policy + `}`)).GetImmediateResponse()
		}
		ir := chat("auto", `,"policy":{"allow":["sonnet"]}`)
		if ir == nil || ir.GetStatus().GetCode() != 503 || gjson.GetBytes(ir.Body, "error.code").Str != "no_eligible_model" ||
			!strings.Contains(gjson.GetBytes(ir.Body, "error.message").Str, "Anthropic") {
			t.Errorf("%s, only sonnet allowed: %v", extra, ir)
		}
		ir = chat("sonnet", "")
		if ir == nil || ir.GetStatus().GetCode() != 400 || gjson.GetBytes(ir.Body, "error.code").Str != "model_unsuitable" {
			t.Errorf("%s, sonnet pinned: %v", extra, ir)
		}
		if ir := chat("auto", `,"policy":{"allow":["sonnet","chat"]}`); ir != nil {
			t.Errorf("%s, sonnet or chat: %v, want routed to chat", extra, ir)
		}
	}
}

// TestResponsesToolOutputParts: a tool's output as parts (the SDK's types
// allow it) goes anywhere as text, and to a native provider only when it
// holds an image; it was a 400 even for a native provider.
func TestResponsesToolOutputParts(t *testing.T) {
	const call = `{"type":"function_call","call_id":"c1","name":"w","arguments":"{}"}`
	for name, tc := range map[string]struct {
		output string
		native bool
	}{
		"text": {`[{"type":"input_text","text":"sunny"}]`, false},
		// An image is an image wherever it is: the model needs vision.
		"image": {`[{"type":"input_image","image_url":"https://x/y.png"}]`, true},
	} {
		p := responsesEdge(t, responsesState(t))
		r := p.handle(bodyMsg(`{"model":"auto","input":[` + call + `,{"type":"function_call_output","call_id":"c1","output":` + tc.output + `}]}`))
		if p.selection == nil || (tc.native && !p.selection.Model.NativeResponses()) {
			t.Fatalf("%s: routed %v: %v", name, p.selection, r)
		}
	}
}
