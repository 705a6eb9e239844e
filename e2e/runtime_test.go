package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/sysmon"
)

// TestServeKeepsSysmonAwake: `stellwerk serve` re-executes itself with
// GODEBUG's schedtrace set (internal/sysmon, docs/deploy.md) — the same
// process the harness started, with the same arguments and environment —
// and serves requests through Envoy as it is.
func TestServeKeepsSysmonAwake(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hello"}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	pid := strconv.Itoa(s.PID("stellwerk"))
	proc := func(file string) []string {
		b, err := os.ReadFile("/proc/" + pid + "/" + file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
	}
	env := proc("environ")
	var godebug []string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = append(godebug, v)
		}
	}
	if len(godebug) != 1 || !slices.Contains(strings.Split(godebug[0], ","), sysmon.Setting) {
		t.Errorf("stellwerk's GODEBUG = %q, want one with %s", godebug, sysmon.Setting)
	}
	if !slices.Contains(env, harness.AdminTokenEnv+"="+s.AdminToken) {
		t.Error("the re-executed server lost the environment it was started with")
	}
	if args := proc("cmdline"); len(args) < 3 || args[1] != "serve" || args[2] != "--config" {
		t.Errorf("stellwerk's arguments after re-executing: %q", args)
	}
}

// TestStopFinishesStreams: SIGTERM (a rolling update) finishes the
// streams in flight, however long they last, before stellwerk exits
// (a helper's finding: they were cut 5 s after the signal).
func TestStopFinishesStreams(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{ChunkDelay: 700 * time.Millisecond})
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"auto","stream":true,"messages":[{"role":"user","content":"tell me a long story please"}]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stopped := make(chan time.Time, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		s.Stop("stellwerk")
		stopped <- time.Now()
	}()
	// While it drains, the admin API answers: not ready, but alive (the
	// capacity probe: its port closed as the drain began, so /metrics
	// went dark and a liveness probe could kill the drain).
	probes := make(chan string, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		got := ""
		for _, path := range []string{"/readyz", "/healthz"} {
			r, err := http.Get(s.AdminURL + path)
			if err != nil {
				got += path + ": " + err.Error() + "; "
				continue
			}
			rb, _ := io.ReadAll(r.Body)
			r.Body.Close()
			got += fmt.Sprintf("%s: %d %s; ", path, r.StatusCode, bytes.TrimSpace(rb))
		}
		// What reads a store answers too (it failed with the cancelled
		// serve context: the red team).
		if r, err := s.AdminGet("/admin/keys"); err != nil {
			got += "/admin/keys: " + err.Error()
		} else {
			rb, _ := io.ReadAll(r.Body)
			r.Body.Close()
			got += fmt.Sprintf("/admin/keys: %d %.100s", r.StatusCode, rb)
		}
		probes <- got
	}()
	start := time.Now()
	b, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if got := <-probes; !strings.Contains(got, `/readyz: 503 {"reason":"stopping: finishing the requests in flight","status":"not ready"}`) ||
		!strings.Contains(got, `/healthz: 200`) || !strings.Contains(got, `/admin/keys: 200`) {
		t.Errorf("the admin API while draining: %s", got)
	}
	if err != nil || !strings.Contains(string(b), "data: [DONE]") || strings.Contains(string(b), `"error"`) {
		t.Fatalf("the stream after SIGTERM (%s): %v\n%s", took, err, b)
	}
	if at := <-stopped; at.Before(start.Add(took)) {
		t.Errorf("stellwerk exited before the stream ended")
	}
	if took < 5*time.Second {
		t.Logf("the stream took %s: shorter than the old 5 s cut, the test proves less", took)
	}
}
