package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

type hostileResult struct {
	Status  int    `json:"status"`
	Class   string `json:"class"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// viaSDK makes one chat completion for model with the openai Python SDK
// (e2e/clients/python/hostile.py), retrying as the SDK does up to retries.
func viaSDK(t *testing.T, s *harness.Stack, model string, retries int) hostileResult {
	t.Helper()
	py := harness.RequirePython(t)
	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "hostile.py"), s.URL, model, strconv.Itoa(retries)).Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var r hostileResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	return r
}

// cooling is /status's row of provider ("": any provider) while a cooldown
// is in force on it, nil if none.
func cooling(t *testing.T, s *harness.Stack, provider string) map[string]any {
	t.Helper()
	ps, _ := adminJSON(t, s, "/status")["providers"].([]any)
	for _, p := range ps {
		row, _ := p.(map[string]any)
		if row == nil || (provider != "" && row["provider"] != provider) {
			continue
		}
		if until, _ := row["cooling_until"].(string); until != "" {
			if at, err := time.Parse(time.RFC3339Nano, until); err == nil && at.After(time.Now()) {
				return row
			}
		}
	}
	return nil
}

// TestHostileProvider: what a provider sends cannot make stellwerk record
// its failures as successes, or a client retry what stellwerk would not
// (the hostile-upstream probe). Each model is pinned without a fallback: a
// plan of one, which goes to the provider's cluster straight away.
func TestHostileProvider(t *testing.T) {
	t.Parallel()
	names := []string{"served", "short", "drip", "retry", "redirect", "sse"}
	var specs []harness.ProviderSpec
	var models []config.Model
	for _, n := range names {
		specs = append(specs, harness.ProviderSpec{Name: n, Key: "sk-" + n})
		models = append(models, config.Model{ID: n + "-model", Provider: n, ProviderModel: n + "-upstream", ContextWindow: 128000,
			Price: config.Price{InputPerMTok: 1, OutputPerMTok: 2}})
	}
	s := harness.Start(t, harness.Options{Providers: specs, Models: models, Mutate: func(c *config.Config) {
		c.Envoy.RequestTimeout = 3 * time.Second
		c.Failover.FailuresBeforeCooldown = 2
		c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
	}})

	t.Run("x-stellwerk-served on a 503 is not believed", func(t *testing.T) {
		// It had the failure never recorded: six 503s, no cooldown.
		s.Providers["served"].SetBehavior(mockllm.Behavior{Status: 503, Headers: map[string]string{"x-stellwerk-served": "0"}})
		for range 2 {
			if r := viaSDK(t, s, "served-model", 0); r.Status != 503 {
				t.Fatalf("%+v", r)
			}
		}
		if cooling(t, s, "served") == nil {
			t.Errorf("two 503s with x-stellwerk-served: 0, and the provider is not cooling down")
		}
	})

	t.Run("a JSON answer that breaks after its headers is a failure", func(t *testing.T) {
		// "short": Content-Length 1000 bytes more than sent, then close;
		// "drip": one byte a second, cut at request_timeout.
		for _, p := range []string{"short", "drip"} {
			s.Providers[p].SetBehavior(mockllm.Behavior{Reset: p})
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if r := viaSDK(t, s, p+"-model", 0); r.Status == 200 && r.Message == "" && r.Class == "" {
						t.Errorf("%s: the SDK got an answer: %+v", p, r)
					}
				}()
			}
			wg.Wait()
			if cooling(t, s, p) == nil {
				t.Errorf("%s: two broken answers, and the provider is not cooling down", p)
			}
		}
	})

	t.Run("the provider's x-should-retry on a 400 is not passed", func(t *testing.T) {
		p := s.Providers["retry"]
		p.SetBehavior(mockllm.Behavior{Status: 400, Headers: map[string]string{"x-should-retry": "true"}})
		p.Reset()
		if r := viaSDK(t, s, "retry-model", 2); r.Status != 400 {
			t.Fatalf("%+v", r)
		}
		if n := len(p.Requests()); n != 1 {
			t.Errorf("the SDK retried a 400: the provider got %d requests", n)
		}
	})

	t.Run("an event stream for a request for one answer is a 502", func(t *testing.T) {
		s.Providers["sse"].SetBehavior(mockllm.Behavior{Reset: "sse"})
		if r := viaSDK(t, s, "sse-model", 0); r.Status != 502 || r.Code != "provider_bad_response" {
			t.Errorf("%+v", r)
		}
	})

	t.Run("a redirect is a 502", func(t *testing.T) {
		s.Providers["redirect"].SetBehavior(mockllm.Behavior{Reset: "redirect"})
		if r := viaSDK(t, s, "redirect-model", 0); r.Status != 502 || r.Code != "provider_bad_response" {
			t.Errorf("%+v", r)
		}
	})
}
