package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// hostileStack: budgetStack's key and 7.5 EUR budget, on a model that
// writes at most 1,000 tokens and costs 100 EUR per million input tokens
// and 100,000 per million output tokens: a request with max_tokens 10
// holds 1 EUR of output.
func hostileStack(t *testing.T) *harness.Stack {
	o := budgetOptions()
	o.Models = []config.Model{{ID: "m1", Provider: "p", ProviderModel: "m1-upstream", ContextWindow: 128000, MaxOutputTokens: 1000,
		Price: config.Price{InputPerMTok: 100, OutputPerMTok: 100000}}}
	return harness.Start(t, o)
}

// TestHostileEndlessStream: a provider that streams without end and
// without usage. The Python SDK's stream ends with an APIError once the
// stream passes what the model can write, the budget is charged at most
// the request's hold (1 EUR), and the next request is served. It was
// never cut (1 GB in 15 s), charged 403 EUR under a 5 EUR budget, and
// every client then got 429 (the hostile-upstream probe).
func TestHostileEndlessStream(t *testing.T) {
	t.Parallel()
	s := hostileStack(t)
	s.Providers["p"].SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkEndless})
	py := harness.RequirePython(t)
	out, err := exec.Command(py, "-c", `
import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-team-a", max_retries=0, timeout=30)
n = 0
try:
    for ch in c.chat.completions.create(model="auto", max_tokens=10, stream=True, messages=[{"role": "user", "content": "hello"}]):
        if ch.choices:
            n += len(ch.choices[0].delta.content or "")
        if n > 5000000:
            print("UNBOUNDED", n)
            sys.exit(0)
    print("ENDED", n)
except openai.APIError as e:
    print("APIERROR", n, e.message)
`, s.URL).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "APIERROR") || !strings.Contains(string(out), "past the output the model can write") {
		t.Fatalf("python SDK: %v %s", err, out)
	}
	// A client that reads on gets the end of the stream (its connection
	// closed), not a wait until the request's timeout.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"auto","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("Authorization", "Bearer sk-team-a")
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	n, err := io.Copy(&got, resp.Body)
	resp.Body.Close()
	t.Logf("a client reading on: %d %d bytes, then %v: %.300s", resp.StatusCode, n, err, got.Bytes()[max(0, got.Len()-300):])
	if resp.StatusCode != 200 || n > 1<<20 || !bytes.Contains(got.Bytes(), []byte("past the output the model can write")) || errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
		t.Errorf("a client reading on got %d bytes, then %v", n, err)
	}
	// The budget still serves: the provider is answering (the stream
	// failures count toward its health: a third makes it cool down).
	s.Providers["p"].SetBehavior(mockllm.Behavior{})
	c, b, _ := fire(t, s, "sk-team-a", 1)
	if c[0] != 200 {
		t.Errorf("the next request, served: %d %s", c[0], b[0])
	}
	s.Providers["p"].SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkEndless})
	// The Messages API's client gets Anthropic's error event.
	req, _ = http.NewRequest(http.MethodPost, s.URL+"/v1/messages",
		strings.NewReader(`{"model":"auto","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("x-api-key", "sk-team-a")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	got.Reset()
	n, err = io.Copy(&got, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n > 1<<20 || !bytes.Contains(got.Bytes(), []byte("event: error")) ||
		!bytes.Contains(got.Bytes(), []byte("past the output the model can write")) {
		t.Errorf("a Messages API client: %d %d bytes, then %v: %.300s", resp.StatusCode, n, err, got.Bytes()[max(0, got.Len()-300):])
	}
	s.Providers["p"].SetBehavior(mockllm.Behavior{})
	if used, _ := budgetOf(t, s, "key=team-a", "default-daily"); used <= 0 || used > 4.01 {
		t.Errorf("used %.4f EUR for 4 requests, want at most the 1 EUR each held", used)
	}
}

// TestHostilePromptClaim: a JSON answer claiming 200,000 prompt tokens for
// a tiny prompt is usage no answer to it can have: it is charged the
// request's worst case on the model (about 1 EUR), which routing.cost
// shows (source worst_case). It was charged as reported, 20 EUR here,
// with source provider_usage (the hostile-upstream probe).
func TestHostilePromptClaim(t *testing.T) {
	t.Parallel()
	s := hostileStack(t)
	s.Providers["p"].SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkPromptClaim})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`,
		map[string]string{"Authorization": "Bearer sk-team-a"})
	if resp.StatusCode != 200 || gjson.GetBytes(b, "routing.cost.source").Str != "worst_case" || gjson.GetBytes(b, "routing.cost.eur").Float() > 1.01 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	s.Providers["p"].SetBehavior(mockllm.Behavior{})
	if used, _ := budgetOf(t, s, "key=team-a", "default-daily"); used < 1 || used > 1.01 {
		t.Errorf("used %.4f EUR, want the 1 EUR held", used)
	}
}
