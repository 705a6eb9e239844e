package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// stellwerk has no pprof endpoint, so `profile` runs the server from the
// bench binary instead: its hidden `pprof-serve` command (package
// pprofserve) is `stellwerk serve`, the same internal/serve code, wrapped in
// runtime/pprof. It runs as a child process so that the load generator and
// the fake provider stay out of the profiles. SIGUSR1 starts the profiles,
// SIGTERM writes them.

// ProfileOptions shape a profiling run.
type ProfileOptions struct {
	Root, Envoy string
	Self        string // this binary, which has the hidden pprof-serve command
	Out         string // directory for cpu.pprof, allocs.pprof, allocs-start.pprof

	Duration time.Duration // profiled load; default 20s
	Warmup   time.Duration // not profiled; default 3s
	Rate     float64       // default 500
	Size     int           // default 2048
	Stream   bool
	Delay    time.Duration
	Prompts  string // PromptsSame (default here) or PromptsVaried (stellwerk-bench's)

	EnvoyConcurrency int
	Transport        string  // Envoy → stellwerk: unix (default) or mtls
	Shape            string  // of stellwerk's config: ShapeProduction (default) or ShapeOneModel
	Ledger           string  // of the production shape: LedgerMemory (default), LedgerRedis or LedgerNone
	Tenants          Tenants // of the production shape (StackOptions); zero: the one bench key
	// Phases turns on Envoy B's access log and writes PhasesFile: how long
	// Envoy waited for stellwerk in each ext_proc phase of the profiled
	// requests (the log's own cost is in the profile of Envoy, not of
	// stellwerk).
	Phases bool
	// Trace, when positive, also writes TraceFile: an execution trace of
	// the profiled load's first Trace (which goroutine waited to run, for
	// how long, and who readied it).
	Trace    time.Duration
	Progress io.Writer
}

// Profile files written into ProfileOptions.Out (by package pprofserve).
const (
	CPUProfile        = "cpu.pprof"
	AllocProfile      = "allocs.pprof"
	AllocStartProfile = "allocs-start.pprof"
	PhasesFile        = "phases.txt"
	TraceFile         = "trace.out"
)

// Profile loads stellwerk through Envoy and writes a CPU profile of the
// loaded period and allocation profiles at its start and end (their
// difference, `go tool pprof -base`, is what the requests allocated).
func Profile(ctx context.Context, o ProfileOptions) error {
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Rate <= 0 {
		o.Rate = 500
	}
	if o.Size <= 0 {
		o.Size = 2 << 10
	}
	prompts, err := LoadPrompts(o.Root, o.Prompts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	// Every file a profile may write; an earlier run's must not pass for
	// this one's.
	files := []string{CPUProfile, AllocProfile, AllocStartProfile, TraceFile}
	for _, f := range files {
		_ = os.Remove(filepath.Join(o.Out, f))
	}
	if o.Trace <= 0 {
		files = files[:len(files)-1]
	}
	argv := []string{o.Self, "pprof-serve", "--out", o.Out}
	if o.Trace > 0 {
		argv = append(argv, "--trace", o.Trace.String())
	}
	dir, err := os.MkdirTemp("", "stellwerk-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stack, err := StartStack(ctx, StackOptions{Root: o.Root, Envoy: o.Envoy,
		StellwerkArgv:    argv,
		EnvoyConcurrency: o.EnvoyConcurrency, Dir: dir, Progress: o.Progress, Transport: o.Transport, Shape: o.Shape, Ledger: o.Ledger,
		AccessLog: o.Phases, Tenants: o.Tenants})
	if err != nil {
		return err
	}
	defer stack.Close()
	stack.Provider.SetBehavior(mockBehavior(o.Delay))
	target := newTarget("stellwerk", stack.StellwerkURL, stack.StellwerkHeaders, 10*time.Second)
	target.Keys = stack.TenantKeys
	defer target.close()
	body := chatRequest(prompts, o.Size, o.Stream, "auto")

	progress(o.Progress, "warming up for %s", o.Warmup)
	attack(ctx, target, o.Rate, o.Warmup, body, func(result) {})
	if err := stack.stellwerk.signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("start profiling: %w", err)
	}
	time.Sleep(100 * time.Millisecond) // let the profile start before the load does
	var ok, failed atomic.Int64
	from := time.Now()
	progress(o.Progress, "profiling %g rps of %s for %s", o.Rate, sizeName(o.Size), o.Duration)
	cpu0, cpuErr0 := cpuSeconds(stack.stellwerk.pid())
	attack(ctx, target, o.Rate, o.Duration, body, func(r result) {
		if r.ok() {
			ok.Add(1)
		} else {
			failed.Add(1)
		}
	})
	cpu1, cpuErr1 := cpuSeconds(stack.stellwerk.pid())
	if err := ctx.Err(); err != nil {
		return err
	}
	stack.stellwerk.stop(30 * time.Second) // writes the profiles on its way out
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(o.Out, f)); err != nil {
			return fmt.Errorf("profile %s not written: %w\n%s", f, err, stack.Logs())
		}
	}
	progress(o.Progress, "%d answers, %d failed; profiles in %s", ok.Load(), failed.Load(), o.Out)
	if cpuErr0 == nil && cpuErr1 == nil && ok.Load() > 0 {
		// What the kernel counted, to hold the profile's "Total samples"
		// against: one profile at 100 requests/s held 0.85 CPU-ms a request
		// where the bench counts 1.3–1.5, and put the decision at a tenth
		// of what perf counts (docs/benchmarks.md, 2026-12-06).
		progress(o.Progress, "the server used %.2f CPU-s during the load (%.2f CPU-ms per answer, /proc); the CPU profile's \"Total samples\" should come close, "+
			"and where it does not its split is not to be trusted (perf record -g -p PID counts every thread)", cpu1-cpu0, (cpu1-cpu0)*1000/float64(ok.Load()))
	}
	if o.Phases {
		time.Sleep(time.Second) // Envoy flushes its access log every 500 ms (startEnvoy)
		log, err := os.ReadFile(filepath.Join(dir, "envoy-stellwerk.log"))
		if err != nil {
			return err
		}
		table := phaseTable(log, from)
		progress(o.Progress, "ext_proc phases (%s):\n%s", filepath.Join(o.Out, PhasesFile), table)
		return os.WriteFile(filepath.Join(o.Out, PhasesFile), []byte(table), 0o644)
	}
	return nil
}

// phaseFields are the access log's ext_proc timings (xds.stdoutAccessLog).
var phaseFields = []struct{ key, name string }{
	{"ext_proc_request_headers_us", "request headers"},
	{"ext_proc_request_body_us", "request body (all messages)"},
	{"ext_proc_response_headers_us", "response headers"},
	{"ext_proc_response_body_us", "response body (all messages)"},
}

// phaseTable summarises the access log lines of requests that started at
// or after from: per ext_proc phase, how long Envoy waited for stellwerk
// (p50, p90, p99 in µs, and in how many requests the phase ran), and the
// requests' whole duration in Envoy.
func phaseTable(log []byte, from time.Time) string {
	vals := make([][]float64, len(phaseFields)+1)
	n := 0
	for _, line := range bytes.Split(log, []byte("\n")) {
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var l map[string]any
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		start, _ := l["start"].(string)
		if t, err := time.Parse(time.RFC3339Nano, start); err != nil || t.Before(from) {
			continue
		}
		n++
		for i, f := range phaseFields {
			if s, ok := l[f.key].(string); ok {
				if v, err := strconv.ParseFloat(s, 64); err == nil {
					vals[i] = append(vals[i], v)
				}
			}
		}
		if d, ok := l["duration_ms"].(float64); ok {
			vals[len(phaseFields)] = append(vals[len(phaseFields)], d*1000)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests; how long Envoy B waited for stellwerk, µs\n", n)
	fmt.Fprintf(&b, "| phase | requests | p50 | p90 | p99 |\n| --- | --: | --: | --: | --: |\n")
	for i, f := range phaseFields {
		writePhase(&b, f.name, vals[i])
	}
	writePhase(&b, "whole request in Envoy B (ms resolution)", vals[len(phaseFields)])
	return b.String()
}

func writePhase(b *strings.Builder, name string, v []float64) {
	if len(v) == 0 {
		fmt.Fprintf(b, "| %s | 0 | | | |\n", name)
		return
	}
	slices.Sort(v)
	q := func(p float64) float64 { return v[min(len(v)-1, int(p*float64(len(v))))] }
	fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.0f |\n", name, len(v), q(0.5), q(0.9), q(0.99))
}
