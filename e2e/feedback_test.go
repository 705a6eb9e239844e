package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestStreamFirstByteTimeout (issue 19): a streaming request whose provider
// has not sent its first byte within the model's first-byte timeout fails
// over to the next provider of its plan, long before attempt_timeout; a
// provider that started its stream is never cut for being slow; JSON
// answers, which arrive whole, keep attempt_timeout.
func TestStreamFirstByteTimeout(t *testing.T) {
	t.Parallel()
	const attemptTimeout = 30 * time.Second
	s := failoverStackWith(t, func(c *config.Config) {
		c.Failover.AttemptTimeout = attemptTimeout
		c.Failover.StreamFirstByteTimeout = time.Second
		for i := range c.Models {
			if c.Models[i].ID == "primary-mini" {
				c.Models[i].FirstByteTimeout = 4 * time.Second // its own, over the default
			}
		}
	})
	primary, claude := s.Providers["primary"], s.Providers["claude"]
	stream := `{"model":"auto","stream":true,"messages":[{"role":"user","content":"hello there"}]}`
	done := func(data []string) bool { return len(data) > 1 && data[len(data)-1] == "[DONE]" }
	noError := func(data []string) bool {
		for _, d := range data {
			if strings.Contains(d, `"error"`) {
				return false
			}
		}
		return true
	}

	// The first provider stalls before its first byte (20 s, well inside
	// attempt_timeout): the client gets the fallback's stream instead.
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 20 * time.Second})
	start := time.Now()
	resp, data := streamReq(t, s, stream, nil)
	elapsed := time.Since(start)
	t.Logf("stalled provider: served by %s after %.1fs", resp.Header.Get("x-stellwerk-provider"), elapsed.Seconds())
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" || resp.Header.Get("x-stellwerk-attempts") != "2" ||
		!done(data) || !noError(data) {
		t.Fatalf("stalled first provider: status %d provider %q attempts %q, stream %q", resp.StatusCode,
			resp.Header.Get("x-stellwerk-provider"), resp.Header.Get("x-stellwerk-attempts"), data)
	}
	if elapsed >= attemptTimeout {
		t.Errorf("the fallback's stream came after %s, not before attempt_timeout (%s)", elapsed, attemptTimeout)
	}
	if len(primary.Requests()) != 1 || len(claude.Requests()) != 1 {
		t.Errorf("primary got %d requests, claude %d; want 1 each", len(primary.Requests()), len(claude.Requests()))
	}

	// The model's own first-byte timeout (4 s) holds, not the default (1 s):
	// a first byte after 2 s is still its answer.
	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 2 * time.Second})
	resp, data = streamReq(t, s, stream, nil)
	if resp.Header.Get("x-stellwerk-provider") != "primary" || !done(data) || len(claude.Requests()) != 0 {
		t.Errorf("first byte within the model's own timeout: provider %q, claude got %d requests, stream %q",
			resp.Header.Get("x-stellwerk-provider"), len(claude.Requests()), data)
	}

	// Slow but streaming: a chunk every 1.5 s, longer than any first-byte
	// timeout here. The stream is the primary's, whole.
	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{ChunkDelay: 1500 * time.Millisecond})
	start = time.Now()
	resp, data = streamReq(t, s, stream, nil)
	t.Logf("slow stream: %d events in %.1fs", len(data), time.Since(start).Seconds())
	if resp.Header.Get("x-stellwerk-provider") != "primary" || !done(data) || !noError(data) || len(claude.Requests()) != 0 {
		t.Fatalf("slow stream: provider %q, claude got %d requests, stream %q", resp.Header.Get("x-stellwerk-provider"), len(claude.Requests()), data)
	}
	if rs := primary.Requests(); len(rs) != 1 || rs[0].Usage == nil || len(rs[0].Output) < 3 {
		t.Fatalf("the slow provider's record: %+v", rs)
	} else if time.Since(start) < time.Duration(len(rs[0].Output)-1)*1500*time.Millisecond {
		t.Errorf("the stream was not slow: %d tokens in %s", len(rs[0].Output), time.Since(start))
	}

	// A JSON answer arrives whole: the first-byte timeout is not for it.
	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 5 * time.Second})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello there"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "primary" || len(claude.Requests()) != 0 {
		t.Errorf("a slow JSON answer: status %d provider %q, claude got %d requests: %s", resp.StatusCode,
			resp.Header.Get("x-stellwerk-provider"), len(claude.Requests()), b)
	}
}

// TestStreamFirstByteTimeoutOff: with the first-byte timeout off
// (stream_first_byte_timeout equal to attempt_timeout), a stream's first
// attempt goes straight to its provider, as a JSON request's does, not
// through the failover cluster and an internal listener (docs/failover.md),
// and fails over as before: a 503 is retried on the plan's next provider,
// and a slow start is waited for within attempt_timeout.
func TestStreamFirstByteTimeoutOff(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		c.Failover.AttemptTimeout = 20 * time.Second
		c.Failover.StreamFirstByteTimeout = 20 * time.Second
	})
	primary, claude := s.Providers["primary"], s.Providers["claude"]
	stream := `{"model":"auto","stream":true,"messages":[{"role":"user","content":"hello there"}]}`
	done := func(data []string) bool { return len(data) > 1 && data[len(data)-1] == "[DONE]" }

	prov, fo := "provider_primary.upstream_rq_total", header.FailoverCluster+".upstream_rq_total"
	before := envoyCounters(t, s, "cluster.")
	resp, data := streamReq(t, s, stream, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "primary" || !done(data) {
		t.Fatalf("stream: status %d provider %q: %q", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), data)
	}
	if now := envoyCounters(t, s, "cluster."); now[prov]-before[prov] != 1 || now[fo] != before[fo] {
		t.Errorf("provider cluster %d → %d, failover cluster %d → %d: want the provider's cluster straight away",
			before[prov], now[prov], before[fo], now[fo])
	}
	if rs := primary.Requests(); len(rs) != 1 || rs[0].Header.Get(header.Plan) != "" || rs[0].Header.Get(header.FirstByte) != "" {
		t.Errorf("the provider got %d requests, the first with headers %v", len(rs), rs[0].Header)
	}

	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{Status: 503})
	resp, data = streamReq(t, s, stream, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" || resp.Header.Get("x-stellwerk-attempts") != "2" || !done(data) {
		t.Fatalf("primary 503: status %d provider %q attempts %q: %q", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"),
			resp.Header.Get("x-stellwerk-attempts"), data)
	}
	if cr := claude.Requests(); len(cr) != 1 || cr[0].Header.Get(header.Plan) != "" {
		t.Errorf("the fallback got %d requests", len(cr))
	}

	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 2 * time.Second})
	resp, data = streamReq(t, s, stream, nil)
	if resp.Header.Get("x-stellwerk-provider") != "primary" || !done(data) || len(claude.Requests()) != 0 {
		t.Errorf("a slow start: provider %q, claude got %d requests: %q", resp.Header.Get("x-stellwerk-provider"), len(claude.Requests()), data)
	}
}

// TestPerModelCooldown (issue 19): a 429 for one model of a provider that
// rate-limits per model cools that model alone: the next request goes to
// the provider's other model, not to another provider; /status names the
// model.
func TestPerModelCooldown(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "primary", Key: "sk-primary"},
			{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"},
		},
		Models: []config.Model{
			{ID: "primary-mini", Provider: "primary", ProviderModel: "mini-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 1}},
			{ID: "primary-plus", Provider: "primary", ProviderModel: "plus-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 0.8, OutputPerMTok: 2}},
			{ID: "claude-haiku", Provider: "claude", ProviderModel: "claude-haiku-4-5", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 5}},
		},
		Mutate: func(c *config.Config) {
			c.Failover.AttemptTimeout = 5 * time.Second
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	primary, claude := s.Providers["primary"], s.Providers["claude"]
	chat := `{"model":"auto","messages":[{"role":"user","content":"x"}]}`

	// The provider's limit for one model is reached: the plan's next
	// provider serves this request.
	primary.SetBehavior(mockllm.Behavior{Status: 429, RetryAfter: 60, OnlyModel: "mini-upstream"})
	resp, b := post(t, s.URL+"/v1/chat/completions", chat, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" {
		t.Fatalf("429 on the first model: status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
	// The next decision skips that model only: the same provider's other
	// model serves, at the first attempt.
	primary.Reset()
	claude.Reset()
	resp, b = post(t, s.URL+"/v1/chat/completions", chat, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "primary-plus" || resp.Header.Get("x-stellwerk-attempts") != "" {
		t.Fatalf("after a 429 for primary-mini: status %d model %q attempts %q: %s", resp.StatusCode,
			resp.Header.Get("x-stellwerk-model"), resp.Header.Get("x-stellwerk-attempts"), b)
	}
	if rs := primary.Requests(); len(rs) != 1 || !strings.Contains(string(rs[0].Body), `"plus-upstream"`) || len(claude.Requests()) != 0 {
		t.Errorf("primary got %d requests, claude %d", len(rs), len(claude.Requests()))
	}
	st := adminJSON(t, s, "/status")
	ps, _ := st["providers"].([]any)
	if len(ps) != 1 {
		t.Fatalf("/status providers %v", st["providers"])
	}
	row := ps[0].(map[string]any)
	if row["provider"] != "primary" || row["scope"] != "rate_limit" || row["model"] != "primary-mini" ||
		!strings.Contains(row["reason"].(string), "Retry-After 1m0s") {
		t.Errorf("/status row %v", row)
	}

	// A client's 4xx (here a 400 from the provider) neither ends nor adds to
	// a run of failures: two 503s around it still make two in a row.
	primary.SetBehavior(mockllm.Behavior{})
	for _, status := range []int{503, 400, 503} {
		primary.Reset()
		post(t, s.URL+"/v1/chat/completions", `{"model":"primary-plus","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"x-mock-status": strconv.Itoa(status)})
	}
	st = adminJSON(t, s, "/status")
	found := false
	for _, p := range st["providers"].([]any) {
		if row := p.(map[string]any); row["scope"] == "provider" {
			found = true
			if row["consecutive_failures"] != float64(2) {
				t.Errorf("after 503, 400, 503: %v consecutive failures, want 2", row["consecutive_failures"])
			}
		}
	}
	if !found {
		t.Errorf("no outage row in /status: %v", st["providers"])
	}
}

// TestReplicasShareCooldowns (issue 19): two replicas, each behind its own
// Envoy, share one Redis. A provider's 429 seen by one replica cools that
// model for the other too: its next request goes straight to the fallback.
func TestReplicasShareCooldowns(t *testing.T) {
	t.Parallel()
	f := harness.StartFleet(t, 2, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "primary", Key: "sk-primary"},
			{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"},
		},
		Models: []config.Model{
			{ID: "primary-mini", Provider: "primary", ProviderModel: "mini-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 1}},
			{ID: "claude-haiku", Provider: "claude", ProviderModel: "claude-haiku-4-5", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 5}},
		},
		Mutate: func(c *config.Config) {
			c.Failover.AttemptTimeout = 5 * time.Second
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	a, b := f.Replicas[0], f.Replicas[1]
	primary, claude := f.Providers["primary"], f.Providers["claude"]
	chat := `{"model":"auto","messages":[{"role":"user","content":"x"}]}`

	primary.SetBehavior(mockllm.Behavior{Status: 429, RetryAfter: 60})
	if resp, body := post(t, a.URL+"/v1/chat/completions", chat, nil); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" {
		t.Fatalf("replica a: status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), body)
	}
	waitFor(t, "replica b to learn of replica a's cooldown", func() bool {
		ps, _ := adminJSON(t, b, "/status")["providers"].([]any)
		return len(ps) == 1 && ps[0].(map[string]any)["model"] == "primary-mini"
	})
	primary.SetBehavior(mockllm.Behavior{})
	primary.Reset()
	claude.Reset()
	resp, body := post(t, b.URL+"/v1/chat/completions", chat, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" || resp.Header.Get("x-stellwerk-attempts") != "" ||
		len(primary.Requests()) != 0 {
		t.Errorf("replica b after a's 429: status %d provider %q attempts %q, primary got %d requests: %s", resp.StatusCode,
			resp.Header.Get("x-stellwerk-provider"), resp.Header.Get("x-stellwerk-attempts"), len(primary.Requests()), body)
	}
}

// TestOwnKeyRateLimitCoolsOnlyThatTenant (issue 19): a 429 on a workspace's
// own provider key cools that key: the workspace's next request goes to
// the fallback, while every other workspace, on the shared key, keeps the
// provider.
func TestOwnKeyRateLimitCoolsOnlyThatTenant(t *testing.T) {
	t.Parallel()
	s := legalStack(t, nil)
	primary, claude := s.Providers["primary"], s.Providers["claude"]
	const own = "sk-legal-own-openai-key"
	primary.AlsoAccept(own)
	if resp, b := adminDo(t, s, "PUT", "/admin/provider-keys/legal/primary", `{"secret":"`+own+`"}`); resp.StatusCode/100 != 2 {
		t.Fatalf("PUT provider key: %d %s", resp.StatusCode, b)
	}
	chat := func(key string) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`,
			map[string]string{"Authorization": "Bearer " + key})
	}
	waitFor(t, "legal's own key in use", func() bool {
		resetAll(s)
		resp, _ := chat("sk-legal-client")
		return resp.StatusCode == 200 && len(primary.Requests()) == 1 && primary.Requests()[0].Header.Get("Authorization") == "Bearer "+own
	})

	// legal's key hits its limit: its request fails over to claude.
	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{Status: 429, RetryAfter: 60})
	if resp, b := chat("sk-legal-client"); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" {
		t.Fatalf("legal's 429: status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
	resetAll(s)
	// Another workspace, on the shared key, still gets the provider.
	if resp, b := chat("sk-dev-client"); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "primary" ||
		len(primary.Requests()) != 1 || primary.Requests()[0].Header.Get("Authorization") != "Bearer sk-primary" {
		t.Errorf("another workspace after legal's 429: status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
	// legal's own key cools down: its next request goes straight to claude.
	primary.Reset()
	if resp, b := chat("sk-legal-client"); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" ||
		resp.Header.Get("x-stellwerk-attempts") != "" || len(primary.Requests()) != 0 || len(claude.Requests()) != 1 {
		t.Errorf("legal after its 429: status %d provider %q attempts %q; primary got %d: %s", resp.StatusCode,
			resp.Header.Get("x-stellwerk-provider"), resp.Header.Get("x-stellwerk-attempts"), len(primary.Requests()), b)
	}
	var row map[string]any
	for _, p := range adminJSON(t, s, "/status")["providers"].([]any) {
		if r := p.(map[string]any); r["provider"] == "primary" {
			row = r
		}
	}
	if row == nil || row["workspace"] != "legal" || row["model"] != "primary-mini" || row["scope"] != "rate_limit" {
		t.Errorf("/status: %v", row)
	}
}
