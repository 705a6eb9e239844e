package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestWorkspaceOwnProviderKey (issue 13, bring your own key): a workspace's
// own key for a provider, stored through the admin API (encrypted at
// rest), reaches Envoy as a secret and is what that provider receives for
// the workspace's requests, on the first attempt and on a failover; every
// other workspace keeps the shared key. The key is never in an admin
// answer, the config dump or stellwerk's log.
func TestWorkspaceOwnProviderKey(t *testing.T) {
	t.Parallel()
	s := legalStack(t, nil)
	primary, claude := s.Providers["primary"], s.Providers["claude"]
	const ownOpenAI, ownAnthropic = "sk-legal-own-openai-key", "sk-ant-legal-own-key"
	primary.AlsoAccept(ownOpenAI)
	claude.AlsoAccept(ownAnthropic)
	for path, secret := range map[string]string{"/admin/provider-keys/legal/primary": ownOpenAI, "/admin/provider-keys/legal/claude": ownAnthropic} {
		if resp, b := adminDo(t, s, "PUT", path, `{"secret":"`+secret+`"}`); resp.StatusCode/100 != 2 || strings.Contains(string(b), secret) {
			t.Fatalf("PUT %s: %d %s", path, resp.StatusCode, b)
		}
	}
	chat := func(key string) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`,
			map[string]string{"Authorization": "Bearer " + key})
	}

	// The key store's change reaches Envoy within a few seconds (a reload
	// waits for Envoy to accept the new clusters before routing to them).
	stored := time.Now()
	deadline := stored.Add(10 * time.Second)
	for {
		resetAll(s)
		resp, b := chat("sk-legal-client")
		if resp.StatusCode != 200 {
			t.Fatalf("legal: %d %s", resp.StatusCode, b)
		}
		if got := primary.Requests()[0].Header.Get("Authorization"); got == "Bearer "+ownOpenAI {
			t.Logf("the workspace's own key was in use %.1fs after it was stored", time.Since(stored).Seconds())
			break
		} else if got != "Bearer sk-primary" || time.Now().After(deadline) {
			t.Fatalf("legal's request reached the provider with %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}

	resetAll(s)
	if resp, b := chat("sk-dev-client"); resp.StatusCode != 200 || primary.Requests()[0].Header.Get("Authorization") != "Bearer sk-primary" {
		t.Errorf("another workspace: %d %s, provider saw %q", resp.StatusCode, b, primary.Requests()[0].Header.Get("Authorization"))
	}

	// Failover: the retry's egress listener picks legal's Anthropic key.
	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{Status: 503})
	resp, b := chat("sk-legal-client")
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "claude" || len(claude.Requests()) != 1 ||
		claude.Requests()[0].Header.Get("x-api-key") != ownAnthropic || primary.Requests()[0].Header.Get("Authorization") != "Bearer "+ownOpenAI {
		t.Errorf("failover: %d %s; claude saw %v", resp.StatusCode, b, claude.Requests())
	}
	for _, r := range append(primary.Requests(), claude.Requests()...) {
		for k := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-stellwerk-") {
				t.Errorf("a provider got the internal header %s", k)
			}
		}
	}

	// A provider (or a gateway before it) that echoes the workspace's own
	// key: not in a header, not in the 503 quoting its error (a code
	// review found both; the edge knew only the catalog's credentials).
	primary.SetBehavior(mockllm.Behavior{})
	for _, status := range []string{"", "500"} {
		hdr := map[string]string{"Authorization": "Bearer sk-legal-client", "x-mock-echo-auth": "1"}
		if status != "" {
			hdr["x-mock-status"] = status
		}
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"hello"}]}`, hdr)
		if strings.Contains(string(b), ownOpenAI) || (status != "" && !strings.Contains(string(b), "you sent Bearer [credential]")) {
			t.Errorf("echo, status %q: %d %s", status, resp.StatusCode, b)
		}
		for k, vs := range resp.Header {
			if strings.Contains(strings.Join(vs, " "), ownOpenAI) {
				t.Errorf("echo, status %q: header %s shows the workspace's key", status, k)
			}
		}
	}

	// Nowhere to be read back.
	for _, path := range []string{"/admin/provider-keys", "/config", "/status"} {
		r, err := s.AdminGet(path)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if strings.Contains(string(rb), ownOpenAI) || strings.Contains(string(rb), ownAnthropic) {
			t.Errorf("GET %s shows a workspace key", path)
		}
	}
	if r, err := http.Get(s.EnvoyAdmin + "/config_dump?include_eds"); err == nil {
		rb, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if strings.Contains(string(rb), ownOpenAI) || !strings.Contains(string(rb), "stellwerk_credential_primary__ws_legal") {
			t.Errorf("Envoy's config dump: key shown %v, secret named %v", strings.Contains(string(rb), ownOpenAI),
				strings.Contains(string(rb), "stellwerk_credential_primary__ws_legal"))
		}
	}
	if log := s.Log("stellwerk"); strings.Contains(log, ownOpenAI) || strings.Contains(log, ownAnthropic) {
		t.Errorf("stellwerk's log shows a workspace key")
	}
}

// TestOwnKeyRefusedCoolsItAlone: a workspace's own key the provider
// refuses (revoked at the provider) cools that key, not the provider:
// every other workspace keeps it through the shared key. One tenant could
// take the provider from all by sending requests (found by a helper). A
// new key for the workspace ends that cooldown at once (the day-2 probe).
func TestOwnKeyRefusedCoolsItAlone(t *testing.T) {
	t.Parallel()
	s := legalStack(t, func(c *config.Config) { c.Failover.FailuresBeforeCooldown = 2 })
	primary := s.Providers["primary"]
	if resp, b := adminDo(t, s, "PUT", "/admin/provider-keys/legal/primary", `{"secret":"sk-legal-revoked"}`); resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	chat := func(key string) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`,
			map[string]string{"Authorization": "Bearer " + key})
	}
	// Until the stored key is in use, legal's requests still succeed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resetAll(s)
		chat("sk-legal-client")
		if rs := primary.Requests(); len(rs) > 0 && rs[0].Header.Get("Authorization") == "Bearer sk-legal-revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the workspace's key never reached the provider")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for range 4 { // past failures_before_cooldown: legal's key cools
		chat("sk-legal-client")
	}
	resetAll(s)
	if resp, b := chat("sk-dev-client"); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "primary-mini" {
		t.Errorf("another workspace after legal's key was refused: %d %s %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	if resp, _ := chat("sk-legal-client"); resp.Header.Get("x-stellwerk-model") == "primary-mini" {
		t.Errorf("legal still goes to primary-mini with a refused key")
	}
	// legal's key replaced with one the provider takes: its cooldown ends
	// as the new key reaches Envoy, not 30 s (and a reopening) later.
	if resp, b := adminDo(t, s, "PUT", "/admin/provider-keys/legal/primary", `{"secret":"sk-primary"}`); resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	fixed := time.Now()
	for {
		if resp, _ := chat("sk-legal-client"); resp.Header.Get("x-stellwerk-model") == "primary-mini" {
			break
		}
		if time.Since(fixed) > 10*time.Second {
			t.Fatalf("legal's key, replaced %s ago, is still in cooldown (30 s)", time.Since(fixed).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// legalStack is failoverStackWith in keys mode: workspace legal (key
// sk-legal-client) and default (sk-dev-client), and a master key for the
// workspaces' own provider keys; mutate (may be nil) changes the rest.
func legalStack(t *testing.T, mutate func(*config.Config)) *harness.Stack {
	master := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(master, []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return failoverStackWith(t, func(c *config.Config) {
		c.Auth.Mode = "keys"
		c.Workspaces = append(c.Workspaces, config.Workspace{Name: "legal", Objective: "cost"})
		c.Keys = []config.Key{
			{ID: "legal-bot", SHA256: auth.Hash("sk-legal-client"), Workspace: "legal"},
			{ID: "dev", SHA256: auth.Hash("sk-dev-client"), Workspace: "default"},
		}
		c.State.MasterKeys = []config.MasterKey{{ID: "m1", File: master}}
		if mutate != nil {
			mutate(c)
		}
	})
}

// TestOwnKeyWhereNoSharedKeyIs: a provider without a shared credential is
// served to a workspace that brings its own key for it, by auto as by a
// pinned model, and to no one else. auto had ignored the workspace's key
// (only the shared credential counted), while /v1/models listed the
// provider's models for it.
func TestOwnKeyWhereNoSharedKeyIs(t *testing.T) {
	t.Parallel()
	master := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(master, []byte(strings.Repeat("ef", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "shared", Key: "sk-shared"},
			{Name: "bring", Key: "sk-bring-own", WithholdKey: true},
		},
		Models: []config.Model{
			{ID: "shared-model", Provider: "shared", ContextWindow: 128000, Price: config.Price{InputPerMTok: 5, OutputPerMTok: 10}},
			{ID: "bring-cheap", Provider: "bring", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.2}},
		},
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Routing.DefaultModel = "shared-model"
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"}, config.Workspace{Name: "legal", Objective: "cost"})
			c.Keys = []config.Key{
				{ID: "legal-bot", SHA256: auth.Hash("sk-legal-client"), Workspace: "legal"},
				{ID: "dev", SHA256: auth.Hash("sk-dev-client"), Workspace: "default"},
			}
			c.State.MasterKeys = []config.MasterKey{{ID: "m1", File: master}}
		},
	})
	chat := func(key, model string) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hello"}]}`,
			map[string]string{"Authorization": "Bearer " + key})
	}
	if resp, b := chat("sk-legal-client", "auto"); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "shared-model" {
		t.Fatalf("legal before its key: %d %s %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	if resp, b := adminDo(t, s, "PUT", "/admin/provider-keys/legal/bring", `{"secret":"sk-bring-own"}`); resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	// The stored key reaches Envoy within a few seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, b := chat("sk-legal-client", "auto")
		if resp.StatusCode == 200 && resp.Header.Get("x-stellwerk-model") == "bring-cheap" {
			break
		}
		if resp.StatusCode != 200 || time.Now().After(deadline) {
			t.Fatalf("legal's auto with its own key: %d %s %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rs := s.Providers["bring"].Requests(); len(rs) == 0 || rs[len(rs)-1].Header.Get("Authorization") != "Bearer sk-bring-own" {
		t.Errorf("the provider did not get legal's key")
	}
	if resp, b := chat("sk-legal-client", "bring-cheap"); resp.StatusCode != 200 {
		t.Errorf("legal pinned: %d %s", resp.StatusCode, b)
	}
	// Everyone else: auto goes to the shared provider, and the model is
	// neither offered nor sendable.
	if resp, b := chat("sk-dev-client", "auto"); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "shared-model" {
		t.Errorf("default's auto: %d %s %s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	if resp, b := chat("sk-dev-client", "bring-cheap"); resp.StatusCode != 502 || !strings.Contains(string(b), "provider_credential_missing") {
		t.Errorf("default pinned to bring-cheap: %d %s", resp.StatusCode, b)
	}
	if resp, b := chat("sk-dev-client", "gpt-9"); resp.StatusCode != 404 || strings.Contains(string(b), "bring-cheap") {
		t.Errorf("an unknown model's list of what is available: %d %s", resp.StatusCode, b)
	}
}

// TestOwnKeyWithoutItsMasterKey: a stellwerk whose state.master_keys lacks
// the key a workspace's provider key is stored under (a replica not yet
// restarted with the new list when rotate-master ran) does not start, and
// says which master key it needs. It started silently and its Envoy sent
// the workspace's requests with the shared credential (the operator
// probe).
func TestOwnKeyWithoutItsMasterKey(t *testing.T) {
	t.Parallel()
	s := legalStack(t, nil)
	if resp, b := adminDo(t, s, "PUT", "/admin/provider-keys/legal/primary", `{"secret":"sk-legal-own"}`); resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	s.Stop("stellwerk")
	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *s.Config
	cfg.State.MasterKeys = []config.MasterKey{{ID: "m2", File: other}}
	s.WriteConfig(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, harness.Binary(t), "serve", "--config", filepath.Join(s.Dir, "stellwerk.yaml")).CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), `master key "m1"`) || strings.Contains(string(out), "sk-legal-own") {
		t.Fatalf("serve without the record's master key: %v (timed out: %v)\n%s", err, ctx.Err() != nil, out)
	}
}
