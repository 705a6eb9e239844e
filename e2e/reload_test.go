package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestConfigHotReload: a provider and a model added to the config file
// become routable without a restart (a new cluster reaches Envoy over xDS);
// a broken file is refused and the last good config keeps serving.
func TestConfigHotReload(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cfg := *s.Config
	cfg.Providers = append(cfg.Providers, s.AddProvider("gamma", "sk-gamma", "eu"))
	cfg.Models = append(cfg.Models, config.Model{ID: "gamma-model", Provider: "gamma", ProviderModel: "gamma-upstream", ContextWindow: 8000})
	s.WriteConfig(&cfg)

	waitFor(t, "the new model in /v1/models", func() bool {
		resp, err := http.Get(s.URL + "/v1/models")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `"gamma-model"`)
	})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"gamma-model","messages":[{"role":"user","content":"new here"}]}`, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "Hello from gamma") {
		t.Fatalf("new model: %d %s", resp.StatusCode, b)
	}
	if got := s.Providers["gamma"].Requests()[0].Header.Get("Authorization"); got != "Bearer sk-gamma" {
		t.Errorf("credential %q", got)
	}

	// A broken file: refused, reported, and the running config keeps serving.
	path := filepath.Join(s.Dir, "stellwerk.yaml")
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(good, []byte("\nbogus_field: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	var status struct {
		ConfigError string `json:"config_error"`
	}
	waitFor(t, "the refusal in /status", func() bool {
		resp, err := s.AdminGet("/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		status.ConfigError = ""
		return json.NewDecoder(resp.Body).Decode(&status) == nil && status.ConfigError != ""
	})
	if !strings.Contains(status.ConfigError, `unknown field "bogus_field"`) {
		t.Errorf("config_error %q", status.ConfigError)
	}
	if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"gamma-model","messages":[{"role":"user","content":"still here"}]}`, nil); resp.StatusCode != 200 {
		t.Fatalf("after a broken config: %d %s", resp.StatusCode, b)
	}
	if !strings.Contains(s.Log("stellwerk"), "config change refused") {
		t.Errorf("the refusal was not logged")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
