package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

// TestKeyChangesLeaveConfigAlone: creating virtual keys reloads nothing: a
// provider removed from the config leaves Envoy when the grace period from
// its removal ends, however often keys change meanwhile, and a broken
// config file is refused once, not again at every key change. Each key
// change had reloaded the file and re-armed the removal, so on a platform
// that issues keys often the removed provider never left, and each key
// change wrote another refuse record (the day-2 probe).
func TestKeyChangesLeaveConfigAlone(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) { c.Failover.MaxAttempts = 2 }) // grace: 5 s + 2 × 1 s
	clusters := func() string { return envoyClusters(t, s) }
	var mu sync.Mutex
	created, made := 0, 0
	createKey := func() {
		mu.Lock()
		created++
		id := fmt.Sprintf("churn-%d", created)
		mu.Unlock()
		if resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"`+id+`","workspace":"default"}`); resp.StatusCode/100 != 2 {
			t.Errorf("POST /admin/keys: %d %s", resp.StatusCode, b)
		}
		mu.Lock()
		made++
		mu.Unlock()
	}
	// Keys are created every 500 ms (two key-store polls) from before the
	// removal to the end.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				createKey()
			}
		}
	}()
	stopKeys := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stopKeys()
	keys := func() int {
		mu.Lock()
		defer mu.Unlock()
		return made
	}
	waitFor(t, "a key before the removal", func() bool { return keys() >= 1 })

	cfg := withoutPrimary(s)
	s.WriteConfig(&cfg)
	waitFor(t, "the reload", func() bool { return strings.Contains(s.Log("stellwerk"), "removed providers stay in Envoy") })
	removed := time.Now()
	reloads := strings.Count(s.Log("stellwerk"), "config reloaded")
	for strings.Contains(clusters(), "provider_primary::") {
		if time.Since(removed) > 15*time.Second {
			t.Fatalf("primary's cluster is still in Envoy %s after its removal (grace 7 s), keys created every 500 ms", time.Since(removed).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := strings.Count(s.Log("stellwerk"), "config reloaded") - reloads; n != 0 {
		t.Errorf("%d reloads after the removal, with nothing changed but virtual keys", n)
	}

	// A broken file is refused once, whatever keys are created meanwhile.
	path := filepath.Join(s.Dir, "stellwerk.yaml")
	good, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(good, []byte("\nbogus_field: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { return strings.Contains(s.Log("stellwerk"), "config change refused") })
	refusedAt := keys()
	waitFor(t, "three more keys", func() bool { return keys() >= refusedAt+3 })
	stopKeys()
	if n := strings.Count(s.Log("stellwerk"), "config change refused"); n != 1 {
		t.Errorf("the broken file was refused %d times, keys created meanwhile", n)
	}
	if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{}); resp.StatusCode != 200 {
		t.Errorf("after the key changes: %d %s", resp.StatusCode, b)
	}
}

// TestRemovalGraceCountsFromTheRemoval: a reload that does not bring a
// removed provider back (here a price change 3 s later) does not extend
// its grace period: its cluster leaves Envoy 7 s after the reload that
// removed it. Each later reload had started the grace period again.
func TestRemovalGraceCountsFromTheRemoval(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) { c.Failover.MaxAttempts = 2 }) // grace: 5 s + 2 × 1 s
	clusters := func() string { return envoyClusters(t, s) }
	cfg := withoutPrimary(s)
	s.WriteConfig(&cfg)
	waitFor(t, "the removal", func() bool { return strings.Contains(s.Log("stellwerk"), "removed providers stay in Envoy") })
	removed := time.Now()
	time.Sleep(3 * time.Second)
	cfg.Models = slices.Clone(cfg.Models)
	cfg.Models[0].Price.InputPerMTok += 0.5
	s.WriteConfig(&cfg)
	waitFor(t, "the price change", func() bool { return strings.Count(s.Log("stellwerk"), "config reloaded") >= 2 })
	if !strings.Contains(clusters(), "provider_primary::") {
		t.Fatalf("primary's cluster left Envoy within its grace period")
	}
	for strings.Contains(clusters(), "provider_primary::") {
		if time.Since(removed) > 9*time.Second {
			t.Fatalf("primary's cluster is still in Envoy %s after its removal (grace 7 s)", time.Since(removed).Round(100*time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
