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
