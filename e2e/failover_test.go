package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// failoverStack: "primary" (OpenAI format, cheapest), "claude" (Anthropic
// format, next cheapest), "eu" (the only EU provider, dearest). Attempts
// time out after 1 s.
func failoverStack(t *testing.T, cooldownAfter int) *harness.Stack {
	return failoverStackWith(t, func(c *config.Config) { c.Failover.FailuresBeforeCooldown = cooldownAfter })
}

// failoverStackWith is failoverStack with more changes to its config (no
// cooldowns unless mutate sets them).
func failoverStackWith(t *testing.T, mutate func(*config.Config)) *harness.Stack {
	return harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "primary", Key: "sk-primary"},
			{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"},
			{Name: "eu", Key: "sk-eu", Residency: "eu"},
		},
		Models: []config.Model{
			{ID: "primary-mini", Provider: "primary", ProviderModel: "primary-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 1}},
			{ID: "claude-haiku", Provider: "claude", ProviderModel: "claude-haiku-4-5", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 5}},
			{ID: "eu-large", Provider: "eu", ProviderModel: "eu-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 4, OutputPerMTok: 12}},
		},
		Mutate: func(c *config.Config) {
			c.Failover.AttemptTimeout = time.Second
			c.Failover.FailuresBeforeCooldown = 1000
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
			mutate(c)
		},
	})
}

type failoverResult struct {
	Content  string `json:"content"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Attempts string `json:"attempts"`
	Decision string `json:"decision_id"`
	Usage    *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Routing *struct {
		Model    string `json:"model"`
		Provider string `json:"provider"`
		Reason   string `json:"reason"`
		Usage    struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Cost struct {
			Amount float64 `json:"amount"`
		} `json:"cost"`
		Attempts []struct {
			Provider, Model, Outcome, Reason string
			Status                           int
			LatencyMS                        float64 `json:"latency_ms"`
		} `json:"attempts"`
	} `json:"routing"`
	Error *struct {
		Class, Code, Message string
		Status               int
	} `json:"error"`
	Elapsed float64 `json:"elapsed_s"`
}

// viaPython runs e2e/clients/python/failover.py: the official SDK, with only
// base_url pointing at stellwerk.
func viaPython(t *testing.T, s *harness.Stack, scenario, extraBody string) failoverResult {
	t.Helper()
	py := harness.RequirePython(t)
	args := []string{filepath.Join(harness.Root(), "e2e", "clients", "python", "failover.py"), s.URL, scenario}
	if extraBody != "" {
		args = append(args, extraBody)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var r failoverResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	return r
}

// anthropicUsage asks the fake Anthropic provider directly what it counts
// for the request stellwerk sent it: the truth to compare stellwerk's
// numbers with.
func anthropicUsage(t *testing.T, p *harness.Provider, sent []byte) (in, out int) {
	t.Helper()
	var body map[string]any
	mustJSON(t, sent, &body)
	body["stream"] = false
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", p.URL+"/messages", bytes.NewReader(b))
	req.Header.Set("x-api-key", p.Key)
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	var msg struct {
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
	}
	mustJSON(t, rb, &msg)
	return msg.Usage.InputTokens, msg.Usage.OutputTokens
}

func resetAll(s *harness.Stack) {
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{})
		p.Reset()
	}
}

func TestFailover(t *testing.T) {
	t.Parallel()
	s := failoverStack(t, 1000) // no cooldowns here: TestCooldown covers them
	primary, claude, eu := s.Providers["primary"], s.Providers["claude"], s.Providers["eu"]

	t.Run("primary 503, served by the Anthropic fallback", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Status: 503})
		r := viaPython(t, s, "plain", "")
		if r.Error != nil || r.Provider != "claude" || r.Model != "claude-haiku" || r.Attempts != "2" ||
			!strings.HasPrefix(r.Content, "Hello from claude") {
			t.Fatalf("SDK saw %+v", r)
		}
		if len(primary.Requests()) != 1 || len(claude.Requests()) != 1 || len(eu.Requests()) != 0 {
			t.Fatalf("requests: primary %d, claude %d, eu %d", len(primary.Requests()), len(claude.Requests()), len(eu.Requests()))
		}
		// Each attempt was rewritten for its own provider.
		pr, cr := primary.Requests()[0], claude.Requests()[0]
		if pr.Header.Get("Authorization") != "Bearer sk-primary" || !strings.HasSuffix(pr.Path, "/chat/completions") ||
			!strings.Contains(string(pr.Body), `"model":"primary-upstream"`) {
			t.Errorf("attempt 1: %s %v %s", pr.Path, pr.Header, pr.Body)
		}
		// The first attempt went straight to its provider: nothing of the
		// decision reached it, nor the next provider (but what its own
		// format needs).
		for name := range pr.Header {
			if strings.HasPrefix(strings.ToLower(name), header.Prefix) {
				t.Errorf("attempt 1 carried %s: %v", name, pr.Header)
			}
		}
		for name := range cr.Header {
			if strings.HasPrefix(strings.ToLower(name), header.Prefix) {
				t.Errorf("attempt 2 carried %s: %v", name, cr.Header)
			}
		}
		if cr.Header.Get("x-api-key") != "sk-ant-fake" || cr.Header.Get("Authorization") != "" || !strings.HasSuffix(cr.Path, "/messages") ||
			!strings.Contains(string(cr.Body), `"model":"claude-haiku-4-5"`) || strings.Contains(string(cr.Body), "stellwerk") {
			t.Errorf("attempt 2: %s %v %s", cr.Path, cr.Header, cr.Body)
		}
		ro := r.Routing
		if ro == nil || ro.Model != "claude-haiku" || len(ro.Attempts) != 2 ||
			ro.Attempts[0].Provider != "primary" || ro.Attempts[0].Outcome != "failed" || ro.Attempts[0].Status != 503 ||
			ro.Attempts[1].Provider != "claude" || ro.Attempts[1].Outcome != "served" || !strings.Contains(ro.Reason, "served by fallback") {
			t.Fatalf("routing object %+v", ro)
		}
		// Tokens and cost are the fallback's, as the fake provider counts them.
		in, out := anthropicUsage(t, claude, cr.Body)
		if r.Usage.PromptTokens != in || r.Usage.CompletionTokens != out || ro.Usage.PromptTokens != in || ro.Usage.CompletionTokens != out {
			t.Errorf("usage %+v / routing %+v, provider counted %d in %d out", r.Usage, ro.Usage, in, out)
		}
		if want := float64(in)*1/1e6 + float64(out)*5/1e6; math.Abs(ro.Cost.Amount-want) > 1e-9 {
			t.Errorf("cost %v, want %v at claude-haiku's prices", ro.Cost.Amount, want)
		}
	})

	t.Run("the edge rewrites the first attempt: its egress listener runs no filter", func(t *testing.T) {
		resetAll(s)
		before := envoyCounters(t, s, "http.stellwerk_egress_primary.ext_proc.")
		clusters := envoyCounters(t, s, "cluster.")
		r := viaPython(t, s, "plain", "")
		if r.Error != nil || r.Provider != "primary" || r.Attempts != "" {
			t.Fatalf("SDK saw %+v", r)
		}
		after := envoyCounters(t, s, "http.stellwerk_egress_primary.ext_proc.")
		// A JSON answer: the attempt went from the client-facing router
		// straight to the provider's cluster (the model's first-attempt
		// cluster's first member), not through the failover cluster and an
		// internal listener.
		prov, fo := "provider_primary.upstream_rq_total", header.FailoverCluster+".upstream_rq_total"
		if now := envoyCounters(t, s, "cluster."); now[prov]-clusters[prov] != 1 || now[fo] != clusters[fo] {
			t.Errorf("provider cluster %d → %d, failover cluster %d → %d", clusters[prov], now[prov], clusters[fo], now[fo])
		}
		// The first attempt's listener opens no ext_proc stream: the edge
		// reads the answer (and Envoy's upstream log would report a
		// failure), where an attempt rewritten there takes three round
		// trips.
		if d := after["streams_started"] - before["streams_started"]; d != 0 {
			t.Errorf("egress ext_proc streams started: %d, want 0", d)
		}
		pr := primary.Requests()[0]
		if pr.Header.Get("Authorization") != "Bearer sk-primary" || !strings.HasSuffix(pr.Path, "/chat/completions") ||
			!strings.Contains(string(pr.Body), `"model":"primary-upstream"`) || pr.Header.Get(header.Rewritten) != "" ||
			pr.Header.Get(header.Plan) != "" {
			t.Errorf("request as the provider got it: %s %v %s", pr.Path, pr.Header, pr.Body)
		}
		ro := r.Routing
		if ro == nil || len(ro.Attempts) != 1 || ro.Attempts[0].Outcome != "served" || ro.Attempts[0].Status != 200 ||
			ro.Attempts[0].LatencyMS <= 0 {
			t.Fatalf("routing object %+v", ro)
		}
	})

	t.Run("primary 503, streamed by the Anthropic fallback", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Status: 503})
		r := viaPython(t, s, "stream", "")
		if r.Error != nil || r.Provider != "claude" || !strings.HasPrefix(r.Content, "Hello from claude") || r.Usage == nil {
			t.Fatalf("SDK saw %+v", r)
		}
		in, out := anthropicUsage(t, claude, claude.Requests()[0].Body)
		if r.Usage.PromptTokens != in || r.Usage.CompletionTokens != out {
			t.Errorf("streamed usage %+v, provider counted %d in %d out", r.Usage, in, out)
		}
		rec := finished(t, s, r.Decision)
		if rec["model"] != "claude-haiku" || rec["usage_estimated"] != false || int(rec["completion_tokens"].(float64)) != out {
			t.Errorf("usage record %v", rec)
		}
	})

	t.Run("primary stalls, fallback answers within the attempt timeout", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 10 * time.Second})
		r := viaPython(t, s, "stream", "")
		if r.Error != nil || r.Provider != "claude" || !strings.HasPrefix(r.Content, "Hello from claude") {
			t.Fatalf("SDK saw %+v", r)
		}
		// 1 s attempt timeout, then the fallback; far from the 10 s stall.
		if r.Elapsed < 0.9 || r.Elapsed > 4 {
			t.Errorf("took %.2fs with a 1s attempt timeout", r.Elapsed)
		}
		t.Logf("stalled primary: the SDK had the fallback's whole stream after %.2fs", r.Elapsed)
	})

	t.Run("connection refused, served by the fallback", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Reset: "before"})
		r := viaPython(t, s, "plain", "")
		if r.Error != nil || r.Provider != "claude" || r.Routing == nil || r.Routing.Attempts[0].Outcome != "failed" {
			t.Fatalf("SDK saw %+v", r)
		}
	})

	t.Run("reset after the first byte: the SDK raises", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Reset: "mid-stream"})
		r := viaPython(t, s, "stream", "")
		if r.Error == nil || !strings.HasPrefix(r.Content, "Hello") {
			t.Fatalf("want the first chunk, then an error: %+v", r)
		}
		t.Logf("the SDK raised %s: %s", r.Error.Class, r.Error.Message)
		if len(claude.Requests()) != 0 {
			t.Errorf("a started stream was failed over")
		}
	})

	t.Run("stream ends without [DONE]: an SSE error event", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Reset: "truncate"})
		r := viaPython(t, s, "stream", "")
		if r.Error == nil || r.Error.Class != "APIError" || !strings.Contains(r.Error.Message, "ended before the answer was complete") {
			t.Fatalf("SDK saw %+v", r)
		}
	})

	t.Run("EU-only with no EU fallback: 503 no_eligible_model, nothing leaves the EU", func(t *testing.T) {
		resetAll(s)
		eu.SetBehavior(mockllm.Behavior{Status: 503})
		r := viaPython(t, s, "plain", `{"policy":{"residency":"eu"}}`)
		if r.Error == nil || r.Error.Status != 503 || r.Error.Code != "no_eligible_model" ||
			!strings.Contains(r.Error.Message, "eu-large at eu (status 503") || !strings.Contains(r.Error.Message, "eu residency") {
			t.Fatalf("SDK saw %+v", r)
		}
		if len(eu.Requests()) != 1 || len(primary.Requests()) != 0 || len(claude.Requests()) != 0 {
			t.Errorf("requests: eu %d, primary %d, claude %d", len(eu.Requests()), len(primary.Requests()), len(claude.Requests()))
		}
	})

	t.Run("a client cannot steer retries", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Status: 503})
		claude.SetBehavior(mockllm.Behavior{Status: 503})
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"x-envoy-max-retries": "0", "x-envoy-retry-on": "4xx", "x-stellwerk-cluster": "provider_eu"})
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "eu" || resp.Header.Get("x-stellwerk-attempts") != "3" {
			t.Fatalf("status %d %v: %s", resp.StatusCode, resp.Header, b)
		}
	})
}

func TestCooldown(t *testing.T) {
	t.Parallel()
	s := failoverStack(t, 2)
	primary, claude := s.Providers["primary"], s.Providers["claude"]
	chat := `{"model":"auto","messages":[{"role":"user","content":"x"}]}`

	// The provider asks for a pause: 429 with Retry-After.
	primary.SetBehavior(mockllm.Behavior{Status: 429, RetryAfter: 60})
	resp, b := post(t, s.URL+"/v1/chat/completions", chat, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" {
		t.Fatalf("status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
	// The next decision skips it: no attempt on primary at all.
	primary.SetBehavior(mockllm.Behavior{})
	primary.Reset()
	resp, b = post(t, s.URL+"/v1/chat/completions", chat, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" || resp.Header.Get("x-stellwerk-attempts") != "" {
		t.Fatalf("after Retry-After: status %d %v: %s", resp.StatusCode, resp.Header, b)
	}
	if len(primary.Requests()) != 0 {
		t.Errorf("a provider in cooldown got %d requests", len(primary.Requests()))
	}
	st := adminJSON(t, s, "/status")
	ps, _ := st["providers"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["provider"] != "primary" || !strings.Contains(ps[0].(map[string]any)["reason"].(string), "Retry-After 1m0s") {
		t.Errorf("/status providers %v", st["providers"])
	}

	// Repeated failures without Retry-After: claude fails twice → cooldown.
	claude.SetBehavior(mockllm.Behavior{Status: 500})
	for i := 0; i < 2; i++ {
		post(t, s.URL+"/v1/chat/completions", chat, nil) // claude fails, eu serves
	}
	claude.Reset()
	resp, _ = post(t, s.URL+"/v1/chat/completions", chat, nil)
	if resp.Header.Get("x-stellwerk-provider") != "eu" || len(claude.Requests()) != 0 {
		t.Errorf("after 2 failures: provider %q, claude got %d requests", resp.Header.Get("x-stellwerk-provider"), len(claude.Requests()))
	}
	// A pinned model is still tried, even in cooldown: the caller asked for it.
	claude.Reset()
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"claude-haiku","policy":{"allow":["claude-haiku"]},"messages":[{"role":"user","content":"x"}]}`, nil)
	if resp.StatusCode != 503 || len(claude.Requests()) != 1 {
		t.Errorf("pinned model in cooldown: status %d, %d requests: %s", resp.StatusCode, len(claude.Requests()), b)
	}
	// With every provider cooling down, the 503 says when the first one
	// takes requests again: the SDKs wait that long instead of retrying
	// within a second into the same cooldowns (a helper's finding).
	s.Providers["eu"].SetBehavior(mockllm.Behavior{Status: 429, RetryAfter: 30})
	post(t, s.URL+"/v1/chat/completions", chat, nil) // eu asks for a pause
	resp, b = post(t, s.URL+"/v1/chat/completions", chat, nil)
	ra, _ := strconv.Atoi(resp.Header.Get("retry-after"))
	if e := decodeError(t, b); resp.StatusCode != 503 || e.Error.Code != "no_eligible_model" || ra < 1 || ra > 60 || resp.Header.Get("x-should-retry") != "" {
		t.Errorf("every provider cooling: status %d, retry-after %q, %v: %s", resp.StatusCode, resp.Header.Get("retry-after"), resp.Header, b)
	}
}

// envoyCounters reads Envoy's counters under prefix, by their name after it.
func envoyCounters(t *testing.T, s *harness.Stack, prefix string) map[string]int {
	t.Helper()
	resp, err := http.Get(s.EnvoyAdmin + "/stats?filter=" + url.QueryEscape("^"+regexp.QuoteMeta(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if n, err := strconv.Atoi(v); ok && err == nil && strings.HasPrefix(k, prefix) {
			out[strings.TrimPrefix(k, prefix)] = n
		}
	}
	return out
}

// TestFirstAttemptUnresolved: the first provider's name does not resolve,
// so its cluster has no host and Envoy's first-attempt cluster hands even
// the first attempt to the next priority, the second attempt's failover
// cluster. That attempt's egress listener still gets the plan (the
// first-attempt cluster adds it for any attempt bound for an internal
// listener) and rewrites the request for its own provider, which answers;
// neither the first provider's key nor any x-stellwerk-* header reaches it.
func TestFirstAttemptUnresolved(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		for i := range c.Providers {
			if c.Providers[i].Name == "primary" {
				c.Providers[i].BaseURL = "http://primary.invalid:8080/v1"
			}
		}
	})
	claude := s.Providers["claude"]
	r := viaPython(t, s, "plain", "")
	if r.Error != nil || r.Provider != "claude" || !strings.HasPrefix(r.Content, "Hello from claude") {
		t.Fatalf("SDK saw %+v", r)
	}
	if len(claude.Requests()) != 1 {
		t.Fatalf("claude got %d requests", len(claude.Requests()))
	}
	cr := claude.Requests()[0]
	if cr.Header.Get("x-api-key") != "sk-ant-fake" || cr.Header.Get("Authorization") != "" || !strings.HasSuffix(cr.Path, "/messages") ||
		!strings.Contains(string(cr.Body), `"model":"claude-haiku-4-5"`) {
		t.Errorf("claude's request: %s %v %s", cr.Path, cr.Header, cr.Body)
	}
	for name := range cr.Header {
		if strings.HasPrefix(strings.ToLower(name), header.Prefix) {
			t.Errorf("claude's request carried %s", name)
		}
	}
	// The first-attempt cluster names the model in every answer, for the
	// upstream log; the client never sees that header.
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get(header.FirstModel) != "" || resp.Header.Get(header.Model) != "claude-haiku" {
		t.Errorf("answer %d %v %s", resp.StatusCode, resp.Header, b)
	}
}

// TestProviderRefusesCredential: a provider's 401 or 403 is about
// stellwerk's credential for it (a client's key never reaches a provider):
// the request fails over, and the client is never told its own key is
// wrong, nor shown the provider's words, which name part of the key.
func TestProviderRefusesCredential(t *testing.T) {
	t.Parallel()
	s := failoverStack(t, 1000)
	primary, claude, eu := s.Providers["primary"], s.Providers["claude"], s.Providers["eu"]
	for _, status := range []int{401, 403} {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Status: status})
		r := viaPython(t, s, "plain", "")
		if r.Error != nil || r.Provider != "claude" || r.Attempts != "2" || r.Routing == nil ||
			r.Routing.Attempts[0].Status != status || !strings.Contains(r.Routing.Attempts[0].Reason, "refused stellwerk's credential") {
			t.Fatalf("%d: SDK saw %+v", status, r)
		}
	}
	resetAll(s)
	for _, p := range []*harness.Provider{primary, claude, eu} {
		p.SetBehavior(mockllm.Behavior{Status: 401})
	}
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
	e := decodeError(t, b)
	if resp.StatusCode != 503 || e.Error.Code != "no_eligible_model" || !strings.Contains(e.Error.Message, "refused stellwerk's credential (401)") ||
		strings.Contains(string(b), "****") || strings.Contains(string(b), "Incorrect API key") || resp.Header.Get("x-should-retry") != "false" {
		t.Fatalf("every provider refused: %d %v %s", resp.StatusCode, resp.Header, b)
	}

	// Without failover the provider's answer does not reach the client either.
	s = failoverStackWith(t, func(c *config.Config) { c.Failover.MaxAttempts = 1 })
	s.Providers["primary"].SetBehavior(mockllm.Behavior{Status: 401})
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"hi"}]}`, nil)
	e = decodeError(t, b)
	if resp.StatusCode != 502 || e.Error.Code != "provider_credential_refused" || strings.Contains(string(b), "****") {
		t.Fatalf("no failover: %d %s", resp.StatusCode, b)
	}
}

// TestFinalRefusalsAreNotRetried: a 5xx that the same request meets again
// (no model may serve it: the policy allows only on-prem models, and there
// are none) says x-should-retry: false, and the openai SDK, with its default
// two retries, sends it once; a failure that may pass (every provider
// failed) is retried as before. A context no window holds is the client's
// 400, sent once too, and so is one no window the policy allows holds (a
// 503 no_eligible_model, raised as InternalServerError, until 2026-12-07).
// A max_tokens past every model's output limit is lowered to it and served
// (it was refused for the context window).
func TestFinalRefusalsAreNotRetried(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := failoverStack(t, 1000)
	script := `import openai, sys
sent = []
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-client-key",
    http_client=openai.DefaultHttpxClient(event_hooks={"request": [lambda r: sent.append(1)]}))
try:
    c.chat.completions.create(model="auto", max_tokens=int(sys.argv[2]),
        messages=[{"role": "user", "content": "lorem ipsum dolor sit amet " * int(sys.argv[4]) if len(sys.argv) > 4 else "hi"}],
        extra_headers={"x-stellwerk-policy": sys.argv[3]} if sys.argv[3] else None)
    print("served", len(sent))
except openai.APIStatusError as e:
    print(e.status_code, e.code, len(sent))`
	run := func(maxTokens, policy string, lorem ...string) string {
		out, err := exec.Command(py, append([]string{"-c", script, s.URL, maxTokens, policy}, lorem...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("100", `{"residency":"on_prem"}`); got != "503 no_eligible_model 1" {
		t.Errorf("no model the policy allows: %q, want one request", got)
	}
	// About 234,000 tokens: more than every window (200,000 at most).
	if got := run("100", "", "45000"); got != "400 context_length_exceeded 1" {
		t.Errorf("a context no model holds: %q, want one request", got)
	}
	// About 156,000 tokens: only claude-haiku holds it, and the policy
	// allows only the 128,000-token models.
	if got := run("100", `{"allow":["primary-mini","eu-large"]}`, "30000"); got != "400 context_length_exceeded 1" {
		t.Errorf("a context no allowed model holds: %q, want one request", got)
	}
	if got := run("1000000", ""); got != "served 1" {
		t.Errorf("max_tokens past every model's output limit: %q, want it served", got)
	}
	for _, p := range []*harness.Provider{s.Providers["primary"], s.Providers["claude"], s.Providers["eu"]} {
		p.SetBehavior(mockllm.Behavior{Status: 503})
	}
	if got := run("100", ""); got != "503 no_eligible_model 3" {
		t.Errorf("every provider failing: %q, want the SDK's two retries", got)
	}
}

// TestBrokenSuccessIsAnError: a provider's 200 whose JSON body does not
// parse, or is empty, reaches the client as stellwerk's 502, which the SDKs
// raise as an APIError, instead of a success they cannot decode (a
// helper's finding).
func TestBrokenSuccessIsAnError(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(*config.Config) {})
	// "html": a gateway's page labelled text/html reached the client as a
	// 200, which the SDKs returned as a string, charged (the chaos probe).
	for _, mode := range []string{"garbage", "empty", "html"} {
		s.Providers["primary"].SetBehavior(mockllm.Behavior{Reset: mode})
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"x"}]}`, nil)
		if e := decodeError(t, b); resp.StatusCode != 502 || e.Error.Code != "provider_bad_response" || resp.Header.Get("content-type") != "application/json" {
			t.Errorf("%s: %d %v %s", mode, resp.StatusCode, resp.Header, b)
		}
		// Translated for the Messages API (a helper's finding: a 200
		// carrying an error object, which the anthropic SDK returned as
		// a message, charged as served).
		resp, b = post(t, s.URL+"/v1/messages", `{"model":"primary-mini","max_tokens":50,"messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"anthropic-version": "2023-06-01"})
		if resp.StatusCode != 502 || !strings.Contains(string(b), `"type":"error"`) || !strings.Contains(string(b), "provider_bad_response") {
			t.Errorf("%s, Messages API: %d %s", mode, resp.StatusCode, b)
		}
		s.Providers["primary"].SetBehavior(mockllm.Behavior{})
		// From an Anthropic-wire provider, translated.
		s.Providers["claude"].SetBehavior(mockllm.Behavior{Reset: mode})
		resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"claude-haiku","messages":[{"role":"user","content":"x"}]}`, nil)
		if e := decodeError(t, b); resp.StatusCode != 502 || e.Error.Code != "provider_bad_response" {
			t.Errorf("%s, Anthropic provider: %d %s", mode, resp.StatusCode, b)
		}
		s.Providers["claude"].SetBehavior(mockllm.Behavior{})
	}
}

// TestProxyErrorPageIsShaped: a proxy's HTML error page (400, not
// retried) from either wire format reaches the client in the error shape
// of its API, its text not passed on; with failover on it came verbatim
// (the chaos probe).
func TestProxyErrorPageIsShaped(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(*config.Config) {})
	for _, c := range []struct{ provider, model string }{{"primary", "primary-mini"}, {"claude", "claude-haiku"}} {
		s.Providers[c.provider].SetBehavior(mockllm.Behavior{Reset: "html", Status: 400})
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+c.model+`","messages":[{"role":"user","content":"x"}]}`, nil)
		if e := decodeError(t, b); resp.StatusCode != 400 || e.Error.Code != "provider_error" || strings.Contains(string(b), "<html>") ||
			resp.Header.Get("content-type") != "application/json" {
			t.Errorf("%s, chat: %d %q %s", c.provider, resp.StatusCode, resp.Header.Get("content-type"), b)
		}
		// Nothing was served: the record says the provider rejected it
		// (it said "served" for a 400, the chaos probe).
		id := resp.Header.Get(header.DecisionID)
		var rec []byte
		waitFor(t, "the record", func() bool {
			page := auditPage(t, s, "kind=decision&decision_id="+id)
			if len(page.Records) == 1 {
				rec = page.Records[0].Record
			}
			return rec != nil
		})
		if o := gjson.GetBytes(rec, "attempts.0.outcome").Str; o != "rejected" {
			t.Errorf("%s: attempt %s", c.provider, gjson.GetBytes(rec, "attempts").Raw)
		}
		resp, b = post(t, s.URL+"/v1/messages", `{"model":"`+c.model+`","max_tokens":50,"messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"anthropic-version": "2023-06-01"})
		if resp.StatusCode != 400 || !strings.Contains(string(b), `"type":"error"`) || strings.Contains(string(b), "<html>") {
			t.Errorf("%s, Messages API: %d %s", c.provider, resp.StatusCode, b)
		}
		s.Providers[c.provider].SetBehavior(mockllm.Behavior{})
	}
}

// TestProviderContextOverflowIsNamed: a provider's answer that the prompt
// does not fit its model's context window (its tokenizer counted more than
// stellwerk estimated) reaches an OpenAI client as OpenAI's
// context_length_exceeded from either wire format; Anthropic's
// "prompt is too long" kept its own type as the code (the long-context
// probe).
func TestProviderContextOverflowIsNamed(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(*config.Config) {})
	for _, c := range []struct{ provider, model string }{{"primary", "primary-mini"}, {"claude", "claude-haiku"}} {
		s.Providers[c.provider].SetBehavior(mockllm.Behavior{Reset: "overflow"})
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+c.model+`","messages":[{"role":"user","content":"x"}]}`, nil)
		if e := decodeError(t, b); resp.StatusCode != 400 || e.Error.Code != "context_length_exceeded" || e.Error.Param == nil || *e.Error.Param != "messages" {
			t.Errorf("%s: %d %s", c.provider, resp.StatusCode, b)
		}
		s.Providers[c.provider].SetBehavior(mockllm.Behavior{})
	}
}

// TestCircuitBreakerOverflowThroughEnvoy: requests over a provider's
// circuit breaker (max_requests) get Envoy's 503 (UO), which is not
// retried, and the provider stays in routing: a limit of this
// deployment's is not the provider failing (a helper's finding: one burst
// cooled a healthy provider for every caller).
func TestCircuitBreakerOverflowThroughEnvoy(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		c.Failover.FailuresBeforeCooldown = 1
		for i := range c.Providers {
			if c.Providers[i].Name == "primary" {
				c.Providers[i].Cluster = &config.ClusterSettings{CircuitBreakers: &config.CircuitBreakers{MaxRequests: 2}}
			}
		}
	})
	primary := s.Providers["primary"]
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 800 * time.Millisecond})
	chat := `{"model":"auto","messages":[{"role":"user","content":"x"}]}`
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Pinned: the one attempt goes straight to the provider, and
			// the edge records its answer (the helper's case).
			resp, _ := post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"x"}]}`, nil)
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if !slices.Contains(codes, 503) || !slices.Contains(codes, 200) {
		t.Fatalf("six requests over max_requests 2: %v", codes)
	}
	if n := envoyCounters(t, s, "cluster.provider_primary.")["upstream_rq_active_overflow"]; n == 0 {
		t.Fatalf("no overflow counted by Envoy (%v)", codes)
	}
	primary.SetBehavior(mockllm.Behavior{})
	// Envoy's upstream log reports the overflows a moment later: for two
	// seconds after the burst, every request still goes to primary.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, b := post(t, s.URL+"/v1/chat/completions", chat, nil)
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "primary" {
			t.Fatalf("after the burst: %d %q %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
		}
	}
	if st := adminJSON(t, s, "/status"); st["providers"] != nil {
		if ps, _ := st["providers"].([]any); len(ps) > 0 {
			t.Errorf("the breaker's overflow cooled: %v", ps)
		}
	}
}

// TestOnlyAttemptIsNotCut: a request with one attempt — a pinned model, a
// JSON answer or a translated one — is not cut at failover.attempt_timeout:
// with nothing to fail over to it waits for the answer, up to
// envoy.request_timeout. A long generation was answered 503 after the
// attempt timeout, which the SDKs sent twice more (the SDK probe of
// 2026-12-07). With a fallback the attempt timeout still moves on.
func TestOnlyAttemptIsNotCut(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {}) // attempt_timeout 1s
	slow := map[string]string{"x-mock-first-byte-delay": "1500ms"}
	for _, model := range []string{"primary-mini", "claude-haiku"} {
		for _, stream := range []string{"false", "true"} {
			resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`, slow)
			if resp.StatusCode != 200 || !strings.Contains(string(b), "Hello") || resp.Header.Get("x-stellwerk-model") != model {
				t.Errorf("%s, stream %s: %d %s %.300s", model, stream, resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
			}
		}
	}
	// auto has fallbacks: the slow first attempt is left after a second.
	resetAll(s)
	s.Providers["primary"].SetBehavior(mockllm.Behavior{FirstByteDelay: 1500 * time.Millisecond})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") == "primary" {
		t.Errorf("auto with a slow first provider: %d %s %.300s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
}

// TestRateLimitedEverywhereIs429: when every provider a request was sent to
// answered 429, the client gets a 429 (the SDKs' RateLimitError) with the
// provider's Retry-After, not a 503: a pinned model's rate limit reached
// apps as a server error (the SDK probe of 2026-12-07). One provider
// failing otherwise keeps the 503.
func TestRateLimitedEverywhereIs429(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {})
	for _, model := range []string{"primary-mini", "claude-haiku"} {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"x-mock-status": "429", "x-mock-retry-after": "7"})
		e := decodeError(t, b)
		if resp.StatusCode != 429 || e.Error.Type != "rate_limit_error" || e.Error.Code != "provider_rate_limited" || resp.Header.Get("retry-after") != "7" {
			t.Errorf("%s rate limited: %d retry-after %q %s", model, resp.StatusCode, resp.Header.Get("retry-after"), b)
		}
	}
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"eu-large","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"x-mock-status": "500"})
	if resp.StatusCode != 503 {
		t.Errorf("a provider's 500: %d %s", resp.StatusCode, b)
	}
	// x-request-id, which the SDKs show as the request's id, is the
	// decision's — on an answer, stellwerk's own refusal, an error — unless
	// the provider sent its own (the SDK probe: none came back).
	for _, body := range []string{`{"model":"eu-large","messages":[{"role":"user","content":"hi"}]}`, `{"model":"gpt-9","messages":[]}`,
		`{"model":"eu-large","stream":true,"messages":[{"role":"user","content":"hi"}]}`} {
		resp, b := post(t, s.URL+"/v1/chat/completions", body, nil)
		if id := resp.Header.Get("x-request-id"); id == "" || id != resp.Header.Get("x-stellwerk-decision-id") || len(resp.Header.Values("x-request-id")) != 1 {
			t.Errorf("%s: %d x-request-id %q: %.200s", body, resp.StatusCode, resp.Header.Values("x-request-id"), b)
		}
	}
}

// TestOverloadedEverywhereIs529: when every provider a request was sent to
// was Anthropic's, answering 529 overloaded_error, the client gets a 529:
// the anthropic SDKs' OverloadedError, which Claude Code backs off from or
// switches models on (the agentic-clients probe of 2026-12-07: it was a
// 503 api_error). An OpenAI SDK reads a 529 as a server error and retries.
func TestOverloadedEverywhereIs529(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {})
	overloaded := map[string]string{"x-mock-status": "529", "anthropic-version": "2023-06-01"}
	resp, b := post(t, s.URL+"/v1/messages", `{"model":"claude-haiku","max_tokens":50,"messages":[{"role":"user","content":"x"}]}`, overloaded)
	if resp.StatusCode != 529 || gjson.GetBytes(b, "type").Str != "error" || gjson.GetBytes(b, "error.type").Str != "overloaded_error" {
		t.Errorf("Messages API, Anthropic overloaded: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"claude-haiku","messages":[{"role":"user","content":"x"}]}`, overloaded)
	if e := decodeError(t, b); resp.StatusCode != 529 || e.Error.Type != "server_error" || e.Error.Code != "provider_overloaded" {
		t.Errorf("chat completions, Anthropic overloaded: %d %s", resp.StatusCode, b)
	}
}

// TestProviderRequestIDPassesOn: the provider's own request id (OpenAI's
// x-request-id, Anthropic's request-id), which its support asks for,
// reaches the client, streamed or not, through either API; the decision
// id stands in only where the provider sent none. Envoy applied the
// edge's add-if-absent as an overwrite, so every client got the decision
// id (the agentic-clients probe of 2026-12-07).
func TestProviderRequestIDPassesOn(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {})
	s.Providers["primary"].SetBehavior(mockllm.Behavior{RequestID: "req_primary_own"})
	s.Providers["claude"].SetBehavior(mockllm.Behavior{RequestID: "req_claude_own"})
	messages := map[string]string{"anthropic-version": "2023-06-01"}
	for _, c := range []struct {
		path, model, stream string
		hdr                 map[string]string
		xRequestID, reqID   string // "decision": the decision id; "": absent
	}{
		{"/v1/chat/completions", "primary-mini", "false", nil, "req_primary_own", ""},
		{"/v1/chat/completions", "primary-mini", "true", nil, "req_primary_own", ""},
		{"/v1/chat/completions", "claude-haiku", "false", nil, "decision", "req_claude_own"},
		{"/v1/messages", "claude-haiku", "false", messages, "decision", "req_claude_own"},
		{"/v1/messages", "claude-haiku", "true", messages, "decision", "req_claude_own"},
		{"/v1/messages", "primary-mini", "false", messages, "req_primary_own", "decision"},
	} {
		resp, b := post(t, s.URL+c.path, `{"model":"`+c.model+`","max_tokens":20,"stream":`+c.stream+`,"messages":[{"role":"user","content":"hi"}]}`, c.hdr)
		id := resp.Header.Get("x-stellwerk-decision-id")
		want := func(v string) string {
			if v == "decision" {
				return id
			}
			return v
		}
		if resp.StatusCode != 200 || id == "" || resp.Header.Get("x-request-id") != want(c.xRequestID) || len(resp.Header.Values("x-request-id")) != 1 ||
			resp.Header.Get("request-id") != want(c.reqID) {
			t.Errorf("%s %s stream %s: %d x-request-id %q request-id %q (decision %s): %.200s", c.path, c.model, c.stream, resp.StatusCode,
				resp.Header.Values("x-request-id"), resp.Header.Values("request-id"), id, b)
		}
	}
	// One that holds the provider's credential does not pass; the decision
	// id stands in (none came back: the red team).
	s.Providers["primary"].SetBehavior(mockllm.Behavior{RequestID: "req_sk-primary"})
	s.Providers["claude"].SetBehavior(mockllm.Behavior{RequestID: "req_sk-ant-fake"})
	for _, c := range []struct{ path, model, name string }{
		{"/v1/chat/completions", "primary-mini", "x-request-id"}, {"/v1/messages", "claude-haiku", "request-id"}} {
		resp, b := post(t, s.URL+c.path, `{"model":"`+c.model+`","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`, messages)
		if id := resp.Header.Get("x-stellwerk-decision-id"); resp.StatusCode != 200 || id == "" || resp.Header.Get(c.name) != id || len(resp.Header.Values(c.name)) != 1 {
			t.Errorf("%s %s, the provider's id holding its key: %d %s %q: %.200s", c.path, c.model, resp.StatusCode, c.name, resp.Header.Values(c.name), b)
		}
	}
}

// TestPinnedModelTimesOut: a pinned model whose provider does not answer
// within envoy.request_timeout is 504 provider_timeout, which the SDKs
// and dashboards read as a timeout; it was 503 no_eligible_model, "no
// model may serve", for a model that was eligible (the peer-switcher
// probe). Every provider of a plan timing out is the same answer.
func TestPinnedModelTimesOut(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Envoy.RequestTimeout = 2 * time.Second }})
	s.Providers["alpha"].SetBehavior(mockllm.Behavior{FirstByteDelay: 5 * time.Second})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
	if e := decodeError(t, b); resp.StatusCode != 504 || e.Error.Code != "provider_timeout" || e.Error.Type != "server_error" ||
		!strings.Contains(e.Error.Message, "every model this request may use timed out: alpha-model at alpha (provider timeout") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestContextOverflowFailsOverToLarger: a provider's answer that the
// prompt does not fit its model's window (its tokenizer counted more than
// stellwerk estimated) sends the request on to the next model of the plan
// with a larger window, past one whose window is not larger (nothing sent
// to it), and the provider is not cooled for it: it was the prompt's fault
// (the long-context probe: the provider's 400 reached the client, with a
// 1M-token model in the plan).
func TestContextOverflowFailsOverToLarger(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"},
			{Name: "mid", Key: "sk-mid"},
			{Name: "big", Key: "sk-big"},
			{Name: "small", Key: "sk-small"},
		},
		Models: []config.Model{
			{ID: "claude-sonnet", Provider: "claude", ProviderModel: "claude-sonnet-4-5", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 2}},
			{ID: "mid-model", Provider: "mid", ProviderModel: "mid-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 2, OutputPerMTok: 4}},
			{ID: "big-model", Provider: "big", ProviderModel: "big-upstream", ContextWindow: 1000000,
				Price: config.Price{InputPerMTok: 3, OutputPerMTok: 6}},
			{ID: "small-model", Provider: "small", ProviderModel: "small-upstream", ContextWindow: 1000,
				Price: config.Price{InputPerMTok: 9, OutputPerMTok: 9}},
		},
		Mutate: func(c *config.Config) {
			c.Failover.FailuresBeforeCooldown = 1
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	s.Providers["claude"].SetBehavior(mockllm.Behavior{Reset: "overflow"})
	var r failoverResult
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"x"}]}`, nil)
	if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || resp.Header.Get("x-stellwerk-provider") != "big" || resp.Header.Get(header.Overflow) != "" {
		t.Fatalf("not failed over to the larger model: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	ro := r.Routing
	if ro == nil || len(ro.Attempts) != 3 || ro.Attempts[0].Outcome != "context_overflow" || ro.Attempts[0].Status != 400 ||
		ro.Attempts[1].Outcome != "not_sent" || ro.Attempts[2].Outcome != "served" {
		t.Errorf("attempts: %s", b)
	}
	if n := len(s.Providers["mid"].Requests()); n != 0 {
		t.Errorf("the model whose window is not larger got %d requests", n)
	}
	var rec []byte
	waitFor(t, "the record", func() bool {
		if page := auditPage(t, s, "kind=decision&decision_id="+resp.Header.Get(header.DecisionID)); len(page.Records) == 1 {
			rec = page.Records[0].Record
		}
		return rec != nil
	})
	if o := gjson.GetBytes(rec, "attempts.0.outcome").Str; o != "context_overflow" {
		t.Errorf("audit attempts %s", gjson.GetBytes(rec, "attempts").Raw)
	}
	// Not the provider's failure: with a cooldown after one failure, the
	// next request is still Claude's.
	s.Providers["claude"].SetBehavior(mockllm.Behavior{})
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"x"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" {
		t.Errorf("Claude was cooled for an overflow: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	// A first attempt the edge would rewrite itself (an OpenAI-wire
	// provider) whose prompt comes near its window goes through its egress
	// listener, whose filter reads the overflow: the edge's own rewrite
	// left nothing between the provider's 400 and the client.
	s.Providers["small"].SetBehavior(mockllm.Behavior{Reset: "overflow"})
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 90)
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"small-model","max_tokens":20,"policy":{"fallback":true},"messages":[{"role":"user","content":"`+long+`"}]}`, nil)
	r = failoverResult{}
	if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil || resp.Header.Get("x-stellwerk-provider") != "claude" ||
		r.Routing == nil || len(r.Routing.Attempts) != 2 || r.Routing.Attempts[0].Outcome != "context_overflow" {
		t.Errorf("near its window, not failed over: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	// A stream overflows before it starts: failed over the same way.
	s.Providers["claude"].SetBehavior(mockllm.Behavior{Reset: "overflow"})
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"auto","stream":true,"messages":[{"role":"user","content":"x"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "big" || !strings.Contains(string(b), "[DONE]") {
		t.Errorf("a stream not failed over to the larger model: %d %v %s", resp.StatusCode, resp.Header, b)
	}
}
