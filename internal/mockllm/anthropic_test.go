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
