package extproc

import (
	"context"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
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
			if p.decision == nil || p.decision.Model.ID != tc.model || hs[":path"] != tc.upstreamPath {
				t.Fatalf("routed to %v at %q, want %s at %s (%v)", p.decision, hs[":path"], tc.model, tc.upstreamPath, r)
			}
			tab := p.decision.Table()
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
	p.handle(bodyMsg(`{"model":"auto","input":"hello"}`))
	p.served = p.decision.Model
	c, ok := p.jsonCharge([]byte(`{"object":"list","data":[],"usage":{"prompt_tokens":1000000,"total_tokens":1000000}}`))
	if !ok || c.Usage.PromptTokens != 1000000 || c.Amount != 0.02 {
		t.Fatalf("charge %+v %v, want 0.02 USD for a million input tokens", c, ok)
	}
	if c.Baseline != "" {
		t.Fatalf("saving claimed against %s, a chat model that cannot embed", c.Baseline)
	}
}

// BenchmarkAPIRequest is BenchmarkChatRequest for each endpoint (the
// Responses API with its translation to chat) with
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
