package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

	EnvoyConcurrency int
	Transport        string // Envoy → stellwerk: unix (default) or mtls
	Shape            string // of stellwerk's config: ShapeProduction (default) or ShapeOneModel
	Ledger           string // of the production shape: LedgerMemory (default), LedgerRedis or LedgerNone
	Progress         io.Writer
}

// Profile files written into ProfileOptions.Out (by package pprofserve).
const (
	CPUProfile        = "cpu.pprof"
	AllocProfile      = "allocs.pprof"
	AllocStartProfile = "allocs-start.pprof"
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
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	for _, f := range []string{CPUProfile, AllocProfile, AllocStartProfile} {
		_ = os.Remove(filepath.Join(o.Out, f))
	}
	dir, err := os.MkdirTemp("", "stellwerk-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stack, err := StartStack(ctx, StackOptions{Root: o.Root, Envoy: o.Envoy,
		StellwerkArgv:    []string{o.Self, "pprof-serve", "--out", o.Out},
		EnvoyConcurrency: o.EnvoyConcurrency, Dir: dir, Progress: o.Progress, Transport: o.Transport, Shape: o.Shape, Ledger: o.Ledger})
	if err != nil {
		return err
	}
	defer stack.Close()
	stack.Provider.SetBehavior(mockBehavior(o.Delay))
	target := newTarget("stellwerk", stack.StellwerkURL, stack.StellwerkHeaders, 10*time.Second)
	defer target.close()
	body := chatRequest(o.Size, o.Stream, "auto")

	progress(o.Progress, "warming up for %s", o.Warmup)
	attack(ctx, target, o.Rate, o.Warmup, body, func(result) {})
	if err := stack.stellwerk.signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("start profiling: %w", err)
	}
	time.Sleep(100 * time.Millisecond) // let the profile start before the load does
	var ok, failed atomic.Int64
	progress(o.Progress, "profiling %g rps of %s for %s", o.Rate, sizeName(o.Size), o.Duration)
	attack(ctx, target, o.Rate, o.Duration, body, func(r result) {
		if r.ok() {
			ok.Add(1)
		} else {
			failed.Add(1)
		}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	stack.stellwerk.stop(30 * time.Second) // writes the profiles on its way out
	for _, f := range []string{CPUProfile, AllocProfile, AllocStartProfile} {
		if _, err := os.Stat(filepath.Join(o.Out, f)); err != nil {
			return fmt.Errorf("profile %s not written: %w\n%s", f, err, stack.Logs())
		}
	}
	progress(o.Progress, "%d answers, %d failed; profiles in %s", ok.Load(), failed.Load(), o.Out)
	return nil
}
