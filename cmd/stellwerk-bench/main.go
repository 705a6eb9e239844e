// Command stellwerk-bench measures what stellwerk adds on top of plain Envoy
// (see internal/bench and docs/benchmarks.md). `make bench`, `make soak` and
// `make profile` run it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stellwerk/stellwerk/internal/bench"
	"github.com/stellwerk/stellwerk/internal/bench/noopextproc"
	"github.com/stellwerk/stellwerk/internal/bench/pprofserve"
	"github.com/stellwerk/stellwerk/internal/bench/tracesum"
	"github.com/stellwerk/stellwerk/internal/sysmon"
)

const usage = `stellwerk-bench — what stellwerk adds on top of plain Envoy

Usage:
  stellwerk-bench [run] [flags]   interleaved load on Envoy (baseline), Envoy + a no-op ext_proc server (the floor)
                                  and Envoy + stellwerk; tables to docs/benchmarks.md
  stellwerk-bench soak [flags]    steady load on Envoy + stellwerk; is memory, fds (and goroutines) flat?
  stellwerk-bench profile [flags] CPU and allocation profiles of stellwerk under load
  stellwerk-bench trace [flags] FILE
                                  an execution trace (profile --trace) summarised: hand-offs between goroutines
  stellwerk-bench noop-extproc --socket PATH
                                  the floor's ext_proc server: CONTINUE to every message (started by run)

Run "stellwerk-bench <command> -h" for the flags of a command.
`

var errUsage = errors.New("usage error")

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "noop-extproc" || os.Args[1] == "pprof-serve") {
		sysmon.Reexec() // the servers run as stellwerk serve does
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "stellwerk-bench:", err)
		os.Exit(1)
	}
}

// tempDirs are the directories resolve made for a stellwerk it builds;
// run removes them when its command ends (every run left one behind,
// empty, or with a 100 MB binary in it).
var tempDirs []string

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	defer func() {
		for _, d := range tempDirs {
			_ = os.RemoveAll(d)
		}
		tempDirs = nil
	}()
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runBench(ctx, args, stdout, stderr)
	case "soak":
		return runSoak(ctx, args, stdout, stderr)
	case "profile":
		return runProfile(ctx, args, stdout, stderr)
	case "trace":
		return runTrace(args, stdout, stderr)
	case "pprof-serve": // started by profile, not by people
		return pprofserve.Run(ctx, args, stderr)
	case "noop-extproc":
		return noopextproc.Run(ctx, args, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// common are the flags that find the stack's pieces.
type common struct {
	root, envoy, stellwerk string
	concurrency            int
	transport              string
	shape                  string
	ledger                 string
	maxAttempts            int
	firstByteTimeout       time.Duration
	floor                  string
	floorTransport         string
	prompts                string
	tenantsFlag            string
	tenants                bench.Tenants
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.root, "root", "", "repository root (default: found from the working directory)")
	fs.StringVar(&c.envoy, "envoy", "", "Envoy binary (default: $STELLWERK_ENVOY, .tools/venv from `make tools`, PATH)")
	fs.StringVar(&c.stellwerk, "stellwerk", "", "stellwerk binary (default: $STELLWERK_BIN, bin/stellwerk, else built)")
	fs.IntVar(&c.concurrency, "envoy-concurrency", 2, "--concurrency of each Envoy")
	fs.StringVar(&c.transport, "grpc-transport", "unix", "how Envoy reaches stellwerk: unix (socket) or mtls (TCP with mutual TLS)")
	fs.StringVar(&c.shape, "shape", bench.ShapeProduction, "stellwerk's config: "+bench.ShapeProduction+
		" (the shipped 76-model catalog, virtual keys, Rego library, failover, learned latencies) or "+bench.ShapeOneModel+" (one model, open auth)")
	fs.StringVar(&c.ledger, "ledger", bench.LedgerMemory, "where the production shape's budget and rate limit live: "+
		strings.Join(bench.Ledgers, ", ")+" (redis: a redis-server the bench starts on loopback)")
	fs.StringVar(&c.prompts, "prompts", bench.PromptsVaried, "what the requests ask: "+bench.PromptsVaried+
		" (the task classifier's corpus of 728 prompts in turn, each filled to the size: every request classified and routed anew), "+
		bench.PromptsConversation+" (the same prompts as conversations of 8 turns, each request resending the turns before it on top of the size; chat only) or "+
		bench.PromptsSame+" (one prompt, every request alike, as the figures before 2026-12-03)")
	fs.StringVar(&c.tenantsFlag, "tenants", "1", "production shape: WORKSPACESxKEYS, e.g. 200x20: 200 workspaces in the config, 20 store keys each made through the admin API, "+
		"each workspace a monthly budget, each key its own budget and rate limit, one request under each key before the load, whose requests take the keys in turn; 1: the one bench key of workspace support")
	fs.DurationVar(&c.firstByteTimeout, "stream-first-byte-timeout", 0, "run only: the production shape's failover.stream_first_byte_timeout (0: the config's default, 10s; 60s, the attempt timeout, turns it off, so a stream's first attempt goes straight to its provider)")
	fs.IntVar(&c.maxAttempts, "max-attempts", 0, "run only: the production shape's failover.max_attempts (0: the config's default, 3; 1 takes failover's internal-listener hop out)")
	fs.StringVar(&c.floor, "floor", bench.FloorOne, "run only: the floor's ext_proc mode: "+bench.FloorOne+
		" (the request body alone, one round trip: the floor issue 12 measures against) or "+bench.FloorPipelined+
		" (every phase of stellwerk's client-facing filter in its pipelined mode, answered with CONTINUE: what those messages cost by themselves)")
	fs.StringVar(&c.floorTransport, "floor-transport", noopextproc.TransportGRPC, "run only: the floor's no-op server: "+noopextproc.TransportGRPC+
		" (grpc-go's server, as stellwerk's), "+noopextproc.TransportFrames+" (the same answers as HTTP/2 frames written directly: what grpc-go's machinery costs) or "+
		noopextproc.TransportInline+" (frames answered by the connection's reader: what the hand-offs between goroutines cost)")
}

// resolve finds the root, Envoy and (if needStellwerk) stellwerk, reporting
// every problem it meets.
func (c *common) resolve(needStellwerk bool) []string {
	var problems []string
	if c.root == "" {
		wd, _ := os.Getwd()
		root, err := bench.FindRoot(wd)
		if err != nil {
			return append(problems, fmt.Sprintf("-root: %v", err))
		}
		c.root = root
	}
	if c.envoy == "" {
		p, err := bench.FindEnvoy(c.root)
		if err != nil {
			problems = append(problems, fmt.Sprintf("envoy not found (%v); run `make tools` or pass -envoy", err))
		}
		c.envoy = p
	}
	if needStellwerk && c.stellwerk == "" {
		dir, err := os.MkdirTemp("", "stellwerk-bench-bin-")
		if err == nil {
			tempDirs = append(tempDirs, dir)
			c.stellwerk, err = bench.FindStellwerk(c.root, dir)
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if c.concurrency < 1 {
		problems = append(problems, "-envoy-concurrency must be at least 1")
	}
	if c.transport != "unix" && c.transport != "mtls" {
		problems = append(problems, "-grpc-transport must be unix or mtls")
	}
	if !slices.Contains(bench.Shapes, c.shape) {
		problems = append(problems, "-shape must be one of "+strings.Join(bench.Shapes, ", "))
	}
	if !slices.Contains(bench.PromptSets, c.prompts) {
		problems = append(problems, "-prompts must be one of "+strings.Join(bench.PromptSets, ", "))
	}
	if !slices.Contains(bench.Ledgers, c.ledger) {
		problems = append(problems, "-ledger must be one of "+strings.Join(bench.Ledgers, ", "))
	}
	var err error
	if c.tenants, err = bench.ParseTenants(c.tenantsFlag); err != nil {
		problems = append(problems, "-tenants: "+err.Error())
	} else if c.tenants.Keys() > 0 && c.shape != bench.ShapeProduction {
		problems = append(problems, "-tenants: only for the "+bench.ShapeProduction+" shape")
	}
	return problems
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	rates := fs.String("rates", "100,500,1000", "requests per second, comma-separated")
	sizes := fs.String("sizes", "2KB,32KB", "request body sizes (bytes, or with KB)")
	modes := fs.String("modes", "json,stream", "json (non-streaming) and/or stream")
	endpoints := fs.String("endpoints", "chat", "APIs to load, a row each: "+strings.Join(bench.EndpointNames(), ", ")+" (stream modes skip those that do not stream)")
	delays := fs.String("delays", "0ms,50ms", "fake provider's first-byte delays")
	duration := fs.Duration("duration", 4*time.Second, "load per target and scenario")
	slice := fs.Duration("slice", time.Second, "length of each interleaved slice")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "unrecorded load per target before each scenario")
	timeout := fs.Duration("timeout", 10*time.Second, "per request")
	quietBelow := fs.Float64("quiet-below", 0.5, "before each scenario, wait for other processes to use fewer cores than this (0: don't)")
	quietWait := fs.Duration("quiet-wait", time.Minute, "longest wait for -quiet-below")
	retries := fs.Int("retries", 2, "measure a scenario again when others used -quiet-below cores or more meanwhile")
	target := fs.String("target", "", "measure this OpenAI-compatible endpoint instead (base URL, no /v1); no stack, no baseline")
	model := fs.String("model", "auto", "model of every request")
	var headers headerFlag
	fs.Var(&headers, "header", `header sent to -target, "Name: value" (repeatable)`)
	jsonOut := fs.String("json", "", "write the full report as JSON to this file")
	mdOut := fs.String("md", "", "write the tables into this Markdown file (default docs/benchmarks.md, none with -target; \"none\": no file, for comparison runs)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}

	var problems []string
	o := bench.Options{Duration: *duration, Slice: *slice, Warmup: *warmup, Timeout: *timeout,
		Target: *target, Model: *model, Headers: headers.m, EnvoyConcurrency: c.concurrency, Transport: c.transport,
		Shape: c.shape, Ledger: c.ledger, MaxAttempts: c.maxAttempts, FirstByteTimeout: c.firstByteTimeout, FloorMode: c.floor, FloorTransport: c.floorTransport, QuietBelow: *quietBelow, QuietWait: *quietWait, Retries: *retries,
		Command: commandLine("run", args), Progress: stderr}
	var err error
	if o.Rates, err = parseList(*rates, func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err == nil && v <= 0 {
			err = errors.New("must be positive")
		}
		return v, err
	}); err != nil {
		problems = append(problems, "-rates: "+err.Error())
	}
	if o.Sizes, err = parseList(*sizes, parseSize); err != nil {
		problems = append(problems, "-sizes: "+err.Error())
	}
	if o.Streams, err = parseList(*modes, func(s string) (bool, error) {
		switch s {
		case "json":
			return false, nil
		case "stream":
			return true, nil
		}
		return false, errors.New("want json or stream")
	}); err != nil {
		problems = append(problems, "-modes: "+err.Error())
	}
	if o.Endpoints, err = parseList(*endpoints, func(s string) (string, error) {
		if _, ok := bench.EndpointNamed(s); !ok {
			return "", errors.New("want one of " + strings.Join(bench.EndpointNames(), ", "))
		}
		return s, nil
	}); err != nil {
		problems = append(problems, "-endpoints: "+err.Error())
	}
	if o.Delays, err = parseList(*delays, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err == nil && d < 0 {
			err = errors.New("must not be negative")
		}
		return d, err
	}); err != nil {
		problems = append(problems, "-delays: "+err.Error())
	}
	if *target != "" && c.tenants.Keys() > 0 {
		problems = append(problems, "-tenants: not with -target")
	}
	if *duration <= 0 || *slice <= 0 || *slice > *duration {
		problems = append(problems, "-duration and -slice must be positive, the slice no longer than the duration")
	}
	if !slices.Contains(bench.FloorModes, c.floor) {
		problems = append(problems, "-floor must be one of "+strings.Join(bench.FloorModes, ", "))
	}
	if !slices.Contains(noopextproc.Transports, c.floorTransport) {
		problems = append(problems, "-floor-transport must be one of "+strings.Join(noopextproc.Transports, ", "))
	}
	if *target != "" && !strings.HasPrefix(*target, "http://") && !strings.HasPrefix(*target, "https://") {
		problems = append(problems, "-target: want an http:// or https:// URL")
	}
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if len(problems) == 0 {
		problems = append(problems, c.resolve(*target == "")...)
	}
	self, err := os.Executable()
	if err != nil {
		problems = append(problems, "cannot find this binary (for the no-op ext_proc server): "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return errUsage
	}
	o.Root, o.Envoy, o.Stellwerk, o.NoopArgv, o.Prompts, o.Tenants = c.root, c.envoy, c.stellwerk, []string{self, "noop-extproc"}, c.prompts, c.tenants
	switch {
	case *mdOut == "none":
		*mdOut = ""
	case *mdOut == "" && *target == "":
		*mdOut = filepath.Join(c.root, "docs", "benchmarks.md")
	}

	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	bench.WriteMarkdown(stdout, rep)
	if *jsonOut != "" {
		if err := bench.WriteJSON(*jsonOut, rep); err != nil {
			return err
		}
	}
	if *mdOut != "" {
		if err := bench.WriteMarkdownFile(*mdOut, rep); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: wrote %s\n", *mdOut)
	}
	return nil
}

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	var o bench.SoakOptions
	fs.DurationVar(&o.Duration, "duration", 20*time.Minute, "how long to hold the load")
	fs.DurationVar(&o.Interval, "interval", 5*time.Second, "between samples")
	fs.Float64Var(&o.Rate, "rate", 200, "requests per second")
	size := fs.String("size", "2KB", "request body size")
	fs.BoolVar(&o.Stream, "stream", false, "streaming requests")
	fs.DurationVar(&o.Delay, "delay", 0, "fake provider's first-byte delay")
	jsonOut := fs.String("json", "", "write the samples and verdicts as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var problems []string
	var err error
	if o.Size, err = parseSize(*size); err != nil {
		problems = append(problems, "-size: "+err.Error())
	}
	if o.Duration <= 0 || o.Interval <= 0 || o.Rate <= 0 {
		problems = append(problems, "-duration, -interval and -rate must be positive")
	}
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if len(problems) == 0 {
		problems = c.resolve(true)
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return errUsage
	}
	o.Root, o.Envoy, o.Stellwerk, o.EnvoyConcurrency, o.Transport, o.Shape, o.Ledger, o.Prompts, o.Tenants = c.root, c.envoy, c.stellwerk, c.concurrency, c.transport, c.shape, c.ledger, c.prompts, c.tenants
	o.Command, o.Progress = commandLine("soak", args), stderr
	rep, err := bench.Soak(ctx, o)
	if rep != nil {
		bench.WriteSoakText(stdout, rep)
		if *jsonOut != "" {
			err = errors.Join(err, bench.WriteSoakJSON(*jsonOut, rep))
		}
	}
	return err
}

func runProfile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	var o bench.ProfileOptions
	fs.StringVar(&o.Out, "out", "bin/profile", "directory for the profiles")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "profiled load")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "load before profiling starts")
	fs.Float64Var(&o.Rate, "rate", 500, "requests per second")
	size := fs.String("size", "2KB", "request body size")
	fs.BoolVar(&o.Stream, "stream", false, "streaming requests")
	fs.DurationVar(&o.Delay, "delay", 0, "fake provider's first-byte delay")
	fs.BoolVar(&o.Phases, "phases", false, "also write phases.txt: how long Envoy waited for stellwerk in each ext_proc phase (Envoy's access log, on for this run)")
	fs.DurationVar(&o.Trace, "trace", 0, "also write trace.out: an execution trace of the load's first moments, e.g. 3s (go tool trace -pprof=sched)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var problems []string
	var err error
	if o.Size, err = parseSize(*size); err != nil {
		problems = append(problems, "-size: "+err.Error())
	}
	if o.Duration <= 0 || o.Rate <= 0 {
		problems = append(problems, "-duration and -rate must be positive")
	}
	if o.Trace < 0 {
		problems = append(problems, "-trace must not be negative")
	}
	if c.stellwerk != "" {
		// The profiled stellwerk is this binary's own pprof-serve: another
		// binary would be ignored, and its profile taken for this one's.
		problems = append(problems, "-stellwerk: profile serves stellwerk from this binary (build it from the code to profile)")
	}
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if len(problems) == 0 {
		problems = c.resolve(false)
	}
	self, err := os.Executable()
	if err != nil {
		problems = append(problems, "cannot find this binary: "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return errUsage
	}
	o.Root, o.Envoy, o.Self, o.EnvoyConcurrency, o.Transport, o.Shape, o.Ledger, o.Prompts, o.Tenants, o.Progress = c.root, c.envoy, self, c.concurrency, c.transport, c.shape, c.ledger, c.prompts, c.tenants, stderr
	if o.Out, err = filepath.Abs(o.Out); err != nil {
		return err
	}
	if err := bench.Profile(ctx, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "go tool pprof -top %s\n", filepath.Join(o.Out, bench.CPUProfile))
	fmt.Fprintf(stdout, "go tool pprof -top -sample_index=alloc_space -base %s %s\n",
		filepath.Join(o.Out, bench.AllocStartProfile), filepath.Join(o.Out, bench.AllocProfile))
	if o.Trace > 0 {
		// The trace starts with the profiled load, at its rate.
		requests := o.Rate * min(o.Trace, o.Duration).Seconds()
		fmt.Fprintf(stdout, "stellwerk-bench trace --requests %.0f %s\n\n", requests, filepath.Join(o.Out, bench.TraceFile))
		if err := printTrace(stdout, filepath.Join(o.Out, bench.TraceFile), requests, 15); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		// Where goroutines waited to run, by the stack that made them ready.
		fmt.Fprintf(stdout, "go tool trace -pprof=sched %s > %s && go tool pprof -top %s\n",
			filepath.Join(o.Out, bench.TraceFile), filepath.Join(o.Out, "sched.pprof"), filepath.Join(o.Out, "sched.pprof"))
	}
	return nil
}

func runTrace(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	requests := fs.Float64("requests", 0, "requests the trace covers: figures per request (default: per second)")
	rows := fs.Int("rows", 15, "rows of each table")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 || *requests < 0 || *rows <= 0 {
		fmt.Fprintln(stderr, "usage: stellwerk-bench trace [--requests N] [--rows N] FILE (an execution trace, e.g. bin/profile/trace.out)")
		return errUsage
	}
	return printTrace(stdout, fs.Arg(0), *requests, *rows)
}

// printTrace writes the summary of the execution trace at path: per
// request when requests > 0, the top rows of each table.
func printTrace(stdout io.Writer, path string, requests float64, rows int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := tracesum.Read(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return s.Write(stdout, requests, rows)
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}

// parseSize reads "2048", "2KB" or "2K" (KB = 1024 bytes).
func parseSize(s string) (int, error) {
	mult := 1
	u := strings.ToUpper(s)
	for _, suf := range []string{"KB", "K"} {
		if t, ok := strings.CutSuffix(u, suf); ok {
			u, mult = t, 1024
			break
		}
	}
	n, err := strconv.Atoi(u)
	if err != nil {
		return 0, err
	}
	if n*mult < 512 {
		return 0, errors.New("at least 512 bytes")
	}
	return n * mult, nil
}

type headerFlag struct{ m map[string]string }

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return errors.New(`want "Name: value"`)
	}
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[strings.TrimSpace(k)] = strings.TrimSpace(val)
	return nil
}

// commandLine is how the run was asked for, for the report.
func commandLine(cmd string, args []string) string {
	parts := []string{"stellwerk-bench"}
	if cmd != "run" {
		parts = append(parts, cmd)
	}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
