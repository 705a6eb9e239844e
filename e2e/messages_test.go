package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// messagesStack has OpenAI-wire chat models in the US (alpha) and the EU
// (beta) and an Anthropic-wire one in the EU (claude), in keys mode: sk-app
// for the default workspace, sk-eu for a workspace pinned to the EU.
func messagesStack(t *testing.T, mutate func(*config.Config)) *harness.Stack {
	price := func(in, out float64) config.Price { return config.Price{InputPerMTok: in, OutputPerMTok: out} }
	return harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha"}, {Name: "beta", Key: "sk-beta", Residency: "eu"},
			{Name: "claude", Key: "sk-claude", Residency: "eu", WireFormat: "anthropic"}},
		Models: []config.Model{
			{ID: "chat-us", Provider: "alpha", ProviderModel: "alpha-chat", ContextWindow: 128000, Price: price(1, 2)},
			{ID: "chat-eu", Provider: "beta", ProviderModel: "beta-chat", ContextWindow: 128000, Price: price(2, 4)},
			{ID: "claude-model", Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 128000, Price: price(3, 15)},
		},
		DefaultModel: "chat-us",
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default"}, {Name: "eu-team", Residency: "eu"}}
			c.Keys = []config.Key{
				{ID: "app", SHA256: auth.Hash("sk-app"), Workspace: "default"},
				{ID: "eu", SHA256: auth.Hash("sk-eu"), Workspace: "eu-team"},
			}
			if mutate != nil {
				mutate(c)
			}
		},
	})
}

// TestMessagesAnthropicSDK: the official anthropic Python SDK pointed at
// Envoy — messages.create and messages.stream, with a tool, a tool result
// sent back — served by an Anthropic-wire model natively and by an
// OpenAI-wire model translated; the x-api-key (or a bearer token) is the
// stellwerk key and never reaches a provider; a secret is denied, a
// refused parameter named, errors in Anthropic's shape; an EU workspace
// gets an EU model.
func TestMessagesAnthropicSDK(t *testing.T) {
	t.Parallel()
	py := harness.RequirePythonPackage(t, "anthropic")
	s := messagesStack(t, nil)
	var decisions []string // to replay
	for _, tc := range messagesCases {
		t.Run(tc.provider, func(t *testing.T) {
			r := checkMessages(t, s, py, tc)
			decisions = append(decisions, r.Get("tool_use.headers.decision-id").Str, r.Get("eu_stream.headers.decision-id").Str)
		})
	}

	// Failover: the Anthropic-wire model fails, a pinned request that
	// allows fallback is served by an OpenAI-wire one, translated — the
	// edge rewrote the first attempt natively, the egress listener the
	// second — whole and streamed.
	resetAll(s)
	s.Providers["claude"].SetBehavior(mockllm.Behavior{Status: 503})
	key := map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"}
	const fallback = `{"model":"claude-model","max_tokens":50,"policy":{"fallback":true},"messages":[{"role":"user","content":"fail over please"}]`
	resp, b := post(t, s.URL+"/v1/messages", fallback+`}`, key)
	if resp.StatusCode != 200 || gjson.GetBytes(b, "type").Str != "message" || resp.Header.Get(header.FallbackFrom) != "claude-model" ||
		resp.Header.Get(header.Attempts) != "2" || !strings.HasPrefix(gjson.GetBytes(b, "content.0.text").Str, "Hello from alpha") {
		t.Errorf("failover: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	resp, b = post(t, s.URL+"/v1/messages", fallback+`,"stream":true}`, key)
	if events := string(b); resp.StatusCode != 200 || !strings.Contains(events, "event: message_start\n") ||
		!strings.Contains(events, `"text":"Hello"`) || !strings.HasSuffix(events, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Errorf("failover stream: %d %s", resp.StatusCode, b)
	}
	// Every model failing: stellwerk's 503 in Anthropic's shape.
	s.Providers["alpha"].SetBehavior(mockllm.Behavior{Status: 503})
	s.Providers["beta"].SetBehavior(mockllm.Behavior{Status: 503})
	resp, b = post(t, s.URL+"/v1/messages", fallback+`}`, key)
	if resp.StatusCode != 503 || gjson.GetBytes(b, "type").Str != "error" || gjson.GetBytes(b, "error.code").Str != "no_eligible_model" {
		t.Errorf("all failed: %d %s", resp.StatusCode, b)
	}
	resetAll(s)

	// The audit log's records of Messages API decisions replay to the
	// same explanation: the API is part of what was recorded.
	s.Stop("stellwerk")
	for _, id := range decisions {
		if out, code := replayCLI(t, filepath.Join(s.Dir, "stellwerk.yaml"), id); code != 0 || !out.Identical {
			t.Errorf("replay %s: exit %d %+v", id, code, out)
		}
	}
}

// messagesCase is a model the Python client pins, its provider, and what
// that provider must get.
type messagesCase struct {
	model, provider, upstreamPath, upstreamModel string
}

var messagesCases = []messagesCase{
	{"claude-model", "claude", "/v1/messages", "claude-upstream"},
	{"chat-us", "alpha", "/v1/chat/completions", "alpha-chat"},
}

// TestMessagesWithoutFailover is TestMessagesAnthropicSDK with failover
// off (failover.max_attempts: 1): the edge filter itself sends the
// request and translates the answer and the stream back.
func TestMessagesWithoutFailover(t *testing.T) {
	t.Parallel()
	py := harness.RequirePythonPackage(t, "anthropic")
	s := messagesStack(t, func(c *config.Config) { c.Failover.MaxAttempts = 1 })
	for _, tc := range messagesCases {
		t.Run(tc.provider, func(t *testing.T) { checkMessages(t, s, py, tc) })
	}
}

// TestMessagesReadsWhatTranslationDrops: what an Anthropic-wire provider
// gets as sent and the chat translation has no field for (citations,
// cache_control) is classified too; a translating provider never gets
// the decision copy's unread member; a member of a tool result's text
// block that would be dropped is refused.
func TestMessagesReadsWhatTranslationDrops(t *testing.T) {
	t.Parallel()
	s := messagesStack(t, nil)
	send := func(body string, status int) []byte {
		t.Helper()
		resp, b := post(t, s.URL+"/v1/messages", body, map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"})
		if resp.StatusCode != status {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
		return b
	}
	cited := `{"type":"text","text":"ok","citations":[{"type":"char_location","cited_text":"%s","document_index":0,"start_char_index":0,"end_char_index":2}]}`
	// A secret in a citation, to the Anthropic-wire model that gets it.
	b := send(`{"model":"claude-model","max_tokens":50,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[`+
		strings.Replace(cited, "%s", "AKIAIOSFODNN7EXAMPLE", 1)+`]},{"role":"user","content":"go on"}]}`, 403)
	if gjson.GetBytes(b, "error.type").Str != "permission_error" {
		t.Errorf("a secret in a citation: %s", b)
	}
	// An IBAN in a system block's citation, or an address in cache_control's
	// ttl, is restricted: no US model (the EU ones lack the assurance
	// tier it needs).
	resp, b := post(t, s.URL+"/v1/messages", `{"model":"auto","max_tokens":50,"system":[`+strings.Replace(cited, "%s", "DE89 3704 0044 0532 0130 00", 1)+
		`],"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"jan.kowalski@example.de"}}]}]}`,
		map[string]string{"Authorization": "Bearer sk-app"})
	if resp.StatusCode != 503 || !strings.Contains(gjson.GetBytes(b, "error.message").Str, "restricted data requires eu") {
		t.Errorf("restricted data in a citation: %d %s", resp.StatusCode, b)
	}
	// Translated for an OpenAI-wire model: the provider gets chat, without
	// what the classifiers read of the blocks.
	send(`{"model":"chat-us","max_tokens":50,"tools":[{"name":"t","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],`+
		`"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}`, 200)
	for name, p := range s.Providers {
		for _, rq := range p.Requests() {
			if strings.Contains(string(rq.Body), "x_stellwerk_unread") {
				t.Errorf("%s got the decision copy's unread member: %s", name, rq.Body)
			}
		}
	}
	if n := len(s.Providers["alpha"].Requests()); n != 1 {
		t.Errorf("chat-us got %d requests, want 1", n)
	}
	// A member the translation has no field for: read (a secret in it is
	// found), and only an Anthropic-wire model may take it.
	send(`{"model":"chat-us","max_tokens":50,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"t","input":{}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"r","x":"AKIAIOSFODNN7EXAMPLE"}]}]}]}`, 403)
	b = send(`{"model":"chat-us","max_tokens":50,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"t","input":{}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"r","x":"y"}]}]}]}`, 400)
	if p := gjson.GetBytes(b, "error.message").Str; gjson.GetBytes(b, "error.code").Str != "model_unsuitable" || !strings.Contains(p, "messages[1].content[0].content[0].x") {
		t.Errorf("an unknown member of a tool result's text block: %s", b)
	}
}

// checkMessages runs e2e/clients/python/messages.py on one model and
// checks what the SDK saw and what the provider got.
func checkMessages(t *testing.T, s *harness.Stack, py string, tc messagesCase) gjson.Result {
	t.Helper()
	resetAll(s)
	cmd := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "messages.py"), s.URL, tc.model)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python client failed: %v\n%s\n%s", err, out, stderr)
	}
	r := gjson.ParseBytes(out)
	t.Logf("anthropic %s", r.Get("sdk_version").Str)
	want := func(path, value string) {
		t.Helper()
		if got := r.Get(path); got.String() != value {
			t.Errorf("%s = %s, want %s", path, got.Raw, value)
		}
	}
	// messages.create: a tool_use block with the schema's required
	// input, usage, the headers and the routing object.
	want("tool_use.type", "message")
	want("tool_use.stop_reason", "tool_use")
	want("tool_use.blocks.#(type==\"tool_use\").name", "get_weather")
	want("tool_use.blocks.#(type==\"tool_use\").input.city", "example")
	want("tool_use.headers.model", tc.model)
	want("tool_use.headers.provider", tc.provider)
	want("tool_use.routing.model", tc.model)
	if r.Get("tool_use.input_tokens").Int() == 0 || r.Get("tool_use.output_tokens").Int() == 0 ||
		r.Get("tool_use.routing.cost.amount").Float() == 0 || len(r.Get("tool_use.headers.decision-id").Str) != 32 {
		t.Errorf("usage, cost or decision id missing: %s", r.Get("tool_use").Raw)
	}
	// The tool result back: a text answer.
	want("answer.stop_reason", "end_turn")
	if !strings.HasPrefix(r.Get("answer.text").Str, "Hello from "+tc.provider) {
		t.Errorf("answer %s", r.Get("answer").Raw)
	}
	// messages.stream: the text the events carried is the final
	// message's, with its usage; tool_use rebuilt from the deltas.
	want("stream.text", "Hello from "+tc.provider+". You said: stream a short answer")
	want("stream.final_text", r.Get("stream.text").Str)
	want("stream.stop_reason", "end_turn")
	want("stream.headers.model", tc.model)
	if r.Get("stream.output_tokens").Int() == 0 {
		t.Errorf("stream usage: %s", r.Get("stream").Raw)
	}
	want("stream_tool_use.stop_reason", "tool_use")
	want("stream_tool_use.blocks.#(type==\"tool_use\").input.city", "example")
	want("stream_parallel.stop_reason", "tool_use")
	want("stream_parallel.blocks.#(type==\"tool_use\")#.name", `["get_weather","get_time"]`)
	want("stream_parallel.blocks.#(name==\"get_weather\").input.city", "example")
	want("stream_parallel.blocks.#(name==\"get_time\").input.tz", "example")
	// Refusals, as the SDK raises them.
	want("secret.raised", "PermissionDeniedError")
	want("secret.type", "permission_error")
	want("secret.code", "policy_denied")
	want("secret_stream.raised", "PermissionDeniedError")
	if tc.provider == "claude" { // an Anthropic-wire model takes it as sent
		want("thinking.raised", "")
	} else {
		want("thinking.raised", "BadRequestError")
		want("thinking.type", "invalid_request_error")
		want("thinking.code", "model_unsuitable")
	}
	want("bad_key.raised", "AuthenticationError")
	want("bad_key.type", "authentication_error")
	want("bearer.stop_reason", "end_turn")
	// The SDK's request id (Anthropic's request-id header): it was None.
	if r.Get("bearer.request_id").Str == "" {
		t.Errorf("no request id for the anthropic SDK: %s", r.Get("bearer").Raw)
	}
	want("bearer.headers.model", tc.model)
	// Residency: the EU workspace's auto requests, plain and streamed.
	want("eu.headers.model", "chat-eu")
	want("eu.residency", "eu")
	want("eu_stream.headers.model", "chat-eu")
	want("eu_stream.stop_reason", "tool_use")

	// count_tokens: answered by stellwerk (no provider got one: the
	// paths below), more for the longer request, the same on the beta
	// path; refusals in Anthropic's shape. It was 404.
	if small, big := r.Get("count.small").Int(), r.Get("count.big").Int(); small <= 0 || big <= small+50 ||
		r.Get("count.beta").Int() != big || r.Get("count.request_id").Str == "" {
		t.Errorf("count_tokens: %s", r.Get("count").Raw)
	}
	t.Logf("count_tokens %s", r.Get("count").Raw)
	want("count_unknown_model.raised", "NotFoundError")
	want("count_unknown_model.code", "model_not_found")
	want("count_typo.raised", "BadRequestError")
	want("count_bad_key.raised", "AuthenticationError")

	// What the provider got: its own path, model name and key, never
	// the client's key or anthropic headers it did not need.
	reqs := s.Providers[tc.provider].Requests()
	if len(reqs) == 0 {
		t.Fatal("the provider got no request")
	}
	for _, rq := range reqs {
		if !strings.HasSuffix(rq.Path, tc.upstreamPath) || gjson.GetBytes(rq.Body, "model").Str != tc.upstreamModel {
			t.Errorf("upstream %s with %s", rq.Path, rq.Body)
		}
		key := rq.Header.Get("Authorization")
		if tc.provider == "claude" {
			key = rq.Header.Get("x-api-key")
		} else if rq.Header.Get("x-api-key") != "" || rq.Header.Get("anthropic-version") != "" {
			t.Errorf("an OpenAI-wire provider got Anthropic headers: %v", rq.Header)
		}
		if strings.Contains(key, "sk-app") || !strings.Contains(key, "sk-"+tc.provider) {
			t.Errorf("provider key %q", key)
		}
	}
	if tc.provider == "alpha" {
		// Translated: tools as functions, the tool result as a tool message.
		var sawTool bool
		for _, rq := range reqs {
			b := gjson.ParseBytes(rq.Body)
			if b.Get("tools.0.function.name").Str == "get_weather" && b.Get(`messages.#(role=="tool").content`).Str == "sunny, 21 degrees" {
				sawTool = true
			}
			if b.Get("stream").Bool() && !b.Get("stream_options.include_usage").Bool() {
				t.Errorf("streamed without usage: %s", rq.Body)
			}
		}
		if !sawTool {
			t.Error("no translated request carried the tool result")
		}
	} else if b := gjson.ParseBytes(reqs[0].Body); b.Get("system").Str != "You are brief." || b.Get("tools.0.input_schema").Raw == "" {
		// Natively: the request as the SDK sent it.
		t.Errorf("native request %s", reqs[0].Body)
	}
	return r
}

// TestMessagesEnvoyRepliesInAnthropicShape: what Envoy answers itself on
// /v1/messages — a body over the limit, stellwerk unreachable — comes in
// Anthropic's error shape, which the anthropic SDKs read; on the chat path
// the same replies stay in OpenAI's.
func TestMessagesEnvoyRepliesInAnthropicShape(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Envoy.MaxRequestBytes = 64 << 10 }})
	big := `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a", 70<<10) + `"}]}`
	check := func(path, wantType, wantCode string, status int) {
		t.Helper()
		resp, b := post(t, s.URL+path, big, map[string]string{"anthropic-version": "2023-06-01"})
		var e struct {
			Type  string `json:"type"`
			Error struct{ Type, Code, Message string }
		}
		mustJSON(t, b, &e)
		anthropic := path == "/v1/messages"
		if resp.StatusCode != status || e.Error.Code != wantCode || e.Error.Type != wantType || (e.Type == "error") != anthropic {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
		// Nothing was sent: retryable, in a second (a restart takes less;
		// there was no Retry-After: the capacity probe).
		if ra := resp.Header.Get("retry-after"); (wantCode == "router_unavailable") != (ra == "1") {
			t.Errorf("%s: %d retry-after %q", path, resp.StatusCode, ra)
		}
	}
	check("/v1/messages", "request_too_large", "request_too_large", 413)
	check("/v1/chat/completions", "invalid_request_error", "request_too_large", 413)
	s.Stop("stellwerk")
	big = `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	check("/v1/messages", "api_error", "router_unavailable", 503)
	check("/v1/chat/completions", "server_error", "router_unavailable", 503)
}

// TestRouterKilledMidAnswer: stellwerk killed while a provider answers: the
// client is not told the request was never sent (it may have been
// processed and billed; found by a helper killing a replica); a request
// after the kill is.
func TestRouterKilledMidAnswer(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	s.Providers["alpha"].SetBehavior(mockllm.Behavior{FirstByteDelay: 3 * time.Second})
	type answer struct {
		status int
		body   []byte
		retry  string
	}
	done := make(chan answer, 1)
	go func() {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
		done <- answer{resp.StatusCode, b, resp.Header.Get("x-should-retry")}
	}()
	waitFor(t, "the provider to get the request", func() bool { return len(s.Providers["alpha"].Requests()) == 1 })
	s.Kill("stellwerk")
	a := <-done
	e := decodeError(t, a.body)
	// Not to be sent again by the SDKs: it may have been processed (the
	// fleet probe saw them retry it).
	if a.status != 503 || e.Error.Code != "router_unavailable" || !strings.Contains(e.Error.Message, "after the request was sent to a provider") || a.retry != "false" {
		t.Errorf("in flight: %d x-should-retry %q %s", a.status, a.retry, a.body)
	}
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
	if e := decodeError(t, b); resp.StatusCode != 503 || !strings.Contains(e.Error.Message, "not sent to any provider") || resp.Header.Get("x-should-retry") != "" {
		t.Errorf("after the kill: %d x-should-retry %q %s", resp.StatusCode, resp.Header.Get("x-should-retry"), b)
	}
}

// TestMessagesWithoutUsage: a chat model that reports no usage serves a
// Messages API request — the edge translating it (no failover) and the
// egress listener (failover). The answer carries a usage object the SDKs
// read, and the spend ledger charges the request's worst case, estimated:
// the translation's zeros had made it free, and a block budget never
// filled.
func TestMessagesWithoutUsage(t *testing.T) {
	t.Parallel()
	onEdgeAndEgress(t, func(t *testing.T, s *harness.Stack) {
		start := time.Now().Add(-time.Minute).UTC()
		resp, b := post(t, s.URL+"/v1/messages", `{"model":"chat-us","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01", "x-mock-no-usage": "1"})
		if resp.StatusCode != 200 || gjson.GetBytes(b, "type").Str != "message" || !gjson.GetBytes(b, "usage.input_tokens").Exists() {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		total := spendSince(t, s, start)
		// chat-us: 1 and 2 USD per million tokens; the worst case is
		// max_tokens' 1,000 output tokens at least (1,840 µEUR).
		if total.Get("requests").Int() != 1 || total.Get("estimated").Int() != 1 || total.Get("cost_micro_eur").Int() < 1840 {
			t.Errorf("spend %s: want the worst case, estimated", total.Raw)
		}
	})
}

// TestMessagesNativeFeatures: what only an Anthropic-wire provider can take
// — extended thinking (and its blocks in the history), an image or a PDF
// in a tool result, a document block, output_config — reaches one as sent,
// classified: a coding agent with thinking on, or reading a screenshot,
// got 400 whatever model it named (the agent probe). auto chooses among
// Anthropic-wire models only; a pinned OpenAI-wire model is unsuitable,
// saying why; a secret in the thinking text or a document is found.
func TestMessagesNativeFeatures(t *testing.T) {
	t.Parallel()
	s := messagesStack(t, nil)
	send := func(body string, status int) (*http.Response, []byte) {
		t.Helper()
		resp, b := post(t, s.URL+"/v1/messages", body, map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"})
		if resp.StatusCode != status {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
		return resp, b
	}
	const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	thinking := `{"model":"MODEL","max_tokens":3000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[` +
		`{"role":"user","content":"read the screenshot"},` +
		`{"role":"assistant","content":[{"type":"thinking","thinking":"THOUGHT","signature":"c2ln"},{"type":"tool_use","id":"t1","name":"Read","input":{"path":"a.png"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}}]}]}]}`
	body := func(model, thought string) string {
		return strings.Replace(strings.Replace(thinking, "MODEL", model, 1), "THOUGHT", thought, 1)
	}
	for _, model := range []string{"claude-model", "auto"} {
		resp, b := send(body(model, "the user wants the file read"), 200)
		if resp.Header.Get("x-stellwerk-model") != "claude-model" || gjson.GetBytes(b, "type").Str != "message" {
			t.Errorf("%s: served by %q: %s", model, resp.Header.Get("x-stellwerk-model"), b)
		}
	}
	got := s.Providers["claude"].Requests()
	if len(got) != 2 || gjson.GetBytes(got[0].Body, "thinking.budget_tokens").Int() != 2000 ||
		gjson.GetBytes(got[0].Body, "messages.1.content.0.signature").Str != "c2ln" ||
		gjson.GetBytes(got[0].Body, "messages.2.content.0.content.0.type").Str != "image" {
		t.Fatalf("the Anthropic-wire provider got %d requests: %s", len(got), got[0].Body)
	}
	_, b := send(body("chat-us", "fine"), 400)
	if gjson.GetBytes(b, "error.code").Str != "model_unsuitable" || !strings.Contains(gjson.GetBytes(b, "error.message").Str, "cannot carry thinking") {
		t.Errorf("thinking on an OpenAI-wire model: %s", b)
	}
	// Read for the classifiers: the thinking text, a document's text.
	send(body("auto", "the key is AKIAIOSFODNN7EXAMPLE"), 403)
	send(`{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"my key AKIAIOSFODNN7EXAMPLE"}},{"type":"text","text":"summarise"}]}]}`, 403)
	send(`{"model":"claude-model","max_tokens":100,"messages":[{"role":"user","content":"hi","x_note":"AKIAIOSFODNN7EXAMPLE"}]}`, 403)
	// A server tool's fetched document in the history (the red-team
	// probe's second round: it reached the provider unread).
	send(`{"model":"claude-model","max_tokens":100,"messages":[{"role":"user","content":"fetch"},{"role":"assistant","content":[{"type":"web_fetch_tool_result","tool_use_id":"s","content":{"type":"web_fetch_result","url":"https://x.example/a","content":{"type":"document","source":{"type":"base64","media_type":"text/plain","data":"QUtJQUlPU0ZPRE5ON0VYQU1QTEU="}}}}]},{"role":"user","content":"summarise"}]}`, 403)
	// An image by file id (Anthropic's Files API) goes to the provider
	// holding the file, as sent; it was a 400 whatever the model.
	image := `{"model":"MODEL","max_tokens":100,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"file_011CNha8iCJcU1wXNR6q4V8w"}},{"type":"text","text":"Describe"}]}]}`
	if resp, b := send(strings.Replace(image, "MODEL", "auto", 1), 200); resp.Header.Get("x-stellwerk-model") != "claude-model" {
		t.Errorf("an image by file id: %s", b)
	}
	if got := s.Providers["claude"].Requests(); gjson.GetBytes(got[len(got)-1].Body, "messages.0.content.0.source.file_id").Str != "file_011CNha8iCJcU1wXNR6q4V8w" {
		t.Errorf("the provider got %s", got[len(got)-1].Body)
	}
	if _, b := send(strings.Replace(image, "MODEL", "chat-us", 1), 400); gjson.GetBytes(b, "error.code").Str != "model_unsuitable" {
		t.Errorf("an image by file id to an OpenAI-wire model: %s", b)
	}
	// count_tokens counts a PDF by its pages, each its text and image
	// (the multimodal probe: a 500 KB PDF counted 7 tokens).
	pdf := func(pages int) string {
		var b strings.Builder
		b.WriteString("%PDF-1.4\n2 0 obj <</Type /Pages /Count " + fmt.Sprint(pages) + ">> endobj\n")
		for i := range pages {
			fmt.Fprintf(&b, "%d 0 obj <</Type /Page /Parent 2 0 R>> endobj\n", 3+i)
		}
		return base64.StdEncoding.EncodeToString([]byte(b.String() + "%%EOF"))
	}
	count := func(pages int) int64 {
		resp, b := post(t, s.URL+"/v1/messages/count_tokens", `{"model":"auto","messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"`+pdf(pages)+`"}},{"type":"text","text":"Summarise"}]}]}`,
			map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"})
		if resp.StatusCode != 200 {
			t.Fatalf("count_tokens: %d %s", resp.StatusCode, b)
		}
		return gjson.GetBytes(b, "input_tokens").Int()
	}
	if three, six := count(3), count(6); six-three != 3*(1500+config.DefaultImageTokens) || three < 3*(1500+config.DefaultImageTokens) {
		t.Errorf("count_tokens of a PDF of 3 pages %d, of 6 pages %d", three, six)
	}
	// Off, thinking asks for nothing: any model may serve it.
	if resp, b := send(`{"model":"chat-us","max_tokens":100,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"hi"}]}`, 200); resp.Header.Get("x-stellwerk-model") != "chat-us" {
		t.Errorf("thinking disabled: %s", b)
	}
	// A member no API has is still refused, whatever the model.
	if _, b := send(`{"model":"claude-model","max_tokens":100,"temprature":0.5,"messages":[{"role":"user","content":"hi"}]}`, 400); gjson.GetBytes(b, "error.param").Str != "temprature" {
		t.Errorf("a typo: %s", b)
	}
	if n := len(s.Providers["alpha"].Requests()) + len(s.Providers["beta"].Requests()); n != 1 {
		t.Errorf("the OpenAI-wire providers got %d requests, want the one without thinking", n)
	}
}

// TestMessagesCutToolCall: an OpenAI-wire model's tool call cut off at
// max_tokens (its arguments end mid-JSON), asked for on /v1/messages, is a
// tool_use with an empty input and stop_reason max_tokens, charged at the
// provider's usage — on the edge's translation and an egress attempt's.
// It was 502 "answered with success but an empty body", charged nothing
// (the agent probe: an agent writing a file with too small a max_tokens).
func TestMessagesCutToolCall(t *testing.T) {
	t.Parallel()
	onEdgeAndEgress(t, func(t *testing.T, s *harness.Stack) {
		start := time.Now().Add(-time.Minute).UTC()
		resp, b := post(t, s.URL+"/v1/messages", `{"model":"chat-us","max_tokens":20,"messages":[{"role":"user","content":"write a.go"}],`+
			`"tools":[{"name":"Write","input_schema":{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}}}}]}`,
			map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01", "x-mock-cut-tool-call": "1"})
		if resp.StatusCode != 200 || gjson.GetBytes(b, "stop_reason").Str != "max_tokens" || gjson.GetBytes(b, "content.0.type").Str != "tool_use" ||
			gjson.GetBytes(b, "content.0.input").Raw != "{}" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		total := spendSince(t, s, start)
		if total.Get("requests").Int() != 1 || total.Get("estimated").Int() != 0 || total.Get("tokens_out").Int() == 0 {
			t.Errorf("spend %s: want the provider's usage", total.Raw)
		}
	})
}

// TestMessagesBlankTextSentBack: a Messages client's tool call answered by
// an OpenAI-wire model whose answer carries whitespace beside its calls
// ("\n\n"), whole and streamed, has no text block of whitespace; sent back
// in the history to an Anthropic-wire model, it is taken. Anthropic
// refuses a blank text block ("text content blocks must contain
// non-whitespace text"), which failed every later turn of a Claude Code
// session served once by an OpenAI-wire model.
func TestMessagesBlankTextSentBack(t *testing.T) {
	t.Parallel()
	const tools = `"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]`
	onEdgeAndEgress(t, func(t *testing.T, s *harness.Stack) {
		for _, stream := range []bool{false, true} {
			headers := map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01", "x-mock-blank-text": "1"}
			resp, b := post(t, s.URL+"/v1/messages", `{"model":"chat-us","max_tokens":50,"stream":`+strconv.FormatBool(stream)+`,`+tools+
				`,"messages":[{"role":"user","content":"weather in Oslo?"}]}`, headers)
			content := gjson.GetBytes(b, "content").Raw
			if stream {
				content = streamedContent(t, b)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("stream %v: %d %s", stream, resp.StatusCode, b)
			}
			if gjson.Get(content, "#").Int() != 1 || gjson.Get(content, "0.type").Str != "tool_use" {
				t.Errorf("stream %v: content %s, want the tool_use alone", stream, content)
			}
			history := `[{"role":"user","content":"weather in Oslo?"},{"role":"assistant","content":` + content + `},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":` + strconv.Quote(gjson.Get(content, `#(type=="tool_use").id`).Str) + `,"content":"sunny"}]}]`
			if resp, b := post(t, s.URL+"/v1/messages", `{"model":"claude-model","max_tokens":50,`+tools+`,"messages":`+history+`}`, headers); resp.StatusCode != 200 {
				t.Errorf("stream %v: the answer sent back to an Anthropic-wire model: %d %s", stream, resp.StatusCode, b)
			}
		}
	})
}

// streamedContent is the content a Messages stream's events build, as
// the SDKs assemble it.
func streamedContent(t *testing.T, stream []byte) string {
	t.Helper()
	var blocks []map[string]any
	inputs := map[int]string{}
	for _, ev := range readSSE(t, bytes.NewReader(stream)) {
		d := gjson.Parse(ev.data)
		i := int(d.Get("index").Int())
		switch d.Get("type").Str {
		case "content_block_start":
			if i != len(blocks) {
				t.Fatalf("block %d opened after %d blocks:\n%s", i, len(blocks), stream)
			}
			blocks = append(blocks, d.Get("content_block").Value().(map[string]any))
		case "content_block_delta":
			if d.Get("delta.type").Str == "text_delta" {
				blocks[i]["text"] = blocks[i]["text"].(string) + d.Get("delta.text").Str
			} else {
				inputs[i] += d.Get("delta.partial_json").Str
			}
		}
	}
	for i, in := range inputs {
		blocks[i]["input"] = json.RawMessage(in)
	}
	b, err := json.Marshal(blocks)
	if err != nil {
		t.Fatalf("%v:\n%s", err, stream)
	}
	return string(b)
}

// onEdgeAndEgress runs f in parallel on a Messages stack where the edge
// filter itself sends and translates (failover off) and on one where an
// egress attempt does (failover on).
func onEdgeAndEgress(t *testing.T, f func(t *testing.T, s *harness.Stack)) {
	for name, attempts := range map[string]int{"edge": 1, "egress": 0} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, messagesStack(t, func(c *config.Config) {
				if attempts > 0 {
					c.Failover.MaxAttempts = attempts
				}
			}))
		})
	}
}

// spendSince is GET /admin/spend's total from since on, once the spend
// ledger has a row (it is written within a second), or after 10 s.
func spendSince(t *testing.T, s *harness.Stack, since time.Time) gjson.Result {
	t.Helper()
	rangeQ := "since=" + since.Format(time.RFC3339) + "&until=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		get, err := s.AdminGet("/admin/spend?" + rangeQ)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(get.Body)
		get.Body.Close()
		total := gjson.GetBytes(body, "total")
		if total.Get("requests").Int() > 0 || time.Now().After(deadline) {
			return total
		}
	}
}

// TestOutputLimitNamedForTheProvider: a request's output limit reaches each
// OpenAI-wire provider under the name it reads (providers[].max_tokens_param)
// — from a chat request as the client named it, and from a Messages or
// Responses request translated to chat. Every translated request carried
// max_completion_tokens, which Mistral refuses with a 422 (the SDK probe of
// 2026-12-07).
func TestOutputLimitNamedForTheProvider(t *testing.T) {
	t.Parallel()
	s := messagesStack(t, func(c *config.Config) {
		c.Providers[0].MaxTokensParam = "max_completion_tokens" // alpha reads OpenAI's name; beta the default for other hosts
	})
	for _, tc := range []struct{ path, body, provider, want string }{
		{"/v1/messages", `{"model":"chat-eu","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, "beta", "max_tokens"},
		{"/v1/chat/completions", `{"model":"chat-eu","max_completion_tokens":40,"messages":[{"role":"user","content":"hi"}]}`, "beta", "max_tokens"},
		{"/v1/responses", `{"model":"chat-eu","max_output_tokens":20,"input":"hi"}`, "beta", "max_tokens"},
		{"/v1/chat/completions", `{"model":"chat-us","max_tokens":30,"messages":[{"role":"user","content":"hi"}]}`, "alpha", "max_completion_tokens"},
	} {
		resetProviders(s)
		resp, b := post(t, s.URL+tc.path, tc.body, map[string]string{"Authorization": "Bearer sk-app"})
		rs := s.Providers[tc.provider].Requests()
		if resp.StatusCode != 200 || len(rs) != 1 {
			t.Errorf("%s %s: %d, %d requests: %.300s", tc.path, tc.body, resp.StatusCode, len(rs), b)
			continue
		}
		var limit int64
		for _, name := range []string{"max_tokens", "max_completion_tokens", "max_output_tokens"} {
			limit += gjson.Get(tc.body, name).Int()
		}
		other := "max_tokens"
		if tc.want == other {
			other = "max_completion_tokens"
		}
		if got := gjson.GetBytes(rs[0].Body, tc.want).Int(); got != limit || gjson.GetBytes(rs[0].Body, other).Exists() {
			t.Errorf("%s %s: %s got %s", tc.path, tc.body, tc.provider, rs[0].Body)
		}
	}
}

// TestMessagesLongToolNames: a Messages client's tools named with more
// than 64 characters (Claude Code's MCP tools, mcp__<server>__<tool>),
// which OpenAI's API refuses ("string too long"), reach an OpenAI-wire
// model under short names — in tools, tool_choice and the history's
// tool calls alike — and the tool call it answers names the tool as the
// client does, whole and streamed. Two names with a common prefix stay
// two tools: tool_choice picks the second.
func TestMessagesLongToolNames(t *testing.T) {
	t.Parallel()
	const prefix = "mcp__github_enterprise_server__create_pull_request_review_comment_reply"
	const first, second = prefix + "_v1", prefix + "_v2"
	schema := `"input_schema":{"type":"object","properties":{"body":{"type":"string"}},"required":["body"]}`
	body := func(stream bool) string {
		return `{"model":"chat-us","max_tokens":50,"stream":` + strconv.FormatBool(stream) + `,"tools":[` +
			`{"name":"Read",` + schema + `},{"name":"` + first + `",` + schema + `},{"name":"` + second + `",` + schema + `}],` +
			`"tool_choice":{"type":"tool","name":"` + second + `"},"messages":[{"role":"user","content":"review it"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"` + first + `","input":{"body":"lgtm"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"posted"},{"type":"text","text":"now reply"}]}]}`
	}
	onEdgeAndEgress(t, func(t *testing.T, s *harness.Stack) {
		for _, stream := range []bool{false, true} {
			resp, b := post(t, s.URL+"/v1/messages", body(stream), map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"})
			if resp.StatusCode != 200 {
				t.Fatalf("stream %v: %d %s", stream, resp.StatusCode, b)
			}
			content := gjson.GetBytes(b, "content").Raw
			if stream {
				content = streamedContent(t, b)
			}
			if gjson.Get(content, "#").Int() != 1 || gjson.Get(content, "0.type").Str != "tool_use" || gjson.Get(content, "0.name").Str != second {
				t.Errorf("stream %v: content %s, want a call of %s", stream, content, second)
			}
		}
	})
}

// TestMessagesStrictAndEagerTools: a tool's strict and eager_input_streaming
// (which the Vercel AI SDK sends on every tool of a stream) no longer keep a
// Messages request off OpenAI-wire models: strict becomes chat's
// function.strict, the hint is dropped. auto chose the dearest Anthropic
// model for them, and a pinned OpenAI-wire model answered 400 (the
// frameworks probe of 2026-12-07).
func TestMessagesStrictAndEagerTools(t *testing.T) {
	t.Parallel()
	s := messagesStack(t, nil)
	schema := `"input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`
	for _, model := range []string{"auto", "chat-us"} {
		body := `{"model":"` + model + `","max_tokens":50,"stream":true,"tools":[{"name":"weather","strict":true,"eager_input_streaming":true,` + schema +
			`}],"messages":[{"role":"user","content":"weather in Oslo?"}]}`
		resp, b := post(t, s.URL+"/v1/messages", body, map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"})
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "chat-us" {
			t.Errorf("%s: %d on %q: %.300s", model, resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
		}
	}
	reqs := s.Providers["alpha"].Requests()
	if len(reqs) != 2 {
		t.Fatalf("alpha got %d requests", len(reqs))
	}
	for _, rq := range reqs {
		if f := gjson.GetBytes(rq.Body, "tools.0.function"); !f.Get("strict").Bool() || f.Get("eager_input_streaming").Exists() || gjson.GetBytes(rq.Body, "tools.0.eager_input_streaming").Exists() {
			t.Errorf("the provider got %s", gjson.GetBytes(rq.Body, "tools").Raw)
		}
	}
}
