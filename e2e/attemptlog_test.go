package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// Security review, issue 11, finding 6: per-request state, end to end
// through Envoy.

// attemptEntries reads stellwerk's attempt log size from the admin API.
func attemptEntries(t *testing.T, s *harness.Stack) int {
	t.Helper()
	v, ok := adminJSON(t, s, "/debug/vars")["extproc_attempt_entries"].(float64)
	if !ok {
		t.Fatal("/debug/vars has no extproc_attempt_entries")
	}
	return int(v)
}

// clientCall is one streamed chat request as a client makes it: it may
// hang up after some events (readEvents > 0) or after a time (cancelAfter).
type clientCall struct {
	body        string
	hdr         map[string]string
	readEvents  int
	cancelAfter time.Duration
}

type callResult struct {
	status   int
	attempts string
	decision string
	body     string
	err      error
}

func (c clientCall) do(s *harness.Stack) callResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.cancelAfter > 0 {
		time.AfterFunc(c.cancelAfter, cancel)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return callResult{err: err}
	}
	defer resp.Body.Close()
	r := callResult{status: resp.StatusCode, attempts: resp.Header.Get("x-stellwerk-attempts"), decision: resp.Header.Get("x-stellwerk-decision-id")}
	if c.readEvents > 0 {
		br := bufio.NewReader(resp.Body)
		for seen := 0; seen < c.readEvents; {
			line, err := br.ReadString('\n')
			if err != nil {
				r.err = err
				return r
			}
			if strings.HasPrefix(line, "data: ") {
				seen++
			}
		}
		return r // hang up mid-stream
	}
	b, err := io.ReadAll(resp.Body)
	r.body, r.err = string(b), err
	return r
}

// TestSecurityAttemptLogBoundedE2E (finding 6): requests through a real
// Envoy that fail over, time out, fail everywhere, break off, or whose
// clients hang up before or during the answer leave no per-request state
// in stellwerk once they are over.
func TestSecurityAttemptLogBoundedE2E(t *testing.T) {
	t.Parallel()
	s := failoverStack(t, 1000)
	primary, claude, eu := s.Providers["primary"], s.Providers["claude"], s.Providers["eu"]
	stream := `{"model":"auto","stream":true,"messages":[{"role":"user","content":"tell me about state"}]}`
	run := func(calls []clientCall) []callResult {
		out := make([]callResult, len(calls))
		var wg sync.WaitGroup
		for i, c := range calls {
			wg.Go(func() { out[i] = c.do(s) })
		}
		wg.Wait()
		return out
	}

	// The primary stalls: each attempt on it times out after 1 s and its
	// egress stream ends while the fallback answers. Half the clients hang
	// up before that. While they wait, the log holds their entries.
	primary.SetBehavior(mockllm.Behavior{FirstByteDelay: 10 * time.Second})
	var calls []clientCall
	for i := range 8 {
		c := clientCall{body: stream}
		if i%2 == 1 {
			c.cancelAfter = 600 * time.Millisecond
		}
		calls = append(calls, c)
	}
	peak := 0
	done := make(chan []callResult)
	go func() { done <- run(calls) }()
	var results []callResult
	for results == nil {
		select {
		case results = <-done:
		case <-time.After(50 * time.Millisecond):
			peak = max(peak, attemptEntries(t, s))
		}
	}
	if peak == 0 || peak > 8 {
		t.Errorf("peak of %d entries for 8 requests in flight, want 1..8", peak)
	}
	for i, r := range results {
		if i%2 == 0 && (r.status != 200 || r.attempts != "2" || !strings.Contains(r.body, "[DONE]")) {
			t.Errorf("stalled primary, request %d: %d attempts %q %v: %.200s", i, r.status, r.attempts, r.err, r.body)
		}
	}

	// A mix: the primary fails over to claude, which streams slowly;
	// clients hang up mid-stream, before the answer, or read to the end;
	// streams break off or are reset; EU-only requests fail everywhere.
	resetAll(s)
	primary.SetBehavior(mockllm.Behavior{Status: 503})
	claude.SetBehavior(mockllm.Behavior{ChunkDelay: 30 * time.Millisecond})
	eu.SetBehavior(mockllm.Behavior{Status: 503})
	euOnly := `{"model":"auto","stream":true,"policy":{"residency":"eu"},"messages":[{"role":"user","content":"x"}]}`
	calls = nil
	for range 4 {
		calls = append(calls,
			clientCall{body: stream},                // served by the fallback
			clientCall{body: stream, readEvents: 2}, // hangs up mid-stream
			clientCall{body: stream, hdr: map[string]string{"x-mock-first-byte-delay": "800ms"}, cancelAfter: 300 * time.Millisecond}, // hangs up before the answer
			clientCall{body: stream, hdr: map[string]string{"x-mock-reset": "truncate"}},                                              // the provider breaks off
			clientCall{body: stream, hdr: map[string]string{"x-mock-reset": "mid-stream"}},                                            // the provider resets
			clientCall{body: euOnly}, // every attempt fails
		)
	}
	results = run(calls)
	for i, r := range results {
		switch i % 6 {
		case 0:
			if r.status != 200 || r.attempts != "2" || !strings.Contains(r.body, "[DONE]") {
				t.Errorf("failed-over request: %d attempts %q %v", r.status, r.attempts, r.err)
			}
		case 3:
			if !strings.Contains(r.body, "stream_incomplete") {
				t.Errorf("truncated request: %d %v: %.300s", r.status, r.err, r.body)
			}
		case 5:
			if r.status != 503 {
				t.Errorf("EU-only request: %d %.200s", r.status, r.body)
			}
		}
	}

	// Every request is over: nothing is left, whatever became of it.
	var n int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n = attemptEntries(t, s); n == 0 {
			break
		}
	}
	if n != 0 {
		t.Errorf("%d attempt entries left after every request ended, want 0", n)
	}
	t.Logf("peak %d entries with 8 requests in flight; %d after %d requests", peak, n, len(calls)+8)
}
