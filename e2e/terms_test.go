package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestContentRuleWithoutCode (issue 18): a term list in the config and
// the library's example module (rego/stellwerk/terms_example_test.rego,
// loaded from policy.dir as a platform team would) keep a prompt that
// names project zephyr on-prem, through Envoy; a pinned US model is
// refused for it; other prompts route as before.
func TestContentRuleWithoutCode(t *testing.T) {
	t.Parallel()
	s := zephyrStack(t, []config.TermList{{Name: "project_zephyr", Terms: []string{"project zephyr", "zephyr roadmap"}, Patterns: []string{`zph-\d{4}`}}})
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

// TestContentRuleInUnspacedScripts (the non-English probe, 2026-12-07): a
// term list never matched inside a Chinese, Japanese or Thai sentence,
// which has no spaces between words, nor a Latin code name glued to such
// text, full-width, or with a zero-width space inside; each went to the
// US model. Now each stays on-prem, through Envoy, and a word that merely
// starts with the term still routes as before.
func TestContentRuleInUnspacedScripts(t *testing.T) {
	t.Parallel()
	s := zephyrStack(t, []config.TermList{{Name: "project_zephyr", Terms: []string{"project zephyr", "天鹅计划", "โครงการหงส์"}}})
	usa, onprem := s.Providers["usa"], s.Providers["onprem"]
	chat := s.URL + "/v1/chat/completions"
	for name, text := range map[string]string{
		"chinese sentence":        "请告诉我天鹅计划的进度。",
		"thai sentence":           "ขอรายงานความคืบหน้าของโครงการหงส์ด้วยครับ",
		"latin glued to chinese":  "请汇报project zephyr的进度",
		"latin glued to japanese": "project zephyrについて教えて",
		"full-width":              "ＰＲＯＪＥＣＴ ＺＥＰＨＹＲの進捗",
		"zero-width inside":       "Status of project zeph\u200byr, please.",
	} {
		t.Run(name, func(t *testing.T) {
			usa.Reset()
			onprem.Reset()
			b, _ := json.Marshal(map[string]any{"model": "auto", "messages": []map[string]string{{"role": "user", "content": text}}})
			resp, body := post(t, chat, string(b), nil)
			if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "local-llama" || len(usa.Requests()) != 0 {
				t.Fatalf("status %d, model %q, US got %d, want on-prem: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), len(usa.Requests()), body)
			}
		})
	}
	t.Run("a longer word routes as before", func(t *testing.T) {
		usa.Reset()
		resp, body := post(t, chat, `{"model":"auto","messages":[{"role":"user","content":"What did project zephyrus ship?"}]}`, nil)
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "us-cheap" || len(usa.Requests()) != 1 {
			t.Fatalf("status %d model %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), body)
		}
	})
}

// zephyrStack is the three regions with a platform team's content rule:
// the library's example module (rego/stellwerk/terms_example_test.rego)
// loaded from policy.dir, keeping what names project zephyr on-prem, and
// the config's term lists.
func zephyrStack(t *testing.T, terms []config.TermList) *harness.Stack {
	t.Helper()
	rule, err := os.ReadFile(filepath.Join("..", "rego", "stellwerk", "terms_example_test.rego"))
	if err != nil {
		t.Fatal(err)
	}
	policies := t.TempDir()
	if err := os.WriteFile(filepath.Join(policies, "zephyr.rego"), rule, 0o600); err != nil {
		t.Fatal(err)
	}
	return threeRegions(t, func(c *config.Config) {
		c.Policy.Dir = policies
		c.Classify.Terms = terms
	})
}
