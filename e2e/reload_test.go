package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
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
	if got := configRefusal(t, s); !strings.Contains(got, `unknown field "bogus_field"`) {
		t.Errorf("config_error %q", got)
	}
	if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"gamma-model","messages":[{"role":"user","content":"still here"}]}`, nil); resp.StatusCode != 200 {
		t.Fatalf("after a broken config: %d %s", resp.StatusCode, b)
	}
	if !strings.Contains(s.Log("stellwerk"), "config change refused") {
		t.Errorf("the refusal was not logged")
	}
}

// TestSIGHUPChecksNow: SIGHUP (systemctl reload, kill -HUP) makes serve
// check its config and policy at once; it had killed the server without
// draining or writing its records (the config probe).
func TestSIGHUPChecksNow(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	p, err := os.FindProcess(s.PID("stellwerk"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP line", func() bool { return strings.Contains(s.Log("stellwerk"), "SIGHUP: checking the config and the policy") })
	if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"after a SIGHUP"}]}`, nil); resp.StatusCode != 200 {
		t.Fatalf("after a SIGHUP: %d %s", resp.StatusCode, b)
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

// TestReloadRemovesProviderMakeBeforeBreak (issue 17): a provider removed
// from the config while requests to it are in flight: those requests
// finish, new ones go elsewhere, nothing fails, and the provider's cluster
// leaves Envoy only after the grace period, without an Envoy restart.
func TestReloadRemovesProviderMakeBeforeBreak(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) { c.Failover.MaxAttempts = 2 }) // grace: 5 s + 2 × 1 s
	primary := s.Providers["primary"]
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 1500 * time.Millisecond})
	uptime := func() time.Duration { // Envoy renders it as a duration ("10s")
		resp, err := http.Get(s.EnvoyAdmin + "/server_info")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var info struct {
			UptimeAllEpochs string `json:"uptime_all_epochs"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&info)
		d, err := time.ParseDuration(info.UptimeAllEpochs)
		if err != nil {
			t.Fatalf("Envoy's uptime %q: %v", info.UptimeAllEpochs, err)
		}
		return d
	}
	clusters := func() string { return envoyClusters(t, s) }
	before := uptime()

	// Requests to primary (the cheapest) in flight, and a steady stream of
	// new ones while the config changes.
	var mu sync.Mutex
	var failed []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	var stop sync.Once
	stopLoad := func() { stop.Do(func() { close(done); wg.Wait() }) }
	defer stopLoad() // before the stack goes, whatever happens
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
				if resp.StatusCode != 200 {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%d %s", resp.StatusCode, b))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond) // some are waiting on primary now
	cfg := withoutPrimary(s)
	s.WriteConfig(&cfg)
	waitFor(t, "the reload", func() bool { return strings.Contains(s.Log("stellwerk"), "removed providers stay in Envoy") })
	if !strings.Contains(clusters(), "provider_primary::") {
		t.Errorf("primary's cluster left Envoy at once")
	}
	time.Sleep(2 * time.Second) // new requests, decided without primary
	stopLoad()
	waitFor(t, "primary's cluster to leave Envoy after the grace period", func() bool { return !strings.Contains(clusters(), "provider_primary::") })
	if after := uptime(); after < before {
		t.Errorf("Envoy restarted: uptime %s, then %s", before, after)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed across the reload, e.g. %s", len(failed), failed[0])
	}
	if len(primary.Requests()) == 0 {
		t.Errorf("no request was in flight to the removed provider")
	}
}

// envoyClusters is Envoy's admin /clusters page: the clusters it has, with
// their endpoints' state.
func envoyClusters(t *testing.T, s *harness.Stack) string {
	t.Helper()
	resp, err := http.Get(s.EnvoyAdmin + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// withoutPrimary is the failover stack's config without its provider
// primary and primary's models, claude-haiku the default: a config that
// removes a provider.
func withoutPrimary(s *harness.Stack) config.Config {
	cfg := *s.Config
	cfg.Providers = slices.DeleteFunc(slices.Clone(cfg.Providers), func(p config.Provider) bool { return p.Name == "primary" })
	cfg.Models = slices.DeleteFunc(slices.Clone(cfg.Models), func(m config.Model) bool { return m.Provider == "primary" })
	cfg.Routing.DefaultModel = "claude-haiku"
	return cfg
}

// configRefusal waits for /status to show a refused config change, and
// returns its config_error.
func configRefusal(t *testing.T, s *harness.Stack) string {
	t.Helper()
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
	return status.ConfigError
}
