package e2e

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// responsesStack has a native Responses provider that keeps stored
// responses (oai, US), a native one that does not (zdr, EU), a chat-only
// OpenAI-wire provider (alpha, US) and an Anthropic-wire one (claude, EU).
func responsesStack(t *testing.T) *harness.Stack {
	price := func(in, out float64) config.Price { return config.Price{InputPerMTok: in, OutputPerMTok: out} }
	native := []string{"chat", "responses", "tools", "json_mode", "streaming"}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "oai", Key: "sk-oai"}, {Name: "zdr", Key: "sk-zdr", Residency: "eu"},
			{Name: "alpha", Key: "sk-alpha"}, {Name: "claude", Key: "sk-claude", Residency: "eu", WireFormat: "anthropic"}},
		Models: []config.Model{
			{ID: "gpt-native", Provider: "oai", ProviderModel: "gpt-up", ContextWindow: 128000, Price: price(1, 2), Capabilities: native},
			{ID: "native-eu", Provider: "zdr", ProviderModel: "gpt-eu", ContextWindow: 128000, Price: price(2, 4), Capabilities: native},
			{ID: "chat-us", Provider: "alpha", ProviderModel: "alpha-chat", ContextWindow: 128000, Price: price(0.5, 1)},
			{ID: "claude-eu", Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 200000, Price: price(3, 15),
				Capabilities: []string{"chat", "tools", "streaming"}},
		},
		DefaultModel: "gpt-native",
		Mutate: func(c *config.Config) {
			for i := range c.Providers {
				c.Providers[i].StoredResponses = c.Providers[i].Name == "oai"
			}
		},
	})
	s.Providers["oai"].StoreResponses(true)
	return s
}

// TestResponsesPythonSDK: client.responses.create and .stream with the
// official openai Python SDK through Envoy, served natively, translated to
// chat and translated to Anthropic Messages, with tools; stored responses;
// the policy denying a secret; residency.
func TestResponsesPythonSDK(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := responsesStack(t)
	checkResponses(t, s, exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "responses.py"), s.URL), "python")
}

// TestResponsesNodeSDK is TestResponsesPythonSDK with the openai npm package.
func TestResponsesNodeSDK(t *testing.T) {
	t.Parallel()
	node := harness.RequireNodeClient(t)
	s := responsesStack(t)
	checkResponses(t, s, exec.Command(node, filepath.Join(harness.Root(), "e2e", "clients", "node", "responses.mjs"), s.URL), "node")
}

func checkResponses(t *testing.T, s *harness.Stack, cmd *exec.Cmd, lang string) {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s client failed: %v\n%s\n%s", lang, err, out, stderr)
	}
	r := gjson.ParseBytes(out)
	t.Logf("%s openai %s", lang, r.Get("sdk_version").Str)
	want := func(path, value string) {
		t.Helper()
		if got := r.Get(path); got.String() != value {
			t.Errorf("%s = %s, want %s", path, got.Raw, value)
		}
	}
	textEvents := `["response.created","response.in_progress","response.output_item.added","response.content_part.added",` +
		`"response.output_text.delta","response.output_text.done","response.content_part.done","response.output_item.done","response.completed"]`
	calls := `[["get_weather",{"city":"example"}],["get_time",{"tz":"UTC"}]]`
	for model, provider := range map[string]string{"gpt-native": "oai", "chat-us": "alpha", "claude-eu": "claude"} {
		by := "by." + model + "."
		want(by+"text.headers.model", model)
		want(by+"text.headers.provider", provider)
		want(by+"text.routing_model", model)
		if !strings.Contains(r.Get(by+"text.output_text").Str, "Hello from "+provider+". You said: hello responses") ||
			r.Get(by+"text.input_tokens").Int() < 1 || r.Get(by+"text.routing_prompt_tokens").Int() != r.Get(by+"text.input_tokens").Int() ||
			r.Get(by+"text.cost_eur").Float() <= 0 {
			t.Errorf("%s text: %s", model, r.Get(by+"text").Raw)
		}
		if model != "claude-eu" { // below: what the Anthropic provider answered
			want(by+"tools", calls)
			want(by+"stream_tools", calls)
		}
		if !strings.Contains(r.Get(by+"after_tools").Str, "Hello from "+provider) {
			t.Errorf("%s after tools: %s", model, r.Get(by+"after_tools").Raw)
		}
		want(by+"stream.types", textEvents)
		want(by+"stream.status", "completed")
		if !strings.Contains(r.Get(by+"stream.output_text").Str, "Hello from "+provider+". You said: stream responses") || r.Get(by+"stream.output_tokens").Int() < 1 {
			t.Errorf("%s stream: %s", model, r.Get(by+"stream").Raw)
		}
	}
	want("by.gpt-native.json", `{"city":"example"}`)
	want("by.chat-us.json", `{"city":"example"}`)

	// Stored responses: served by the provider that keeps them; the fake
	// provider answers a previous_response_id it does not know with a 404,
	// so a 200 proves the id reached the provider that stored it.
	want("stored.headers.model", "gpt-native")
	if r.Get("stored.input_tokens").Int() <= r.Get("stored.first_input_tokens").Int() || !strings.Contains(r.Get("stored_stream").Str, "Hello from oai") {
		t.Errorf("stored: %s %s", r.Get("stored").Raw, r.Get("stored_stream").Raw)
	}
	for _, k := range []string{"stored_chat", "stored_anthropic", "stored_not_kept"} {
		want(k+".status", "400")
		want(k+".code", "model_unsuitable")
	}
	if !strings.Contains(r.Get("stored_chat.message").Str, "previous_response_id needs a provider that serves the Responses API natively") ||
		!strings.Contains(r.Get("stored_not_kept.message").Str, "provider zdr keeps no stored responses") {
		t.Errorf("reasons: %s / %s", r.Get("stored_chat.message").Str, r.Get("stored_not_kept.message").Str)
	}
	want("stored_eu.status", "503")
	want("stored_eu.code", "no_eligible_model")

	for _, k := range []string{"secret", "secret_native", "secret_tool_output"} {
		want(k+".status", "403")
		want(k+".code", "policy_denied")
	}
	want("eu.residency", "eu")
	if p := r.Get("eu.headers.provider").Str; p != "zdr" && p != "claude" || !strings.Contains(r.Get("eu_stream").Str, "Hello from "+p) {
		t.Errorf("eu: %s %s", r.Get("eu").Raw, r.Get("eu_stream").Raw)
	}

	// What the providers received: the Responses API itself at the native
	// ones, chat completions and Anthropic Messages at the others, the
	// upstream model names, never the secret.
	for name, wantPath := range map[string]string{"oai": "/v1/responses", "zdr": "/v1/responses", "alpha": "/v1/chat/completions", "claude": "/v1/messages"} {
		for _, rq := range s.Providers[name].Requests() {
			if rq.Path != wantPath {
				t.Errorf("%s got %s", name, rq.Path)
			}
			if strings.Contains(string(rq.Body), "AKIAIOSFODNN7EXAMPLE") {
				t.Errorf("%s received the secret: %s", name, rq.Body)
			}
			if gjson.GetBytes(rq.Body, "policy").Exists() {
				t.Errorf("%s received stellwerk's policy: %s", name, rq.Body)
			}
		}
	}
	var native, previous int
	for _, rq := range s.Providers["oai"].Requests() {
		native++
		if gjson.GetBytes(rq.Body, "model").Str != "gpt-up" {
			t.Errorf("oai got model %s", gjson.GetBytes(rq.Body, "model").Raw)
		}
		if gjson.GetBytes(rq.Body, "previous_response_id").Exists() {
			previous++
		}
	}
	if native < 7 || previous != 2 {
		t.Errorf("oai: %d requests, %d with previous_response_id", native, previous)
	}

	// The Anthropic provider got the function tools in its own shape; the
	// client saw exactly the tool calls it answered with (asked again
	// here, the fake provider being deterministic).
	var toolsReq []byte
	for _, rq := range s.Providers["claude"].Requests() {
		b := gjson.ParseBytes(rq.Body)
		if b.Get("tools.1.input_schema").Exists() && !b.Get("stream").Bool() && !strings.Contains(string(rq.Body), "tool_result") {
			toolsReq = rq.Body
		}
	}
	if toolsReq == nil {
		t.Fatal("claude never got the tools as Anthropic tools")
	}
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest("POST", "/v1/messages", bytes.NewReader(toolsReq))
	hr.Header.Set("x-api-key", "sk-claude")
	hr.Header.Set("anthropic-version", "2023-06-01")
	s.Providers["claude"].ServeHTTP(rec, hr)
	var answered []any
	gjson.Get(rec.Body.String(), `content.#(type=="tool_use")#`).ForEach(func(_, u gjson.Result) bool {
		answered = append(answered, []any{u.Get("name").Str, u.Get("input").Value()})
		return true
	})
	wantCalls, _ := json.Marshal(answered)
	if answered == nil {
		wantCalls = []byte("[]")
	}
	want("by.claude-eu.tools", string(wantCalls))
	want("by.claude-eu.stream_tools", string(wantCalls))
}
