package mockllm

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAnthropicMessages(t *testing.T) {
	srv := httptest.NewServer(New("claude-fake", "k"))
	defer srv.Close()
	for _, stream := range []bool{false, true} {
		body := `{"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"hi there"}]`
		if stream {
			body += `,"stream":true`
		}
		body += `}`
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", "k")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		want := `"text":"Hello from claude-fake. You said: hi there"`
		if stream {
			want = "event: message_stop"
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("stream=%v: %s", stream, b)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(`{}`))
	req.Header.Set("x-api-key", "wrong")
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != 401 {
		t.Errorf("wrong key: %d", resp.StatusCode)
	}
}

// TestTruncatedStreams: "truncate" ends a stream cleanly after its first
// chunk, in both wire formats, without the event that marks its end.
func TestTruncatedStreams(t *testing.T) {
	srv := httptest.NewServer(New("p", "k"))
	defer srv.Close()
	for path, end := range map[string]string{"/v1/chat/completions": "[DONE]", "/v1/messages": "message_stop"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path,
			strings.NewReader(`{"model":"x","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"one two three"}]}`))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set("x-api-key", "k")
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("x-mock-reset", "truncate")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body) // a clean end: no read error
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), `"Hello"`) || strings.Contains(string(b), end) ||
			strings.Contains(string(b), "You said") || !strings.HasSuffix(string(b), "\n\n") {
			t.Errorf("%s: %d %v %q", path, resp.StatusCode, err, b)
		}
	}
}

// TestAnthropicToolUse: offered tools, the fake model answers with
// tool_use blocks (both tools, in parallel; one when parallel use is
// disabled), whole or streamed with input_json_delta; after a
// tool_result it answers in text.
func TestAnthropicToolUse(t *testing.T) {
	srv := httptest.NewServer(New("claude-fake", "k"))
	defer srv.Close()
	post := func(body string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("x-api-key", "k")
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	tools := `"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
		{"name":"get_time","input_schema":{"type":"object","properties":{"tz":{"type":"string"}}}}]`
	user := `"messages":[{"role":"user","content":"weather?"}]`
	whole := post(`{"model":"m","max_tokens":50,` + user + `,` + tools + `}`)
	for _, want := range []string{`"stop_reason":"tool_use"`, `"input":{"city":"example"},"name":"get_weather"`, `"name":"get_time"`} {
		if !strings.Contains(whole, want) {
			t.Errorf("answer lacks %s: %s", want, whole)
		}
	}
	one := post(`{"model":"m","max_tokens":50,` + user + `,` + tools + `,"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`)
	if strings.Contains(one, "get_time") || !strings.Contains(one, "get_weather") {
		t.Errorf("disable_parallel_tool_use: %s", one)
	}
	streamed := post(`{"model":"m","max_tokens":50,"stream":true,` + user + `,` + tools + `}`)
	for _, want := range []string{`"content_block":{"id":"toolu_`, `"type":"input_json_delta"`, `"stop_reason":"tool_use"`, "event: message_stop"} {
		if !strings.Contains(streamed, want) {
			t.Errorf("stream lacks %s: %s", want, streamed)
		}
	}
	after := post(`{"model":"m","max_tokens":50,` + tools + `,"messages":[{"role":"user","content":"weather?"},
		{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"get_weather","input":{"city":"Oslo"}}]},
		{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny"}]}]}`)
	if !strings.Contains(after, `"stop_reason":"end_turn"`) || strings.Contains(after, "tool_use") {
		t.Errorf("after a tool result: %s", after)
	}
}
