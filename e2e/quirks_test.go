package e2e

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestProviderWireQuirks: what OpenAI-compatible servers send that OpenAI
// does not, through Envoy (the provider-wire probe): an answer compressed
// because the request did not say it wants none, a byte-order mark, a
// content type in mixed case, a stream without [DONE], a 200 that carries
// an error. Each was a 502, a wrong success or a broken stream before.
func TestProviderWireQuirks(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(*config.Config) {})
	p := s.Providers["primary"]
	const ask = `{"model":"primary-mini","max_tokens":20,%s"messages":[{"role":"user","content":"hello"}]}`
	chat := func(stream bool) (int, []byte) {
		t.Helper()
		extra := ""
		if stream {
			extra = `"stream":true,`
		}
		resp, b := post(t, s.URL+"/v1/chat/completions", strings.Replace(ask, "%s", extra, 1), nil)
		return resp.StatusCode, b
	}
	served := func(quirk string, code int, b []byte) {
		t.Helper()
		if code != 200 || gjson.GetBytes(b, "routing.model").Str != "primary-mini" || gjson.GetBytes(b, "usage.completion_tokens").Int() == 0 {
			t.Errorf("%s, JSON: %d %s", quirk, code, b)
		}
	}
	streamed := func(quirk string, code int, b []byte) {
		t.Helper()
		if code != 200 || !strings.Contains(string(b), `"content":"Hello`) || strings.Contains(string(b), "stream_incomplete") {
			t.Errorf("%s, stream: %d %s", quirk, code, b)
		}
	}
	refused := func(quirk string, code int, b []byte, says string) {
		t.Helper()
		if e := decodeError(t, b).Error; code != 502 || e.Code != "provider_bad_response" || !strings.Contains(e.Message, says) {
			t.Errorf("%s: %d %s", quirk, code, b)
		}
	}

	// Asked for an uncompressed answer, a compressing server sends one.
	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkGzip})
	code, b := chat(false)
	served("gzip", code, b)
	code, b = chat(true)
	streamed("gzip", code, b)
	for _, r := range p.Requests() {
		if ae := r.Header.Get("Accept-Encoding"); ae != "identity" {
			t.Errorf("the provider was sent accept-encoding %q", ae)
		}
	}
	// One that compresses anyway: nothing stellwerk can read or pass on.
	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkGzipAlways})
	code, b = chat(false)
	refused("gzip-always", code, b, "compressed")

	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkBOM})
	code, b = chat(false)
	served("bom", code, b)

	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkMixedCase})
	code, b = chat(false)
	served("mixed-case", code, b)
	code, b = chat(true)
	streamed("mixed-case", code, b)

	// A stream that ends after its finish_reason without [DONE] is whole,
	// on the chat API and translated for the Messages API.
	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkNoDone})
	code, b = chat(true)
	streamed("no-done", code, b)
	resp, mb := post(t, s.URL+"/v1/messages", `{"model":"primary-mini","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hello"}]}`,
		map[string]string{"anthropic-version": "2023-06-01"})
	if ev := string(mb); resp.StatusCode != 200 || !strings.Contains(ev, `"text":"Hello`) || !strings.HasSuffix(ev, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") ||
		strings.Contains(ev, "event: error") {
		t.Errorf("no-done, Messages API stream: %d %s", resp.StatusCode, mb)
	}

	// The shared account's rate-limit headers are not the caller's.
	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkRate})
	resp, b = post(t, s.URL+"/v1/chat/completions", strings.Replace(ask, "%s", "", 1), nil)
	served("rate-headers", resp.StatusCode, b)
	for _, h := range []string{"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining", "retry-after-ms"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("the client got the provider's %s: %s", h, v)
		}
	}

	p.SetBehavior(mockllm.Behavior{Quirk: mockllm.QuirkError200})
	code, b = chat(false)
	refused("error-200", code, b, "quota exceeded")
	p.SetBehavior(mockllm.Behavior{})

	// What the provider got wrong counted against it, what it answered
	// well ended the run: the error under a 200 is a run of one.
	if f := gjson.GetBytes(adminBody(t, s, "/status"), `providers.#(provider=="primary").consecutive_failures`); f.Int() != 1 {
		t.Errorf("primary's run of failures: %s, want 1", f.Raw)
	}
}

// TestLargeAnswerEndsTheRun: an answer larger than Envoy's buffer, passed
// on in parts, is a success that ends the provider's run of failures, as
// its headers said; since successes counted only once an answer was read
// whole, it counted neither, and occasional errors around large answers
// cooled the provider (the health probe).
func TestLargeAnswerEndsTheRun(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) { c.Envoy.MaxRequestBytes = 16 << 10 })
	run := func() int64 {
		return gjson.GetBytes(adminBody(t, s, "/status"), `providers.#(provider=="claude").consecutive_failures`).Int()
	}
	for range 2 {
		if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"claude-haiku","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{"x-mock-status": "503"}); resp.StatusCode < 500 {
			t.Fatalf("an injected 503: %d %s", resp.StatusCode, b)
		}
	}
	if n := run(); n != 2 {
		t.Fatalf("a run of %d after two 503s, want 2", n)
	}
	resp, b := post(t, s.URL+"/v1/messages", `{"model":"claude-haiku","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"anthropic-version": "2023-06-01", "x-mock-answer-bytes": "200000"})
	if resp.StatusCode != 200 || len(b) < 100000 {
		t.Fatalf("a large answer: %d, %d bytes", resp.StatusCode, len(b))
	}
	if n := run(); n != 0 {
		t.Errorf("a run of %d after a large answer, want 0", n)
	}
}
