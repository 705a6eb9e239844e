package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// Security review, issue 11, finding 7: truncated streams, end to end
// through Envoy.

// truncationStack serves "gpt-fast" (OpenAI wire format) and
// "claude-haiku" (Anthropic), with failover or straight to the provider.
func truncationStack(t *testing.T, failover bool) *harness.Stack {
	return harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "openai", Key: "sk-openai"},
			{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"},
		},
		Models: []config.Model{
			{ID: "gpt-fast", Provider: "openai", ProviderModel: "gpt-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 1}},
			{ID: "claude-haiku", Provider: "claude", ProviderModel: "claude-haiku-4-5", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 5}},
		},
		Mutate: func(c *config.Config) {
			if !failover {
				c.Failover.MaxAttempts = 1 // straight to the provider, no egress listener
			}
		},
	})
}

// TestSecurityTruncatedStreamEndsWithError (finding 7): a provider that
// ends its stream cleanly but mid-way, in either wire format, with or
// without failover, never looks like a complete answer: the client's last
// event is the stream_incomplete error, which the openai SDK raises.
func TestSecurityTruncatedStreamEndsWithError(t *testing.T) {
	t.Parallel()
	for _, failover := range []bool{false, true} {
		mode := map[bool]string{false: "failover off", true: "failover on"}[failover]
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := truncationStack(t, failover)
			for _, model := range []string{"gpt-fast", "claude-haiku"} {
				t.Run(model, func(t *testing.T) {
					body := `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"one two three four"}]}`
					// The complete stream first: it must not get the error.
					for _, truncate := range []bool{false, true} {
						hdr := map[string]string{}
						if truncate {
							hdr["x-mock-reset"] = "truncate"
						}
						r := clientCall{body: body, hdr: hdr}.do(s)
						if r.err != nil || r.status != 200 {
							t.Fatalf("truncate=%v: %d %v", truncate, r.status, r.err)
						}
						var f translate.Framer
						evs := f.Feed([]byte(r.body), nil)
						if f.Pending() != 0 || len(evs) < 2 {
							t.Fatalf("truncate=%v: not well-formed SSE: %q", truncate, r.body)
						}
						first, last := string(evs[1].Data), string(evs[len(evs)-1].Data)
						if !strings.Contains(first, `"Hello"`) {
							t.Errorf("truncate=%v: the answer did not start: %q", truncate, r.body)
						}
						var e apiError
						_ = json.Unmarshal([]byte(last), &e)
						switch {
						case !truncate && (last != "[DONE]" || strings.Contains(r.body, "stream_incomplete")):
							t.Errorf("complete stream ends with %q", last)
						case truncate && (e.Error.Code != "stream_incomplete" || strings.Contains(r.body, "[DONE]") ||
							strings.Count(r.body, "stream_incomplete") != 1):
							t.Errorf("truncated stream ends with %q:\n%s", last, r.body)
						}
					}
				})
			}
			if failover {
				return
			}
			// The official SDK, on the format that looked complete before.
			s.Providers["claude"].SetBehavior(mockllm.Behavior{Reset: "truncate"})
			r := viaPython(t, s, "stream", `{"policy":{"allow":["claude-haiku"]}}`)
			if r.Error == nil || r.Error.Class != "APIError" || !strings.Contains(r.Error.Message, "ended before the answer was complete") ||
				!strings.HasPrefix(r.Content, "Hello") {
				t.Errorf("openai SDK on a truncated Anthropic stream: %+v", r)
			}
		})
	}
}
