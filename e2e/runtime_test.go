package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/sysmon"
	"github.com/stellwerk/stellwerk/internal/testsrv"
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
	resp := slowStream(t, s, 700*time.Millisecond)
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

// TestStopDuringStart (the container probe): a start whose PostgreSQL
// takes the connection and never answers (a pooler without a backend)
// held the process for ever, saying nothing; a SIGTERM then ended it with
// exit 1 and the error of whatever start-up was doing (a policy test
// "failed: context canceled"). The open is bounded now, and a stop asked
// for during start-up is a stop: exit 0, said as one.
func TestStopDuringStart(t *testing.T) {
	t.Parallel()
	addr, accepted := testsrv.Silent(t)
	dir, err := os.MkdirTemp("", "sw-stop-") // short: it holds the socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hashKey := filepath.Join(dir, "hash.key")
	if err := os.WriteFile(hashKey, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`server: {admin: "127.0.0.1:%d", grpc: "unix://%s/grpc.sock"}
routing: {default_model: m}
providers: [{name: p, base_url: "http://127.0.0.1:1/v1", residency: eu}]
models: [{id: m, provider: p, context_window: 8000}]
state: {dir: %s, postgres: {dsn_env: STOP_DSN}, hash_key: {file: %s}}
`, harness.FreePort(t), dir, dir, hashKey)
	if err := os.WriteFile(filepath.Join(dir, "stellwerk.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.Binary(t), "serve", "--config", filepath.Join(dir, "stellwerk.yaml"))
	cmd.Env = append(os.Environ(), "STOP_DSN=postgres://u:hunter2@"+addr+"/db?sslmode=disable")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("stellwerk never connected:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	out := stderr.String()
	if err != nil || !strings.Contains(out, "stopped by a signal during start-up") || strings.Contains(out, "hunter2") {
		t.Errorf("stopped during start: %v\n%s", err, lastLines(out, 5))
	}
}

// TestEnvoyStopDrains (the container probe): SIGTERM ends Envoy at once,
// cutting every stream, so stellwerk's drain never reached the clients of
// the compose stack (compose stops Envoy first) or of a sidecar pod. The
// compose stack starts Envoy through compose/envoy/drain.sh, which turns
// the stop into a drain: the stream in flight ends with [DONE], then
// Envoy stops. The compose file's Envoy health check, run against a real
// Envoy, passes: it asked in HTTP/1.0, which Envoy's admin API answers 426.
func TestEnvoyStopDrains(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{EnvoyVia: "compose/envoy/drain.sh"})

	compose, err := os.ReadFile(filepath.Join(harness.Root(), "compose", "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Entrypoint      []string                `yaml:"entrypoint"`
			StopGracePeriod string                  `yaml:"stop_grace_period"`
			Healthcheck     struct{ Test []string } `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(compose, &c); err != nil {
		t.Fatal(err)
	}
	envoy := c.Services["envoy"]
	if len(envoy.Entrypoint) != 1 || envoy.Entrypoint[0] != "/etc/envoy/drain.sh" || envoy.StopGracePeriod != "330s" {
		t.Errorf("compose's envoy: entrypoint %v, stop_grace_period %q", envoy.Entrypoint, envoy.StopGracePeriod)
	}
	test := envoy.Healthcheck.Test
	if len(test) != 4 || test[0] != "CMD" || test[1] != "bash" || !strings.Contains(test[3], "/9901") {
		t.Fatalf("compose's envoy health check: %q", test)
	}
	check := strings.Replace(test[3], "/9901", "/"+s.EnvoyAdmin[strings.LastIndexByte(s.EnvoyAdmin, ':')+1:], 1)
	if out, err := exec.Command("bash", "-c", check).CombinedOutput(); err != nil {
		t.Errorf("compose's envoy health check against a ready Envoy: %v %s", err, out)
	}

	resp := slowStream(t, s, 300*time.Millisecond)
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	// Only the script: a container runtime signals PID 1.
	if err := syscall.Kill(s.PID("envoy"), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Contains(b, []byte("data: [DONE]")) {
		t.Fatalf("the stream in flight when Envoy was stopped: %v\n%s", err, b)
	}
	waitFor(t, "Envoy stopped after the drain", func() bool {
		_, err := http.Get(s.EnvoyAdmin + "/ready")
		return err != nil
	})
	if log := s.Log("envoy"); !strings.Contains(log, "draining Envoy's listeners") || !strings.Contains(log, "stopping Envoy") {
		t.Errorf("drain.sh did not say what it did:\n%s", lastLines(log, 5))
	}
}

// slowStream starts a stream whose provider sends a chunk every delay;
// the test's end closes it.
func slowStream(t *testing.T, s *harness.Stack, delay time.Duration) *http.Response {
	t.Helper()
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{ChunkDelay: delay})
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"auto","stream":true,"messages":[{"role":"user","content":"tell me a long story please"}]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestStreamCutByTheRequestTimeout (the HTTP probe): a stream Envoy ends
// at envoy.request_timeout was logged and recorded as interrupted, as if
// the client had gone away. It says timed_out now.
func TestStreamCutByTheRequestTimeout(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) {
		c.Envoy.RequestTimeout = 2 * time.Second
		c.Failover.AttemptTimeout = 2 * time.Second
	}})
	resp := slowStream(t, s, 400*time.Millisecond)
	id := resp.Header.Get("x-stellwerk-decision-id")
	if b, _ := io.ReadAll(resp.Body); bytes.Contains(b, []byte("data: [DONE]")) {
		t.Fatalf("the stream was not cut: %s", b)
	}
	var rec string
	waitFor(t, "the cut stream's record", func() bool {
		if recs := auditPage(t, s, "kind=decision&decision_id="+id).Records; len(recs) == 1 {
			rec = string(recs[0].Record)
		}
		return rec != ""
	})
	if code := gjson.Get(rec, "error_code").Str; code != "stream_timed_out" {
		t.Errorf("the record's error_code is %q", code)
	}
	if !strings.Contains(s.Log("stellwerk"), `"decision_id":"`+id+`","model"`) || !strings.Contains(s.Log("stellwerk"), `"end":"timed_out"`) {
		t.Errorf("the stream finished line does not say timed_out")
	}
}
