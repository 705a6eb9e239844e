package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

// TestFixedCredentialEndsItsCooldown: a provider whose key file held a
// wrong key cools for that credential (scope credential in /status); the
// right key written back ends that cooldown as soon as Envoy has it. The
// cooldown (and its reopening) had held the provider back long after the
// fix, with scope rate_limit (the day-2 probe).
func TestFixedCredentialEndsItsCooldown(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {
		c.Failover.MaxAttempts = 2
		c.Failover.FailuresBeforeCooldown = 1
		c.Failover.Cooldown = 2 * time.Minute
	})
	cfg := *s.Config
	cfg.Providers = append(cfg.Providers, s.AddProvider("gamma", "sk-gamma", "eu"))
	cfg.Models = append(cfg.Models, config.Model{ID: "gamma-cheap", Provider: "gamma", ProviderModel: "gamma-upstream", ContextWindow: 128000,
		Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.2}})
	s.WriteConfig(&cfg)
	chat := func() string {
		resp, _ := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`, nil)
		return resp.Header.Get("x-stellwerk-model")
	}
	waitFor(t, "gamma to serve", func() bool { return chat() == "gamma-cheap" })

	keyFile := filepath.Join(s.Dir, "gamma.key")
	writeKey := func(k string) {
		if err := os.WriteFile(keyFile+".tmp", []byte(k), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(keyFile+".tmp", keyFile); err != nil {
			t.Fatal(err)
		}
	}
	writeKey("sk-wrong")
	// A refusal that comes while the new key is being switched in (Envoy
	// has it, stellwerk's tracker not yet) counts for the key before it,
	// whose cooldown the switch then ends: the next refusal cools the new
	// key (a refusal of the old key never cools a fixed one, which is
	// worse; docs/failover.md). So this waits for the cooldown itself.
	scope := func() any {
		for _, p := range adminJSON(t, s, "/status")["providers"].([]any) {
			if row := p.(map[string]any); row["provider"] == "gamma" && row["scope"] == "credential" {
				return row["scope"]
			}
		}
		return nil
	}
	waitFor(t, "the wrong key to be refused and cooled down", func() bool {
		chat()
		return strings.Contains(s.Log("stellwerk"), "credential refused: cooling it down") && scope() == "credential"
	})
	if m := chat(); m == "gamma-cheap" {
		t.Fatalf("gamma served with its key refused")
	}

	writeKey("sk-gamma")
	fixed := time.Now()
	for chat() != "gamma-cheap" {
		if time.Since(fixed) > 15*time.Second {
			t.Fatalf("gamma, its key fixed %s ago, is still skipped (cooldown 2 min)", time.Since(fixed).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(s.Log("stellwerk"), "provider credential changed: the cooldown of its refusal is cleared") {
		t.Errorf("the cleared cooldown was not logged")
	}
}
