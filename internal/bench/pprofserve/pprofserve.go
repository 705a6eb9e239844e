// Package pprofserve is stellwerk-bench's hidden `pprof-serve` command:
// `stellwerk serve` (the same internal/serve code) wrapped in runtime/pprof,
// because stellwerk has no pprof endpoint. It is kept apart from package
// bench so the load harness does not depend on the server building.
package pprofserve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stellwerk/stellwerk/internal/bench"
	"github.com/stellwerk/stellwerk/internal/serve"
)

// Run is the hidden `pprof-serve` command: `stellwerk serve` that
// starts a CPU profile and snapshots the allocation profile on SIGUSR1, and
// writes both when ctx ends. With --trace it also writes an execution
// trace of the profile's first moments.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("pprof-serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serve.Options
	fs.StringVar(&o.ConfigPath, "config", "stellwerk.yaml", "config file")
	out := fs.String("out", ".", "directory for the profiles")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	traceFor := fs.Duration("trace", 0, "also write an execution trace ("+bench.TraceFile+") of this long from the profile's start (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lvl, err := zapcore.ParseLevel(*level)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(stderr), lvl))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := make(chan os.Signal, 1)
	signal.Notify(start, syscall.SIGUSR1)
	defer signal.Stop(start)
	var cpuFile *os.File
	stopProfiles := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			stopProfiles <- nil
			return
		case <-start:
		}
		err := writeHeapProfile(filepath.Join(*out, bench.AllocStartProfile))
		f, cerr := os.Create(filepath.Join(*out, bench.CPUProfile))
		if cerr == nil {
			cerr = pprof.StartCPUProfile(f)
		}
		cpuFile = f
		if *traceFor > 0 {
			err = errors.Join(err, writeTrace(ctx, filepath.Join(*out, bench.TraceFile), *traceFor))
		}
		<-ctx.Done()
		stopProfiles <- errors.Join(err, cerr)
	}()

	runErr := serve.Run(ctx, o, log)
	cancel() // serve.Run may also end on its own, on an error
	perr := <-stopProfiles
	if cpuFile != nil {
		pprof.StopCPUProfile()
		perr = errors.Join(perr, cpuFile.Close(), writeHeapProfile(filepath.Join(*out, bench.AllocProfile)))
	}
	return errors.Join(runErr, perr)
}

// writeHeapProfile writes the allocation profile (all allocations since the
// process started, and what is live after a GC).
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeTrace writes an execution trace of d, or until ctx ends, to path.
// A trace holds every scheduling event (~0.3 MB per second at 500
// requests/s), so it is kept short.
func writeTrace(ctx context.Context, path string, d time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return err
	}
	t := time.NewTimer(d)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	trace.Stop()
	return f.Close()
}
