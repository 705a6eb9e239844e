package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestExistingEnvoy boots envoy/existing-envoy.yaml — an Envoy with its own
// listener and routes plus the documented stellwerk additions — with
// stellwerk in clusters mode, and checks that LLM traffic is routed while the
// existing routes are untouched.
func TestExistingEnvoy(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Bootstrap: "envoy/existing-envoy.yaml",
		Mutate:    func(c *config.Config) { c.Envoy.Mode = config.ModeClusters },
	})
	alpha, beta := s.Providers["alpha"], s.Providers["beta"]

	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"beta-model","messages":[{"role":"user","content":"via the mesh"}]}`,
		map[string]string{"x-stellwerk-cluster": "provider_alpha"})
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "beta" {
		t.Fatalf("status %d provider %q: %s", resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), b)
	}
	if len(beta.Requests()) != 1 || len(alpha.Requests()) != 0 {
		t.Fatalf("alpha %d, beta %d requests", len(alpha.Requests()), len(beta.Requests()))
	}
	if got := beta.Requests()[0].Header.Get("Authorization"); got != "Bearer "+beta.Key {
		t.Errorf("credential %q", got)
	}

	// The existing route is served as before, stellwerk is not consulted, and
	// a spoofed routing header does not divert it to a provider.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/status", nil)
	req.Header.Set("x-stellwerk-cluster", "provider_alpha")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || strings.TrimSpace(string(body)) != "existing service" || r.Header.Get("x-stellwerk-decision-id") != "" {
		t.Errorf("existing route: %d %q %v", r.StatusCode, body, r.Header)
	}
	if len(alpha.Requests()) != 0 {
		t.Errorf("spoofed header reached alpha")
	}

	r, err = http.Get(s.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `"beta-model"`) {
		t.Errorf("models via existing Envoy: %d %s", r.StatusCode, body)
	}
}
