package mockllm

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func do(t *testing.T, srv *httptest.Server, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestDeterministicCompletion(t *testing.T) {
	p := New("m", "k")
	srv := httptest.NewServer(p)
	defer srv.Close()
	body := `{"model":"x","messages":[{"role":"user","content":"same question"}]}`
	var replies []string
	for range 2 {
		resp := do(t, srv, body, nil)
		var out struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Choices []struct {
				Message      struct{ Content string } `json:"message"`
				FinishReason string                   `json:"finish_reason"`
			} `json:"choices"`
			Usage Usage `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if out.Object != "chat.completion" || out.Choices[0].FinishReason != "stop" || out.Usage.TotalTokens != out.Usage.PromptTokens+out.Usage.CompletionTokens {
			t.Fatalf("shape: %+v", out)
		}
		replies = append(replies, out.ID+out.Choices[0].Message.Content)
	}
	if replies[0] != replies[1] || !strings.Contains(replies[0], "You said: same question") {
		t.Errorf("replies %q", replies)
	}
	if len(p.Requests()) != 2 {
		t.Errorf("recorded %d", len(p.Requests()))
	}
}

func TestStreamFramesAndUsage(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	for _, includeUsage := range []bool{false, true} {
		body := `{"model":"x","stream":true,"messages":[{"role":"user","content":"a b"}]}`
		if includeUsage {
			body = `{"model":"x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b"}]}`
		}
		resp := do(t, srv, body, nil)
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("content-type %q", resp.Header.Get("Content-Type"))
		}
		var datas []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				datas = append(datas, strings.TrimPrefix(l, "data: "))
			} else if l != "" {
				t.Fatalf("unexpected line %q", l)
			}
		}
		if datas[len(datas)-1] != "[DONE]" {
			t.Fatalf("no [DONE]")
		}
		hasUsage := strings.Contains(datas[len(datas)-2], `"usage"`)
		if hasUsage != includeUsage {
			t.Errorf("include_usage=%v but usage chunk present=%v", includeUsage, hasUsage)
		}
	}
}

func TestInjectedFailures(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	body := `{"model":"x","messages":[{"role":"user","content":"q"}]}`
	if r := do(t, srv, body, map[string]string{"x-mock-status": "429", "x-mock-retry-after": "3"}); r.StatusCode != 429 || r.Header.Get("Retry-After") != "3" {
		t.Errorf("429: %d %v", r.StatusCode, r.Header)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("x-mock-reset", "before")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Errorf("reset: no error")
	}
	wrongKey, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
	wrongKey.Header.Set("Authorization", "Bearer nope")
	resp, err := http.DefaultClient.Do(wrongKey)
	if err != nil || resp.StatusCode != 401 {
		t.Errorf("wrong key: %v %v", err, resp)
	}
}

// TestLongToolNameRefused: a chat request naming a function with more
// than 64 characters is refused as OpenAI refuses it; 64 are taken.
func TestLongToolNameRefused(t *testing.T) {
	srv := httptest.NewServer(New("m", "k"))
	defer srv.Close()
	tools := func(name string) string {
		return `{"model":"x","messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"ok","parameters":{}}},` +
			`{"type":"function","function":{"name":"` + name + `","parameters":{}}}]}`
	}
	if r := do(t, srv, tools(strings.Repeat("a", 64)), nil); r.StatusCode != 200 {
		t.Errorf("64 characters: %d", r.StatusCode)
	}
	r := do(t, srv, tools(strings.Repeat("a", 65)), nil)
	b, _ := io.ReadAll(r.Body)
	want := "Invalid 'tools[1].function.name': string too long. Expected a string with maximum length 64, but got a string with length 65 instead."
	if r.StatusCode != 400 || gjson.GetBytes(b, "error.message").Str != want || gjson.GetBytes(b, "error.param").Str != "tools[1].function.name" {
		t.Errorf("65 characters: %d %s", r.StatusCode, b)
	}
}

// TestRecordedUsage: the provider records what it generated, as it would
// bill it: the whole answer, the tokens a stream sent before it was cut
// short, nothing for an error.
func TestRecordedUsage(t *testing.T) {
	p := New("m", "k")
	srv := httptest.NewServer(p)
	defer srv.Close()
	tests := map[string]struct {
		body   string
		hdr    map[string]string
		tokens int // completion tokens recorded; -1: no usage
	}{
		"json":                {body: `{"model":"x","messages":[{"role":"user","content":"count my tokens"}]}`, tokens: 8},
		"stream":              {body: `{"model":"x","stream":true,"messages":[{"role":"user","content":"count my tokens"}]}`, tokens: 8},
		"stream cut short":    {body: `{"model":"x","stream":true,"messages":[{"role":"user","content":"count my tokens"}]}`, hdr: map[string]string{"x-mock-reset": "truncate"}, tokens: 1},
		"error":               {body: `{"model":"x","messages":[{"role":"user","content":"count my tokens"}]}`, hdr: map[string]string{"x-mock-status": "503"}, tokens: -1},
		"anthropic":           {body: `{"model":"x","max_tokens":9,"messages":[{"role":"user","content":"count my tokens"}]}`, tokens: 8},
		"anthropic cut short": {body: `{"model":"x","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"count my tokens"}]}`, hdr: map[string]string{"x-mock-reset": "truncate"}, tokens: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p.Reset()
			path := "/v1/chat/completions"
			if strings.HasPrefix(name, "anthropic") {
				path = "/v1/messages"
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer k")
			req.Header.Set("x-api-key", "k")
			req.Header.Set("anthropic-version", "2023-06-01")
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rs := p.Requests()
			if len(rs) != 1 {
				t.Fatalf("%d requests recorded", len(rs))
			}
			u := rs[0].Usage
			switch {
			case tc.tokens < 0 && u != nil:
				t.Errorf("usage %+v recorded for an error", u)
			case tc.tokens >= 0 && (u == nil || u.CompletionTokens != tc.tokens || len(rs[0].Output) != tc.tokens || u.PromptTokens == 0):
				t.Errorf("usage %+v, output %q; want %d completion tokens", u, rs[0].Output, tc.tokens)
			}
		})
	}
}
