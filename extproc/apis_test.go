package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// apisState has a chat model, two embedding models (a cheap US one, a
// dearer EU one), a completions model and an Anthropic-wire model.
func apisState(t testing.TB) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: chat}
providers:
  - {name: us, base_url: "https://us.example.com/v1", residency: us}
  - {name: eu, base_url: "https://eu.example.com/v1", residency: eu}
  - {name: claude, base_url: "https://claude.example.com/v1", residency: eu, wire_format: anthropic}
models:
  - {id: chat, provider: us, context_window: 8000}
  - {id: emb-us, provider: us, provider_model: text-embedding-3-small, context_window: 8191, capabilities: [embeddings], price: {input_per_mtok: 0.02, output_per_mtok: 0}}
  - {id: emb-eu, provider: eu, context_window: 8191, capabilities: [embeddings], price: {input_per_mtok: 0.13, output_per_mtok: 0}}
  - {id: instruct, provider: us, context_window: 4096, capabilities: [completions, streaming], price: {input_per_mtok: 1.5, output_per_mtok: 2}}
  - {id: sonnet, provider: claude, context_window: 200000}
`))
	if err != nil {
		t.Fatal(err)
	}
	return stateFor(t, c, func(string) string { return "" })
}

func TestEmbeddingsAndCompletionsAreRouted(t *testing.T) {
	for name, tc := range map[string]struct {
		path, body   string
		status       int    // 0: routed
		model, code  string // the chosen model, or the error's code
		upstreamPath string
		rejected     map[string]string // model → part of its reason
	}{
		"embeddings auto: cheapest embedding model": {
			path: "/v1/embeddings", body: `{"model":"auto","input":["hello","world"]}`,
			model: "emb-us", upstreamPath: "/v1/embeddings",
			rejected: map[string]string{"chat": "does not serve embeddings", "instruct": "does not serve embeddings", "sonnet": "wire format anthropic has no embeddings endpoint"},
		},
		"embeddings eu residency": {
			path: "/v1/embeddings", body: `{"model":"auto","input":"hello","policy":{"residency":"eu"}}`,
			model: "emb-eu", upstreamPath: "/v1/embeddings",
		},
		"completions auto": {
			path: "/v1/completions", body: `{"model":"auto","prompt":"Say this is a test","max_tokens":7,"stream":true}`,
			model: "instruct", upstreamPath: "/v1/completions",
		},
		"chat never goes to an embedding model": {
			path: "/v1/chat/completions", body: `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
			model: "chat", upstreamPath: "/v1/chat/completions",
			rejected: map[string]string{"emb-us": "does not serve chat"},
		},
		"pinned chat model on embeddings": {
			path: "/v1/embeddings", body: `{"model":"chat","input":"x"}`, status: 400, code: "model_unsuitable",
		},
		"secret on embeddings": {
			path: "/v1/embeddings", body: `{"model":"auto","input":"aws_access_key_id = AKIAIOSFODNN7EXAMPLE"}`, status: 403, code: "policy_denied",
		},
		"secret in a completions prompt": {
			path: "/v1/completions", body: `{"model":"auto","prompt":["ok","aws_access_key_id = AKIAIOSFODNN7EXAMPLE"]}`, status: 403, code: "policy_denied",
		},
		"invalid embeddings": {
			path: "/v1/embeddings", body: `{"model":"auto","input":[]}`, status: 400, code: "invalid_value",
		},
		"completions without a model that serves them": {
			path: "/v1/completions", body: `{"model":"auto","prompt":"x","policy":{"residency":"eu"}}`, status: 503, code: "no_eligible_model",
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := &edge{filter: filter{state: apisState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
			if r := p.handle(headersMsg("POST", tc.path, false)); r.GetRequestHeaders() == nil {
				t.Fatalf("headers phase: %v", r)
			}
			r := p.handle(bodyMsg(tc.body))
			if tc.status != 0 {
				ir := r.GetImmediateResponse()
				if ir == nil || int(ir.GetStatus().GetCode()) != tc.status || gjson.GetBytes(ir.Body, "error.code").Str != tc.code {
					t.Fatalf("want %d %s, got %v", tc.status, tc.code, r)
				}
				return
			}
			hs := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation())
			if p.selection == nil || p.selection.Model.ID != tc.model || hs[":path"] != tc.upstreamPath {
				t.Fatalf("routed to %v at %q, want %s at %s (%v)", p.selection, hs[":path"], tc.model, tc.upstreamPath, r)
			}
			tab := p.selection.Table()
			for id, why := range tc.rejected {
				found := false
				for _, v := range tab {
					if v.ID == id {
						found = true
						if v.Verdict != "rejected" || !strings.Contains(v.Reason, why) {
							t.Errorf("%s: %s (%s), want rejected: %s", id, v.Verdict, v.Reason, why)
						}
					}
				}
				if !found {
					t.Errorf("%s not in the table", id)
				}
			}
		})
	}
}

func TestEmbeddingsUsageIsCharged(t *testing.T) {
	p := &edge{filter: filter{state: apisState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/embeddings", false))
	// 10,000 tokens are plausible for an input of 6,000 bytes (twice the
	// body and 4,096 tokens of slack), not for "hello" (plausibleUsage).
	p.handle(bodyMsg(`{"model":"auto","input":"` + strings.Repeat("hello ", 1000) + `"}`))
	p.served = p.selection.Model
	c, ok := p.jsonCharge([]byte(`{"object":"list","data":[],"usage":{"prompt_tokens":10000,"total_tokens":10000}}`))
	if !ok || c.Usage.PromptTokens != 10000 || c.Amount != 0.0002 {
		t.Fatalf("charge %+v %v, want 0.0002 USD for ten thousand input tokens", c, ok)
	}
	if c.Baseline != "" {
		t.Fatalf("saving claimed against %s, a chat model that cannot embed", c.Baseline)
	}
}

// BenchmarkAPIRequest is BenchmarkChatRequest for each endpoint (the
// Responses and Messages APIs with their translation to chat) with
// model auto on apisState: the edge's request phases (parse, classify,
// policy over 5 candidates, select, rewrite) for about 2 KB of text.
func BenchmarkAPIRequest(b *testing.B) {
	st := apisState(b)
	text := strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30)
	part := `"` + strings.Repeat("Explain the difference between a mutex and a semaphore. ", 2) + `"`
	for _, tc := range []struct{ name, path, body string }{
		{"chat", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` + text + `"}]}`},
		{"embeddings", "/v1/embeddings", `{"model":"auto","input":[` + strings.Repeat(part+",", 14) + part + `]}`},
		{"completions", "/v1/completions", `{"model":"auto","prompt":"` + text + `","max_tokens":64}`},
		{"responses", "/v1/responses", `{"model":"auto","instructions":"You are helpful.","input":"` + text + `"}`},
		{"messages", "/v1/messages", `{"model":"auto","max_tokens":512,"system":"You are helpful.","messages":[{"role":"user","content":"` + text + `"}]}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hm, bm := headersMsg("POST", tc.path, false, "content-type", "application/json"), bodyMsg(tc.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
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

// TestAPIsMetrics: embeddings and completions requests are counted like
// chat, their tokens under their OTel operation name.
func TestAPIsMetrics(t *testing.T) {
	st := apisState(t)
	st.Metrics = telemetry.New()
	run := func(path, body, answer string) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: NewDecisionID()}, ctx: context.Background()}
		p.handle(headersMsg("POST", path, false))
		p.handle(bodyMsg(body))
		p.handle(respHeadersMsg("200", "application/json"))
		p.handle(respBodyMsg(answer, true))
		p.finish()
	}
	run("/v1/embeddings", `{"model":"auto","input":"hello"}`, `{"object":"list","data":[],"usage":{"prompt_tokens":3,"total_tokens":3}}`)
	run("/v1/completions", `{"model":"auto","prompt":"hello"}`, `{"choices":[{"text":"hi"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	g := st.Metrics.Gatherer()
	for labels, metric := range map[string]string{
		"error_code=,model=emb-us,provider=us,status_class=2xx,workspace=default":                                                                         "stellwerk_requests_total",
		"error_code=,model=instruct,provider=us,status_class=2xx,workspace=default":                                                                       "stellwerk_requests_total",
		"gen_ai_operation_name=embeddings,gen_ai_provider_name=us,gen_ai_request_model=auto,gen_ai_response_model=emb-us,gen_ai_token_type=input":         "gen_ai_client_token_usage",
		"gen_ai_operation_name=text_completion,gen_ai_provider_name=us,gen_ai_request_model=auto,gen_ai_response_model=instruct,gen_ai_token_type=output": "gen_ai_client_token_usage",
	} {
		if got := sample(t, g, metric, labels); got != 1 {
			t.Errorf("%s{%s} = %v, want 1", metric, labels, got)
		}
	}
}

// TestMessagesAPI: an Anthropic Messages request is classified and decided
// as chat, with its own API for the policy; an Anthropic-wire model gets it
// as sent (model renamed, policy removed) and its answer unchanged but for
// the routing object; an OpenAI-wire model gets it as chat completions and
// its answer comes back as a message. Errors are in Anthropic's shape.
func TestMessagesAPI(t *testing.T) {
	newEdge := func() *edge {
		return &edge{filter: filter{state: apisState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	}
	t.Run("native", func(t *testing.T) {
		p := newEdge()
		p.handle(headersMsg("POST", "/v1/messages", false, "x-api-key", "sk-client", "anthropic-version", "2023-06-01"))
		r := p.handle(bodyMsg(`{"model":"sonnet","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hi"}],"top_k":5,"policy":{"optimize":"cost"}}`))
		cr := r.GetRequestBody().GetResponse()
		hs := setHeaders(cr.GetHeaderMutation())
		nb := cr.GetBodyMutation().GetBody()
		if p.selection == nil || p.selection.Model.ID != "sonnet" || hs[":path"] != "/v1/messages" || hs["anthropic-version"] == "" ||
			gjson.GetBytes(nb, "model").Str != "sonnet" || gjson.GetBytes(nb, "system").Str != "be brief" || gjson.GetBytes(nb, "top_k").Int() != 5 ||
			gjson.GetBytes(nb, "policy").Exists() || gjson.GetBytes(nb, "stream_options").Exists() {
			t.Fatalf("routed %v to %q with %s", p.selection, hs[":path"], nb)
		}
		if p.result.Chat.API != "messages" {
			t.Errorf("api %q", p.result.Chat.API)
		}
		p.handle(respHeadersMsg("200", "application/json"))
		out := p.handle(respBodyMsg(`{"id":"msg_1","type":"message","role":"assistant","model":"sonnet","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":1000,"output_tokens":0}}`, true))
		body := out.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
		if gjson.GetBytes(body, "content.0.text").Str != "hello" || gjson.GetBytes(body, "routing.usage.prompt_tokens").Int() != 1000 ||
			gjson.GetBytes(body, "routing.model").Str != "sonnet" || gjson.GetBytes(body, "choices").Exists() {
			t.Fatalf("answer %s", body)
		}
	})
	t.Run("translated", func(t *testing.T) {
		p := newEdge()
		p.handle(headersMsg("POST", "/v1/messages", false))
		r := p.handle(bodyMsg(`{"model":"chat","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object"}}]}`))
		cr := r.GetRequestBody().GetResponse()
		hs := setHeaders(cr.GetHeaderMutation())
		nb := cr.GetBodyMutation().GetBody()
		if p.selection == nil || hs[":path"] != "/v1/chat/completions" || gjson.GetBytes(nb, "messages.0.content").Str != "hi" ||
			gjson.GetBytes(nb, "tools.0.function.name").Str != "f" || gjson.GetBytes(nb, "max_tokens").Int() != 100 ||
			gjson.GetBytes(nb, "max_completion_tokens").Exists() { // the name a provider other than OpenAI reads
			t.Fatalf("routed %v to %q with %s", p.selection, hs[":path"], nb)
		}
		p.handle(respHeadersMsg("200", "application/json"))
		out := p.handle(respBodyMsg(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"chat","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, true))
		body := out.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
		if gjson.GetBytes(body, "type").Str != "message" || gjson.GetBytes(body, "content.0.input.a").Int() != 1 ||
			gjson.GetBytes(body, "stop_reason").Str != "tool_use" || gjson.GetBytes(body, "usage.input_tokens").Int() != 5 ||
			gjson.GetBytes(body, "routing.usage.completion_tokens").Int() != 1 {
			t.Fatalf("answer %s", body)
		}
	})
	t.Run("translated stream", func(t *testing.T) {
		p := newEdge()
		p.handle(headersMsg("POST", "/v1/messages", false))
		r := p.handle(bodyMsg(`{"model":"chat","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		nb := r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
		if !gjson.GetBytes(nb, "stream_options.include_usage").Bool() {
			t.Fatalf("sent %s", nb)
		}
		p.handle(respHeadersMsg("200", "text/event-stream"))
		chunk := func(delta, finish string) string {
			return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"chat","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}` + "\n\n"
		}
		out := p.handle(respBodyMsg(chunk(`{"role":"assistant","content":"hel"}`, "null")+chunk(`{"content":"lo"}`, "null")+chunk(`{}`, `"stop"`)+
			`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","model":"chat","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}`+"\n\n"+
			"data: [DONE]\n\n", true))
		body := string(out.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
		for _, want := range []string{"event: message_start\n", `"delta":{"type":"text_delta","text":"hel"}`, `"stop_reason":"end_turn"`,
			`"usage":{"input_tokens":7,"output_tokens":2,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}`, "event: message_stop\n"} {
			if !strings.Contains(body, want) {
				t.Errorf("stream lacks %s:\n%s", want, body)
			}
		}
		if strings.Contains(body, "chat.completion.chunk") || p.stream.usage == nil || p.stream.usage.CompletionTokens != 2 {
			t.Errorf("stream %s, usage %+v", body, p.stream.usage)
		}
	})
	t.Run("native stream cut short", func(t *testing.T) {
		p := newEdge()
		p.handle(headersMsg("POST", "/v1/messages", false))
		p.handle(bodyMsg(`{"model":"sonnet","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		p.handle(respHeadersMsg("200", "text/event-stream"))
		out := p.handle(respBodyMsg("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"+
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hel\"}}\n\n", true))
		body := string(out.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
		if !strings.HasPrefix(body, "event: message_start") || !strings.HasSuffix(body, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the provider's stream ended before the answer was complete\"}}\n\n") {
			t.Errorf("a native stream that broke off: %q", body)
		}
		if p.stream.usage == nil || p.stream.usage.PromptTokens != 7 || p.streamEnd != "incomplete" {
			t.Errorf("usage %+v, end %q", p.stream.usage, p.streamEnd)
		}
	})
	for name, tc := range map[string]struct {
		body      string
		status    int
		typ, code string
	}{
		"secret in a tool result": {body: `{"model":"auto","max_tokens":9,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"aws_access_key_id = AKIAIOSFODNN7EXAMPLE"}]}]}`, status: 403, typ: "permission_error", code: "policy_denied"},
		"no max_tokens":           {body: `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, status: 400, typ: "invalid_request_error", code: "missing_max_tokens"},
		"secret":                  {body: `{"model":"auto","max_tokens":9,"messages":[{"role":"user","content":"aws_access_key_id = AKIAIOSFODNN7EXAMPLE"}]}`, status: 403, typ: "permission_error", code: "policy_denied"},
		"secret in tool":          {body: `{"model":"auto","max_tokens":9,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","description":"aws_access_key_id = AKIAIOSFODNN7EXAMPLE","input_schema":{"type":"object"}}]}`, status: 403, typ: "permission_error", code: "policy_denied"},
		"unknown model":           {body: `{"model":"gpt-9","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`, status: 404, typ: "not_found_error", code: "model_not_found"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newEdge()
			p.handle(headersMsg("POST", "/v1/messages", false))
			ir := p.handle(bodyMsg(tc.body)).GetImmediateResponse()
			if ir == nil || int(ir.GetStatus().GetCode()) != tc.status || gjson.GetBytes(ir.Body, "type").Str != "error" ||
				gjson.GetBytes(ir.Body, "error.type").Str != tc.typ || gjson.GetBytes(ir.Body, "error.code").Str != tc.code {
				t.Fatalf("want %d %s/%s, got %v", tc.status, tc.typ, tc.code, ir)
			}
		})
	}
}

// TestOutputLimitFor: a request's output limit goes out under the name its
// provider reads (the SDK probe: Mistral refuses max_completion_tokens).
func TestOutputLimitFor(t *testing.T) {
	for _, tc := range []struct{ param, body, want string }{
		{"max_tokens", `{"model":"m","max_completion_tokens":50}`, `{"model":"m","max_tokens":50}`},
		{"max_completion_tokens", `{"model":"m","max_tokens":50,"stream":true}`, `{"model":"m","max_completion_tokens":50,"stream":true}`},
		{"max_tokens", `{"model":"m","max_tokens":50}`, `{"model":"m","max_tokens":50}`},
		{"max_tokens", `{"model":"m","max_tokens":50,"max_completion_tokens":60}`, `{"model":"m","max_tokens":50,"max_completion_tokens":60}`},
		{"", `{"model":"m","max_completion_tokens":50}`, `{"model":"m","max_completion_tokens":50}`},
		{"max_tokens", `{"model":"m"}`, `{"model":"m"}`},
		{"max_tokens", "{\"model\":\"m\", \"max_completion_tokens\" :\n 50}", "{\"model\":\"m\", \"max_tokens\" :\n 50}"},
		{"max_tokens", `{"model":"m","max_completion\u005ftokens":50}`, `{"model":"m","max_tokens":50}`},
	} {
		got, err := outputLimitFor(&catalog.Provider{MaxTokensParam: tc.param}, []byte(tc.body))
		if err != nil || string(got) != tc.want {
			t.Errorf("%s %s: %s %v, want %s", tc.param, tc.body, got, err, tc.want)
		}
	}
}

// TestWrappedUsageIsRefused (the fuzzing probe): four Anthropic counts of
// 2⁶² summed to 1,024 prompt tokens, which passed the plausibility check;
// a count past any answer is read as translate.MaxTokens, so no sum wraps,
// and such usage is refused: the answer is charged the request's worst case
// on the model, which the routing object shows (source worst_case).
func TestWrappedUsageIsRefused(t *testing.T) {
	for path, usage := range map[string]string{
		"/v1/messages": `{"input_tokens":4611686018427388928,"output_tokens":1,"cache_read_input_tokens":4611686018427387904,` +
			`"cache_creation":{"ephemeral_5m_input_tokens":4611686018427387904,"ephemeral_1h_input_tokens":4611686018427387904}}`,
		"/v1/chat/completions": `{"prompt_tokens":1e300,"completion_tokens":1}`,
	} {
		p := &edge{filter: filter{state: apisState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
		p.handle(headersMsg("POST", path, false))
		p.handle(bodyMsg(`{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`))
		p.served = p.selection.Model
		if c, ok := p.jsonCharge([]byte(`{"usage":` + usage + `}`)); !ok || c.Source != meter.WorstCase || c.Usage.CompletionTokens != 100 {
			t.Errorf("%s: charged %+v (%s), want the worst case: 100 output tokens", path, c.Usage, c.Source)
		}
	}
}

// TestOutputCappedAtTheModel: no provider is asked for more output than its
// model can write (max_output_tokens), which is all the budgets hold: a
// request asking more went out as sent, and an understated catalog let one
// answer spend five times its hold (the peer-switcher probe). Each API and
// wire, from the edge and from an egress attempt (which reads the body
// itself); a limit within the model's goes out unchanged.
func TestOutputCappedAtTheModel(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: chat}
providers:
  - {name: us, base_url: "https://us.example.com/v1", residency: us}
  - {name: mistral, base_url: "https://mistral.example.com/v1", residency: eu, max_tokens_param: max_tokens}
  - {name: claude, base_url: "https://claude.example.com/v1", residency: eu, wire_format: anthropic}
models:
  - {id: chat, provider: us, context_window: 8000, max_output_tokens: 1000, capabilities: [chat, responses, streaming, tools]}
  - {id: small, provider: mistral, context_window: 8000, max_output_tokens: 800}
  - {id: instruct, provider: us, context_window: 4096, max_output_tokens: 500, capabilities: [completions]}
  - {id: sonnet, provider: claude, context_window: 200000, max_output_tokens: 2000}
  - {id: haiku, provider: claude, context_window: 200000, max_output_tokens: 1024}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(string) string { return "sk-test" })
	for name, tc := range map[string]struct {
		path, body string
		want       map[string]int64 // member → value sent; 0: not sent
	}{
		"chat above":                {"/v1/chat/completions", `{"model":"chat","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 1000}},
		"chat within":               {"/v1/chat/completions", `{"model":"chat","max_completion_tokens":999,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 999}},
		"chat both names":           {"/v1/chat/completions", `{"model":"chat","max_tokens":5000,"max_completion_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 1000, "max_completion_tokens": 1000}},
		"chat without":              {"/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 0, "max_completion_tokens": 0}},
		"chat renamed":              {"/v1/chat/completions", `{"model":"small","max_completion_tokens":900,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 800, "max_completion_tokens": 0}},
		"chat to anthropic":         {"/v1/chat/completions", `{"model":"sonnet","max_tokens":9000,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 2000}},
		"chat to anthropic without": {"/v1/chat/completions", `{"model":"haiku","messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 1024}},
		"chat to anthropic default": {"/v1/chat/completions", `{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 2000}},
		"completions":               {"/v1/completions", `{"model":"instruct","prompt":"hi","max_tokens":600}`, map[string]int64{"max_tokens": 500}},
		"responses native":          {"/v1/responses", `{"model":"chat","input":"hi","max_output_tokens":4000}`, map[string]int64{"max_output_tokens": 1000}},
		"responses to anthropic":    {"/v1/responses", `{"model":"sonnet","input":"hi","max_output_tokens":4000}`, map[string]int64{"max_tokens": 2000}},
		"messages native":           {"/v1/messages", `{"model":"sonnet","max_tokens":64000,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 2000}},
		"messages within":           {"/v1/messages", `{"model":"sonnet","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 100}},
		"messages translated":       {"/v1/messages", `{"model":"small","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`, map[string]int64{"max_tokens": 800}},
		// Extended thinking's budget stays below max_tokens (the reasoning
		// probe: 128,000 lowered to 64,000 with a budget of 100,000 was a
		// 400 from Anthropic); one within stays.
		"messages thinking": {"/v1/messages", `{"model":"sonnet","max_tokens":128000,"thinking":{"type":"enabled","budget_tokens":100000},"messages":[{"role":"user","content":"hi"}]}`,
			map[string]int64{"max_tokens": 2000, "thinking.budget_tokens": 1999}},
		// A model that writes no more than Anthropic's least budget
		// cannot think: the request goes without thinking.
		"messages thinking, too small a model": {"/v1/messages", `{"model":"haiku","max_tokens":8000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"hi"}]}`,
			map[string]int64{"max_tokens": 1024, "thinking": 0}},
		"messages thinking within": {"/v1/messages", `{"model":"sonnet","max_tokens":128000,"thinking":{"type":"enabled","budget_tokens":1500},"messages":[{"role":"user","content":"hi"}]}`,
			map[string]int64{"max_tokens": 2000, "thinking.budget_tokens": 1500}},
	} {
		check := func(t *testing.T, nb []byte) {
			t.Helper()
			for member, want := range tc.want {
				v := gjson.GetBytes(nb, member)
				if (want == 0 && v.Exists()) || (want != 0 && v.Int() != want) {
					t.Errorf("%s: %s, want %d in %s", member, v.Raw, want, nb)
				}
			}
		}
		t.Run(name, func(t *testing.T) {
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
			p.handle(headersMsg("POST", tc.path, false))
			r := p.handle(bodyMsg(tc.body))
			cr := r.GetRequestBody().GetResponse()
			if cr == nil {
				t.Fatalf("not routed: %v", r)
			}
			nb := cr.GetBodyMutation().GetBody()
			if nb == nil {
				nb = []byte(tc.body)
			}
			check(t, nb)
			// A fallback attempt to the same model rewrites the client's
			// request itself.
			g := &egress{filter: filter{state: st, log: zap.NewNop(), id: "id", seen: &attemptLog{}}, provider: p.served.Provider.Name}
			g.handle(headersMsg("POST", tc.path, false, header.Plan, "0123456789abcdef0123456789abcdef;"+p.served.ID))
			gr := g.handle(bodyMsg(tc.body))
			gcr := gr.GetRequestBody().GetResponse()
			if gcr == nil {
				t.Fatalf("egress: %v", gr)
			}
			if nb = gcr.GetBodyMutation().GetBody(); nb == nil {
				nb = []byte(tc.body)
			}
			check(t, nb)
		})
	}
}

// TestHostileJSONAnswers: a JSON answer whose usage comes twice is charged
// the request's worst case, which routing.cost shows (source worst_case);
// one that is not UTF-8 is 502 provider_bad_response (the Python SDK raised
// UnicodeDecodeError on it, no APIError); one without usage longer than
// the model can write is 502 too (the hostile-upstream probe).
func TestHostileJSONAnswers(t *testing.T) {
	for name, tc := range map[string]struct {
		body   string
		status int
		source string
	}{
		"usage twice": {`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1},` +
			`"usage":{"prompt_tokens":10000,"completion_tokens":10000}}`, 200, meter.WorstCase},
		"claimed prompt": {`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":200000,"completion_tokens":1}}`, 200, meter.WorstCase},
		"honest":         {`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":1}}`, 200, meter.ProviderUsage},
		"not UTF-8":      {"{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"h\xffi\"}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}", 502, ""},
		"endless":        {`{"choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("lorem ipsum ", 200000) + `"}}]}`, 502, ""},
	} {
		t.Run(name, func(t *testing.T) {
			p := &edge{filter: filter{state: apisState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
			p.handle(headersMsg("POST", "/v1/chat/completions", false))
			p.handle(bodyMsg(`{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`))
			p.handle(respHeadersMsg("200", "application/json"))
			out := p.handle(respBodyMsg(tc.body, true))
			if tc.status != 200 {
				if ir := out.GetImmediateResponse(); ir == nil || int(ir.GetStatus().GetCode()) != tc.status || !strings.Contains(string(ir.GetBody()), "provider_bad_response") {
					t.Fatalf("answer %v, want %d provider_bad_response", out, tc.status)
				}
				return
			}
			body := out.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
			if src := gjson.GetBytes(body, "routing.cost.source").Str; src != tc.source {
				t.Fatalf("routing.cost.source %q, want %q: %s", src, tc.source, gjson.GetBytes(body, "routing").Raw)
			}
			if tc.source == meter.WorstCase && gjson.GetBytes(body, "routing.usage.completion_tokens").Int() != 100 {
				t.Errorf("routing.usage %s, want the 100 output tokens held", gjson.GetBytes(body, "routing.usage").Raw)
			}
		})
	}
}
