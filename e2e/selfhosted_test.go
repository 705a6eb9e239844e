package e2e

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// selfHosted is a stack whose workspace may use one self-hosted model
// server ("box"), as an on-prem deployment is: nothing to fail over to.
func selfHosted(t *testing.T, f config.Failover) (*harness.Stack, *harness.Provider) {
	t.Helper()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "box", Residency: "eu"}},
		Models: []config.Model{{ID: "llama", Provider: "box", ProviderModel: "llama-3.3-70b", ContextWindow: 128000,
			Price: config.Price{InputPerMTok: 0.01, OutputPerMTok: 0.01}}},
		Mutate: func(c *config.Config) {
			c.Failover.AttemptTimeout = 10 * time.Second
			c.Failover.FailuresBeforeCooldown = f.FailuresBeforeCooldown
			c.Failover.Cooldown, c.Failover.Reopen = f.Cooldown, f.Reopen
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default"})
		},
	})
	return s, s.Providers["box"]
}

// TestBusyBoxIsNotOffline: a self-hosted server that takes 2 requests at a
// time answers a burst's overflow 503 "busy" (llama.cpp) or 429 (Ollama).
// The overflow cools it (an outage, or the model's rate limit), but the
// next request, sent after the burst, is served through the official
// openai SDK: nothing else may serve it, so it goes as a probe, and the
// box's answer ends the cooldown. Until 2026-12-08 every request for the
// next ~60 s was a 503 "provider in cooldown after failures" while the box
// was idle (the on-prem probe).
func TestBusyBoxIsNotOffline(t *testing.T) {
	t.Parallel()
	s, box := selfHosted(t, config.Failover{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, Reopen: 30 * time.Second})
	chat := `{"model":"auto","messages":[{"role":"user","content":"x"}]}`
	for _, status := range []int{503, 429} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			box.SetBehavior(mockllm.Behavior{Capacity: 2, BusyStatus: status, FirstByteDelay: 500 * time.Millisecond})
			var wg sync.WaitGroup
			var mu sync.Mutex
			statuses := map[int]int{}
			for range 8 {
				wg.Go(func() {
					resp, _ := post(t, s.URL+"/v1/chat/completions", chat, nil)
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if statuses[200] == 0 || statuses[200] == 8 {
				t.Fatalf("the burst: %v, want some served and some over capacity", statuses)
			}
			// The overflow cooled the box; the burst's own answers, which
			// came after it, may have ended the cooldown already.
			if ps, _ := adminJSON(t, s, "/status")["providers"].([]any); len(ps) == 0 {
				t.Fatal("the burst's overflow started no cooldown: the test proves nothing")
			}
			r := viaPython(t, s, "plain", "")
			if r.Error != nil || r.Model != "llama" {
				t.Fatalf("the request after the burst: %+v", r.Error)
			}
			if row := cooling(t, s, "box"); row != nil {
				t.Errorf("still cooling after the box answered: %v", row)
			}
		})
	}
}

// TestColdStartServedWhenHealed: a self-hosted server loading its model
// answers 503 "Loading model" until it has; its failures cool it for a
// minute. The first request after it is ready is served (through the
// official openai SDK) within the cooldown, rather than refused for the
// cooldown and most of the reopening (~50 s more than the box needed in
// the on-prem probe). The 503 that started the cooldown says when to come
// back (Retry-After); the first one had none.
func TestColdStartServedWhenHealed(t *testing.T) {
	t.Parallel()
	s, box := selfHosted(t, config.Failover{FailuresBeforeCooldown: 2, Cooldown: time.Minute, Reopen: time.Minute})
	chat := `{"model":"auto","messages":[{"role":"user","content":"x"}]}`
	box.SetBehavior(mockllm.Behavior{Status: 503, Message: "Loading model"})
	for i := range 2 {
		resp, b := post(t, s.URL+"/v1/chat/completions", chat, nil)
		if resp.StatusCode != 503 {
			t.Fatalf("request %d while loading: %d %s", i, resp.StatusCode, b)
		}
		if i == 1 {
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 60 {
				t.Errorf("the 503 that started the cooldown: Retry-After %q, want the cooldown's end", resp.Header.Get("Retry-After"))
			}
		}
	}
	if cooling(t, s, "box") == nil {
		t.Fatalf("no cooldown after the box's 503s: %v", adminJSON(t, s, "/status"))
	}
	box.SetBehavior(mockllm.Behavior{}) // loaded
	time.Sleep(1100 * time.Millisecond) // past a probe the requests above may have been
	r := viaPython(t, s, "plain", "")
	if r.Error != nil || r.Model != "llama" {
		t.Fatalf("the first request after the box is ready: %+v", r.Error)
	}
	// Back in full: the next ones, sequential, are served too.
	for range 3 {
		if r := viaPython(t, s, "plain", ""); r.Error != nil {
			t.Fatalf("after the box came back: %+v", r.Error)
		}
	}
}
