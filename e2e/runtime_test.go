package e2e

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/harness"
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
