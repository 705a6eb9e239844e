package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
)

// TestContentRuleWithoutCode (issue 18): a term list in the config and
// the library's example module (rego/stellwerk/terms_example_test.rego,
// loaded from policy.dir as a platform team would) keep a prompt that
// names project zephyr on-prem, through Envoy; a pinned US model is
// refused for it; other prompts route as before.
func TestContentRuleWithoutCode(t *testing.T) {
	t.Parallel()
	rule, err := os.ReadFile(filepath.Join("..", "rego", "stellwerk", "terms_example_test.rego"))
	if err != nil {
		t.Fatal(err)
	}
	policies := t.TempDir()
	if err := os.WriteFile(filepath.Join(policies, "zephyr.rego"), rule, 0o600); err != nil {
		t.Fatal(err)
	}
	s := threeRegions(t, func(c *config.Config) {
		c.Policy.Dir = policies
		c.Classify.Terms = []config.TermList{{Name: "project_zephyr", Terms: []string{"project zephyr", "zephyr roadmap"}, Patterns: []string{`zph-\d{4}`}}}
	})
	usa, onprem := s.Providers["usa"], s.Providers["onprem"]
	chat := s.URL + "/v1/chat/completions"

	for name, body := range map[string]string{
		"the term, upper case and accented": `{"model":"auto","messages":[{"role":"user","content":"Summarise the status of PROJECT ZÉPHYR for the board."}]}`,
		"the pattern":                       `{"model":"auto","messages":[{"role":"user","content":"What blocks ticket ZPH-1234?"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			usa.Reset()
			onprem.Reset()
			resp, b := post(t, chat, body, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if got := resp.Header.Get("x-stellwerk-model"); got != "local-llama" || len(onprem.Requests()) != 1 || len(usa.Requests()) != 0 {
				t.Fatalf("model %q, on-prem got %d, US got %d: %s", got, len(onprem.Requests()), len(usa.Requests()), b)
			}
		})
	}

	t.Run("pinning a US model for it is refused", func(t *testing.T) {
		usa.Reset()
		resp, b := post(t, chat, `{"model":"us-cheap","messages":[{"role":"user","content":"The zephyr roadmap, in three bullets."}]}`, nil)
		if resp.StatusCode != 403 || len(usa.Requests()) != 0 {
			t.Fatalf("status %d, US got %d: %s", resp.StatusCode, len(usa.Requests()), b)
		}
		if e := decodeError(t, b); !strings.Contains(e.Error.Message, "project zephyr: on-prem models only") {
			t.Errorf("%+v", e.Error)
		}
	})

	t.Run("other prompts route as before", func(t *testing.T) {
		usa.Reset()
		resp, b := post(t, chat, `{"model":"auto","messages":[{"role":"user","content":"What is a zephyr (the wind)?"}]}`, nil)
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "us-cheap" || len(usa.Requests()) != 1 {
			t.Fatalf("status %d model %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
		}
	})
}
