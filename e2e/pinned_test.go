package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestPinnedModelDoesNotFailOverUnasked (issue 18): a request that names a
// model gets that model or an error naming it, never a 200 from another
// model it did not ask for; with policy.fallback (or the workspace's
// pinned_fallback) it may fail over, and the answer says so.
func TestPinnedModelDoesNotFailOverUnasked(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		c.Workspaces = append(c.Workspaces, config.Workspace{Name: "lenient", Objective: "cost", PinnedFallback: true})
		c.Auth.Mode = "keys"
		c.Keys = append(c.Keys, config.Key{ID: "strict", Workspace: "default", SHA256: auth.Hash("sk-pinned-strict")},
			config.Key{ID: "lenient", Workspace: "lenient", SHA256: auth.Hash("sk-pinned-lenient")})
	})
	primary, claude, eu := s.Providers["primary"], s.Providers["claude"], s.Providers["eu"]
	chat := s.URL + "/v1/chat/completions"
	strict := map[string]string{"authorization": "Bearer sk-pinned-strict"}
	lenient := map[string]string{"authorization": "Bearer sk-pinned-lenient"}

	t.Run("pinned, provider down: 503 naming it, no other model tried", func(t *testing.T) {
		resetAll(s)
		claude.SetBehavior(mockllm.Behavior{Status: 503})
		resp, b := post(t, chat, `{"model":"claude-haiku","messages":[{"role":"user","content":"x"}]}`, strict)
		if resp.StatusCode != 503 || !strings.Contains(string(b), "claude-haiku") {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if len(claude.Requests()) != 1 || len(primary.Requests()) != 0 || len(eu.Requests()) != 0 {
			t.Errorf("requests: claude %d, primary %d, eu %d", len(claude.Requests()), len(primary.Requests()), len(eu.Requests()))
		}
	})

	for name, tc := range map[string]struct {
		body    string
		headers map[string]string
	}{
		"request opts in with policy.fallback":   {`{"model":"claude-haiku","policy":{"fallback":true},"messages":[{"role":"user","content":"x"}]}`, strict},
		"workspace opts in with pinned_fallback": {`{"model":"claude-haiku","messages":[{"role":"user","content":"x"}]}`, lenient},
	} {
		t.Run(name, func(t *testing.T) {
			resetAll(s)
			claude.SetBehavior(mockllm.Behavior{Status: 503})
			resp, b := post(t, chat, tc.body, tc.headers)
			if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") == "claude-haiku" {
				t.Fatalf("status %d model %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
			}
			if got := resp.Header.Get("x-stellwerk-fallback-from"); got != "claude-haiku" {
				t.Errorf("x-stellwerk-fallback-from %q", got)
			}
			var out struct {
				Routing struct {
					FallbackFrom string `json:"fallback_from"`
					Reason       string `json:"reason"`
				} `json:"routing"`
			}
			if err := json.Unmarshal(b, &out); err != nil || out.Routing.FallbackFrom != "claude-haiku" || !strings.Contains(out.Routing.Reason, "served by fallback") {
				t.Errorf("routing %+v (%v): %s", out.Routing, err, b)
			}
		})
	}

	t.Run("auto fails over as before, and says so", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Status: 503})
		resp, b := post(t, chat, `{"model":"auto","messages":[{"role":"user","content":"x"}]}`, strict)
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-fallback-from") != "primary-mini" {
			t.Fatalf("status %d %v: %s", resp.StatusCode, resp.Header, b)
		}
	})

	t.Run("auto with policy.fallback false stays on the chosen model", func(t *testing.T) {
		resetAll(s)
		primary.SetBehavior(mockllm.Behavior{Status: 503})
		resp, b := post(t, chat, `{"model":"auto","policy":{"fallback":false},"messages":[{"role":"user","content":"x"}]}`, strict)
		if resp.StatusCode != 503 || len(claude.Requests())+len(eu.Requests()) != 0 {
			t.Fatalf("status %d, claude %d, eu %d: %s", resp.StatusCode, len(claude.Requests()), len(eu.Requests()), b)
		}
	})
}
