// Package bench measures what stellwerk adds on top of plain Envoy. It starts
// a fake provider, Envoy A with a direct route to it (the baseline), Envoy F
// with the same route through a no-op ext_proc server in the one-round-trip
// mode (the floor: what the ext_proc mechanism costs by itself), and Envoy B
// with stellwerk (the full pipeline), all on loopback ports, and sends the
// same open-loop load to each, interleaved in time slices so that drift on a
// noisy machine hits them alike. The result is the difference of the latency
// distributions at each rate and request size (stellwerk above plain Envoy
// and above the floor), with the CPU and memory each process used to get
// there.
//
// With a Target URL it sends the same load to any OpenAI-compatible endpoint
// instead, without a baseline.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stellwerk/stellwerk/internal/bench/noopextproc"
)

// Options shape one run; the zero value of a field means its default.
type Options struct {
	Root      string // repository root
	Envoy     string // Envoy binary (stack mode)
	Stellwerk string // stellwerk binary (stack mode)

	Rates   []float64 // requests/s; default 100, 500, 1000
	Sizes   []int     // request bytes; default 2048, 32768
	Streams []bool    // default false, true
	// Endpoints are the APIs measured, by name (Endpoints); default chat.
	// Stream scenarios are skipped for an API that does not stream.
	Endpoints []string
	Delays    []time.Duration // provider first-byte delay; default 0, 50ms
	Duration  time.Duration   // per target and scenario; default 4s
	Slice     time.Duration   // interleaving slice; default 1s
	Warmup    time.Duration   // per target and scenario, not recorded; default 500ms
	Timeout   time.Duration   // per request; default 10s

	EnvoyConcurrency int // --concurrency of every Envoy; default 2
	// Transport between Envoy and stellwerk: "unix" (default) or "mtls".
	Transport string
	// Shape of stellwerk's configuration: ShapeProduction (default) or
	// ShapeOneModel.
	Shape string
	// Ledger of the production shape's budget and rate limit (StackOptions).
	Ledger string
	// MaxAttempts is the production shape's failover.max_attempts
	// (StackOptions).
	MaxAttempts int
	// FirstByteTimeout is the production shape's
	// failover.stream_first_byte_timeout (StackOptions).
	FirstByteTimeout time.Duration
	// FloorMode is Envoy F's processing mode (StackOptions): FloorOne
	// (the default) or FloorPipelined.
	FloorMode string
	// FloorTransport is the no-op server's transport (noopextproc.Transports;
	// "" is grpc): Run adds it to NoopArgv, and the report names it.
	FloorTransport string
	// Tenants spreads the production shape's load over many workspaces and
	// keys (StackOptions.Tenants); the zero value is the one bench key.
	Tenants Tenants
	// NoopArgv runs the no-op ext_proc server of the floor target
	// ("--socket PATH" is appended), e.g. ["stellwerk-bench", "noop-extproc"];
	// required in stack mode.
	NoopArgv []string

	// Before each scenario, wait up to QuietWait for a second in which other
	// processes use less than QuietBelow cores (0: do not wait).
	QuietBelow float64
	QuietWait  time.Duration
	// Retries is how often a scenario during which others used QuietBelow
	// cores or more is measured again; the last attempt is kept.
	Retries int

	// Target, when set, is the only endpoint measured (no stack is started).
	Target  string
	Model   string            // default "auto"
	Headers map[string]string // sent with every request to Target
	// Prompts is what the requests ask: PromptsSame (default here) or
	// PromptsVaried (LoadPrompts, from Root; stellwerk-bench's default).
	Prompts string

	Command  string    // the command line, for the report
	Progress io.Writer // progress lines; nil for none
}

func (o *Options) defaults() {
	if len(o.Rates) == 0 {
		o.Rates = []float64{100, 500, 1000}
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []int{2 << 10, 32 << 10}
	}
	if len(o.Streams) == 0 {
		o.Streams = []bool{false, true}
	}
	if len(o.Endpoints) == 0 {
		o.Endpoints = []string{Endpoints[0].Name}
	}
	if len(o.Delays) == 0 {
		o.Delays = []time.Duration{0, 50 * time.Millisecond}
	}
	if o.Target != "" {
		o.Delays = []time.Duration{-1} // not ours to set
	}
	if o.Duration <= 0 {
		o.Duration = 4 * time.Second
	}
	if o.Slice <= 0 {
		o.Slice = time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Model == "" {
		o.Model = "auto"
	}
	if o.Prompts == "" {
		o.Prompts = PromptsSame
	}
	if o.EnvoyConcurrency <= 0 {
		o.EnvoyConcurrency = 2
	}
}

// Report is everything one run measured.
type Report struct {
	Started   time.Time  `json:"started"`
	Command   string     `json:"command"`
	Machine   Machine    `json:"machine"`
	Versions  Versions   `json:"versions"`
	Settings  Settings   `json:"settings"`
	Scenarios []Scenario `json:"scenarios"`
	// StellwerkPeakRSSKB is VmHWM of stellwerk at the end of the run.
	StellwerkPeakRSSKB int64 `json:"stellwerk_peak_rss_kb,omitempty"`
	// ExtProcStats is Envoy B's /stats?filter=ext_proc at the end of the run.
	ExtProcStats []string `json:"envoy_ext_proc_stats,omitempty"`
	Notes        []string `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	NProc    int    `json:"nproc"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel,omitempty"`
}

// Versions of what was measured.
type Versions struct {
	Go          string `json:"go"` // the bench's own toolchain
	Envoy       string `json:"envoy,omitempty"`
	Stellwerk   string `json:"stellwerk,omitempty"`
	StellwerkGo string `json:"stellwerk_go,omitempty"`
}

// Settings are the options the run used.
type Settings struct {
	Target           string   `json:"target,omitempty"`
	Model            string   `json:"model"`
	Endpoints        []string `json:"endpoints,omitempty"`
	Prompts          string   `json:"prompts,omitempty"` // same or varied (Options.Prompts)
	Shape            string   `json:"shape,omitempty"`   // of stellwerk's config: production or one-model
	Ledger           string   `json:"ledger,omitempty"`  // of the production shape: memory, redis or none
	Tenants          string   `json:"tenants,omitempty"` // of the production shape: WORKSPACESxKEYS, "" for the one key
	Models           int      `json:"models,omitempty"`  // in stellwerk's catalog
	DurationS        float64  `json:"duration_s_per_target"`
	SliceS           float64  `json:"slice_s"`
	WarmupS          float64  `json:"warmup_s"`
	EnvoyConcurrency int      `json:"envoy_concurrency,omitempty"`
	Transport        string   `json:"transport,omitempty"`       // Envoy → stellwerk: unix or mtls
	FloorMode        string   `json:"floor_mode,omitempty"`      // Envoy F's processing mode: one or pipelined
	FloorTransport   string   `json:"floor_transport,omitempty"` // the no-op server's: grpc, frames or inline
	QuietBelow       float64  `json:"quiet_below_cores,omitempty"`
	QuietWaitS       float64  `json:"quiet_wait_s,omitempty"`
	Retries          int      `json:"retries,omitempty"`
}

// Scenario is one endpoint × rate × size × mode × provider delay.
type Scenario struct {
	Name       string  `json:"name"`
	Endpoint   string  `json:"endpoint"`
	Rate       float64 `json:"rate"`
	SizeBytes  int     `json:"size_bytes"`
	Stream     bool    `json:"stream"`
	ProviderMS float64 `json:"provider_first_byte_delay_ms"` // -1: unknown (--target)

	Baseline  *TargetResult `json:"baseline,omitempty"`
	Floor     *TargetResult `json:"floor,omitempty"`
	Stellwerk TargetResult  `json:"stellwerk"` // or the --target endpoint
	// Added is stellwerk minus baseline, quantile by quantile, for the whole
	// answer and (streaming) for the first byte.
	Added     *Dist `json:"added_total,omitempty"`
	AddedTTFB *Dist `json:"added_ttfb,omitempty"`
	// AddedOverFloor is stellwerk minus the floor: what stellwerk costs
	// beyond the ext_proc mechanism itself.
	AddedOverFloor     *Dist `json:"added_over_floor_total,omitempty"`
	AddedOverFloorTTFB *Dist `json:"added_over_floor_ttfb,omitempty"`
	// FloorAdded is the floor minus baseline: the mechanism's own cost.
	FloorAdded     *Dist `json:"floor_added_total,omitempty"`
	FloorAddedTTFB *Dist `json:"floor_added_ttfb,omitempty"`

	// CPU seconds per 1,000 requests each process served in this scenario.
	StellwerkCPUPer1k float64 `json:"stellwerk_cpu_s_per_1k,omitempty"`
	EnvoyBCPUPer1k    float64 `json:"envoy_stellwerk_cpu_s_per_1k,omitempty"`
	EnvoyACPUPer1k    float64 `json:"envoy_baseline_cpu_s_per_1k,omitempty"`
	EnvoyFCPUPer1k    float64 `json:"envoy_floor_cpu_s_per_1k,omitempty"`
	NoopCPUPer1k      float64 `json:"noop_extproc_cpu_s_per_1k,omitempty"`
	// StellwerkSwitches and NoopSwitches are context switches per request
	// of stellwerk and of the no-op server (all their threads, from /proc):
	// how often the process goes idle and is woken, the Go runtime's largest
	// cost per request on a small host (docs/benchmarks.md).
	StellwerkSwitches float64 `json:"stellwerk_context_switches_per_request,omitempty"`
	NoopSwitches      float64 `json:"noop_extproc_context_switches_per_request,omitempty"`
	// StellwerkDecideUS and StellwerkOverheadUS are stellwerk's own time per
	// request in this scenario, mean µs, from its
	// stellwerk_router_overhead_seconds metric: the decision (parse,
	// classify, policy, select) and every request phase until the request
	// was decided (authentication, budgets, the rewrite included). 0 when
	// the metric could not be read.
	StellwerkDecideUS   float64 `json:"stellwerk_decide_us_mean,omitempty"`
	StellwerkOverheadUS float64 `json:"stellwerk_overhead_us_mean,omitempty"`
	// The decision's stages, mean µs (the metric's parse, classify,
	// policy and select).
	StellwerkParseUS    float64 `json:"stellwerk_parse_us_mean,omitempty"`
	StellwerkClassifyUS float64 `json:"stellwerk_classify_us_mean,omitempty"`
	StellwerkPolicyUS   float64 `json:"stellwerk_policy_us_mean,omitempty"`
	StellwerkSelectUS   float64 `json:"stellwerk_select_us_mean,omitempty"`
	// StellwerkPolicyMemoPct is the share of the scenario's decisions the
	// policy's memo answered without an evaluation, per cent
	// (stellwerk_policy_memo_hits_total and _misses_total); -1 when
	// unknown.
	StellwerkPolicyMemoPct float64 `json:"stellwerk_policy_memo_pct"`
	// StellwerkRSSKB is stellwerk's resident set at the end of the scenario;
	// StellwerkPeakRSSKB its peak since it started.
	StellwerkRSSKB     int64 `json:"stellwerk_rss_kb,omitempty"`
	StellwerkPeakRSSKB int64 `json:"stellwerk_peak_rss_kb,omitempty"`
	// OtherCores is the CPU that processes outside the bench and its stack
	// used while the scenario was measured, in cores (-1: unknown). Anything
	// well above 0 on a 2-core machine means the figures were disturbed.
	OtherCores float64 `json:"other_load_cores"`
	Attempts   int     `json:"attempts"`
}

// TargetResult is one target's side of a scenario.
type TargetResult struct {
	Name       string         `json:"name"`
	Sent       int            `json:"sent"`
	OK         int            `json:"ok"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	// SentRate is requests sent per second of sending; Throughput is
	// successful answers per second including the wait for the last ones.
	SentRate   float64   `json:"sent_rate"`
	Throughput float64   `json:"throughput"`
	Total      Dist      `json:"total"`
	TTFB       Dist      `json:"ttfb"`
	TotalHist  Histogram `json:"total_histogram"`
	TTFBHist   Histogram `json:"ttfb_histogram"`
	// Routes counts the answers by x-stellwerk-provider/x-stellwerk-model
	// (stellwerk only): what the router chose.
	Routes map[string]int `json:"routes,omitempty"`
}

// Run measures every scenario and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	prompts, err := LoadPrompts(o.Root, o.Prompts)
	if err != nil {
		return nil, err
	}
	if o.Prompts == PromptsConversation && slices.ContainsFunc(o.Endpoints, func(e string) bool { return e != Endpoints[0].Name }) {
		return nil, fmt.Errorf("prompts %s: only the %s endpoint sends conversations", PromptsConversation, Endpoints[0].Name)
	}
	rep := &Report{Started: time.Now().UTC(), Command: o.Command, Machine: machine(),
		Versions: Versions{Go: runtime.Version()},
		Settings: Settings{Target: o.Target, Model: o.Model, Endpoints: o.Endpoints, Prompts: o.Prompts, DurationS: o.Duration.Seconds(),
			SliceS: o.Slice.Seconds(), WarmupS: o.Warmup.Seconds(), QuietBelow: o.QuietBelow, QuietWaitS: o.QuietWait.Seconds(), Retries: o.Retries}}

	var targets []*Target
	var stack *Stack
	if o.Target != "" {
		targets = []*Target{newTarget("target", o.Target, o.Headers, o.Timeout)}
		rep.Notes = append(rep.Notes, "measured an external --target: no baseline, no CPU or memory figures")
	} else {
		dir, err := os.MkdirTemp("", "stellwerk-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if len(o.NoopArgv) == 0 {
			return nil, errors.New("bench: Options.NoopArgv is required to measure the floor")
		}
		floorTransport := cmpOr(o.FloorTransport, noopextproc.TransportGRPC)
		noopArgv := append(slices.Clone(o.NoopArgv), "--transport", floorTransport)
		stack, err = StartStack(ctx, StackOptions{Root: o.Root, Envoy: o.Envoy, StellwerkArgv: []string{o.Stellwerk, "serve"},
			EnvoyConcurrency: o.EnvoyConcurrency, Baseline: true, NoopArgv: noopArgv, Shape: o.Shape, Ledger: o.Ledger, MaxAttempts: o.MaxAttempts, FirstByteTimeout: o.FirstByteTimeout,
			FloorMode: o.FloorMode, Dir: dir, Progress: o.Progress, Transport: o.Transport, Tenants: o.Tenants})
		if err != nil {
			return nil, err
		}
		defer stack.Close()
		rep.Settings.EnvoyConcurrency = o.EnvoyConcurrency
		rep.Settings.Transport = cmpOr(o.Transport, "unix")
		rep.Settings.FloorMode = cmpOr(o.FloorMode, FloorOne)
		rep.Settings.FloorTransport = floorTransport
		rep.Settings.Shape, rep.Settings.Models = stack.Shape, stack.Models
		if stack.Shape == ShapeProduction {
			rep.Settings.Ledger = cmpOr(o.Ledger, LedgerMemory)
			if o.Tenants.Keys() > 0 {
				rep.Settings.Tenants = o.Tenants.String()
			}
		}
		rep.Notes = append(rep.Notes, stack.Notes...)
		rep.Versions.Envoy = envoyVersion(o.Envoy)
		rep.Versions.Stellwerk, rep.Versions.StellwerkGo = stellwerkVersion(ctx, stack.StellwerkAdmin, stack.AdminToken)
		targets = []*Target{
			newTarget("baseline", stack.BaselineURL, stack.DirectHeaders, o.Timeout),
			newTarget("floor", stack.FloorURL, stack.DirectHeaders, o.Timeout),
			newTarget("stellwerk", stack.StellwerkURL, stack.StellwerkHeaders, o.Timeout),
		}
		targets[2].Keys = stack.TenantKeys
	}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()

	for _, delay := range o.Delays {
		if stack != nil {
			stack.Provider.SetBehavior(mockBehavior(delay))
		}
		for _, name := range o.Endpoints {
			ep, ok := EndpointNamed(name)
			if !ok {
				return rep, fmt.Errorf("bench: unknown endpoint %q (have %s)", name, strings.Join(EndpointNames(), ", "))
			}
			for _, size := range o.Sizes {
				for _, stream := range o.Streams {
					if stream && ep.StreamEnd == "" {
						continue // the API does not stream
					}
					for _, rate := range o.Rates {
						var sc Scenario
						var err error
						for attempt := 1; ; attempt++ {
							waitQuiet(ctx, o, stack)
							sc, err = runScenario(ctx, o, stack, targets, ep, ep.request(prompts, size, stream, o.Model), rate, size, stream, delay)
							sc.Attempts = attempt
							if err != nil || o.QuietBelow <= 0 || sc.OtherCores < o.QuietBelow || attempt > o.Retries {
								break
							}
							progress(o.Progress, "%s: others used %.2f cores meanwhile; measuring again", sc.Name, sc.OtherCores)
						}
						if err != nil {
							if stack != nil && ctx.Err() == nil {
								err = fmt.Errorf("%w\n%s", err, stack.Logs())
							}
							return rep, err
						}
						rep.Scenarios = append(rep.Scenarios, sc)
						progress(o.Progress, "%s", sc.summaryLine())
					}
				}
			}
		}
	}
	if stack != nil {
		if m, err := readMemStatus(stack.stellwerk.pid()); err == nil {
			rep.StellwerkPeakRSSKB = m.PeakKB
		}
		rep.ExtProcStats = extProcStats(ctx, stack.EnvoyAdmin)
		if len(rep.ExtProcStats) == 0 {
			rep.Notes = append(rep.Notes, "Envoy's admin /stats?filter=ext_proc returned nothing")
		}
	}
	return rep, nil
}

// runScenario warms every target, then gives them turns in slices until each
// has had o.Duration. The order of a round is a rotation of the targets, and
// every other round the previous one reversed: with three targets
// A F B, B F A, F B A, A B F, B A F, F A B — every order once in six rounds,
// so no target always goes first or always follows the same one; with two
// it is A B, B A, B A, A B as before.
func runScenario(ctx context.Context, o Options, stack *Stack, targets []*Target, ep Endpoint, body request, rate float64, size int, stream bool, delay time.Duration) (Scenario, error) {
	sc := Scenario{Endpoint: ep.Name, Rate: rate, SizeBytes: size, Stream: stream, ProviderMS: float64(delay) / 1e6}
	if delay < 0 {
		sc.ProviderMS = -1
	}
	sc.Name = scenarioName(sc)
	if o.Warmup > 0 {
		for _, t := range targets {
			attack(ctx, t, rate, o.Warmup, body, func(result) {})
		}
	}
	if err := ctx.Err(); err != nil {
		return sc, err
	}

	type acc struct {
		mu          sync.Mutex
		total, ttfb []time.Duration
		errs        map[string]int
		routes      map[string]int
		sent        int
		window      time.Duration // sending
		wall        time.Duration // sending and waiting
	}
	accs := make([]*acc, len(targets))
	for i := range accs {
		accs[i] = &acc{errs: map[string]int{}}
	}
	cpu0 := stack.cpu()
	ov0 := stack.routerOverhead(ctx)
	meter := stack.loadMeter()
	meter.start()
	slicesPerTarget := int((o.Duration + o.Slice - 1) / o.Slice)
	for k := range slicesPerTarget {
		order := sliceOrder(k, len(targets))
		for _, i := range order {
			a := accs[i]
			began := time.Now()
			sent, window := attack(ctx, targets[i], rate, o.Slice, body, func(r result) {
				a.mu.Lock()
				defer a.mu.Unlock()
				if !r.ok() {
					a.errs[r.Err]++
					return
				}
				a.total = append(a.total, r.Total)
				a.ttfb = append(a.ttfb, r.TTFB)
				if r.Route != "" {
					if a.routes == nil {
						a.routes = map[string]int{}
					}
					a.routes[r.Route]++
				}
			})
			a.sent += sent
			a.window += window
			a.wall += time.Since(began)
			if err := ctx.Err(); err != nil {
				return sc, err
			}
		}
	}
	cpu1 := stack.cpu()
	ov1 := stack.routerOverhead(ctx)
	sc.OtherCores = meter.otherCores()

	results := make([]TargetResult, len(targets))
	for i, a := range accs {
		r := TargetResult{Name: targets[i].Name, Sent: a.sent, OK: len(a.total), SentRate: round2(float64(a.sent) / a.window.Seconds()),
			Throughput: round2(float64(len(a.total)) / a.wall.Seconds()), TotalHist: histogram(a.total), TTFBHist: histogram(a.ttfb),
			Total: summarize(a.total), TTFB: summarize(a.ttfb), Routes: a.routes}
		for _, n := range a.errs {
			r.Errors += n
		}
		if r.Errors > 0 {
			r.ErrorKinds = a.errs
		}
		results[i] = r
	}
	if stack == nil {
		sc.OtherCores = -1 // the target is one of the others
		sc.Stellwerk = results[0]
		return sc, nil
	}
	base, floor, sw := results[0], results[1], results[2]
	sc.Baseline, sc.Floor, sc.Stellwerk = &base, &floor, sw
	diff := func(a, b TargetResult, total, ttfb **Dist) {
		d := added(a.Total, b.Total)
		*total = &d
		if stream {
			t := added(a.TTFB, b.TTFB)
			*ttfb = &t
		}
	}
	diff(sw, base, &sc.Added, &sc.AddedTTFB)
	diff(sw, floor, &sc.AddedOverFloor, &sc.AddedOverFloorTTFB)
	diff(floor, base, &sc.FloorAdded, &sc.FloorAddedTTFB)
	per1k := func(sec float64, n int) float64 {
		if n == 0 {
			return 0
		}
		return round3(sec / float64(n) * 1000)
	}
	sc.StellwerkCPUPer1k = per1k(cpu1.stellwerk-cpu0.stellwerk, sw.Sent)
	sc.EnvoyBCPUPer1k = per1k(cpu1.envoyB-cpu0.envoyB, sw.Sent)
	sc.EnvoyACPUPer1k = per1k(cpu1.envoyA-cpu0.envoyA, base.Sent)
	sc.EnvoyFCPUPer1k = per1k(cpu1.envoyF-cpu0.envoyF, floor.Sent)
	sc.NoopCPUPer1k = per1k(cpu1.noop-cpu0.noop, floor.Sent)
	perRequest := func(n int64, sent int) float64 {
		if sent == 0 {
			return 0
		}
		return round2(float64(n) / float64(sent))
	}
	sc.StellwerkSwitches = perRequest(cpu1.stellwerkCS-cpu0.stellwerkCS, sw.Sent)
	sc.NoopSwitches = perRequest(cpu1.noopCS-cpu0.noopCS, floor.Sent)
	sc.StellwerkDecideUS, sc.StellwerkOverheadUS = ov1.meanUS("decide", ov0), ov1.meanUS("total", ov0)
	sc.StellwerkParseUS, sc.StellwerkClassifyUS = ov1.meanUS("parse", ov0), ov1.meanUS("classify", ov0)
	sc.StellwerkPolicyUS, sc.StellwerkSelectUS = ov1.meanUS("policy", ov0), ov1.meanUS("select", ov0)
	sc.StellwerkPolicyMemoPct = ov1.memoPct(ov0)
	if m, err := readMemStatus(stack.stellwerk.pid()); err == nil {
		sc.StellwerkRSSKB, sc.StellwerkPeakRSSKB = m.RSSKB, m.PeakKB
	}
	if stack.stellwerk.exited() || stack.envoyB.exited() || stack.envoyA.exited() || stack.envoyF.exited() || stack.noop.exited() {
		return sc, errors.New("a process of the stack exited during the run")
	}
	return sc, nil
}

// waitQuiet waits, up to o.QuietWait, for a second in which other processes
// use less than o.QuietBelow cores, so a scenario does not start in the
// middle of someone else's build.
func waitQuiet(ctx context.Context, o Options, stack *Stack) {
	if o.QuietBelow <= 0 || o.QuietWait <= 0 {
		return
	}
	deadline := time.Now().Add(o.QuietWait)
	m := stack.loadMeter()
	for {
		m.start()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		other := m.otherCores()
		if other < o.QuietBelow {
			return
		}
		if time.Now().After(deadline) {
			progress(o.Progress, "machine still busy (%.2f cores used by others); measuring anyway", other)
			return
		}
		progress(o.Progress, "machine busy (%.2f cores used by others); waiting", other)
	}
}

// loadMeter counts the stack's processes (none without a stack) as its own.
func (s *Stack) loadMeter() *loadMeter {
	return &loadMeter{pids: func() []int {
		if s == nil {
			return nil
		}
		var pids []int
		for _, p := range []*process{s.stellwerk, s.envoyA, s.envoyB, s.envoyF, s.noop} {
			if p != nil {
				pids = append(pids, p.pid())
			}
		}
		return pids
	}}
}

type cpuTimes struct {
	stellwerk, envoyB, envoyA, envoyF, noop float64
	// Context switches of stellwerk and of the no-op server so far.
	stellwerkCS, noopCS int64
}

func (s *Stack) cpu() cpuTimes {
	if s == nil {
		return cpuTimes{}
	}
	get := func(p *process) float64 {
		if p == nil {
			return 0
		}
		v, _ := cpuSeconds(p.pid())
		return v
	}
	cs := func(p *process) int64 {
		if p == nil {
			return 0
		}
		v, _ := contextSwitches(p.pid())
		return v
	}
	return cpuTimes{stellwerk: get(s.stellwerk), envoyB: get(s.envoyB), envoyA: get(s.envoyA), envoyF: get(s.envoyF), noop: get(s.noop),
		stellwerkCS: cs(s.stellwerk), noopCS: cs(s.noop)}
}

func scenarioName(sc Scenario) string {
	mode := "json"
	if sc.Stream {
		mode = "stream"
	}
	name := fmt.Sprintf("%g rps, %s, %s", sc.Rate, sizeName(sc.SizeBytes), mode)
	if sc.Endpoint != "" && sc.Endpoint != Endpoints[0].Name {
		name = sc.Endpoint + ", " + name // chat, the default, keeps the names of earlier runs
	}
	if sc.ProviderMS >= 0 {
		name += fmt.Sprintf(", provider %g ms", sc.ProviderMS)
	}
	return name
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func (sc Scenario) summaryLine() string {
	s := fmt.Sprintf("%-36s %s: p50 %.2f ms p99 %.2f ms, %d ok, %d errors, others used %.2f cores", sc.Name, sc.Stellwerk.Name,
		sc.Stellwerk.Total.P50, sc.Stellwerk.Total.P99, sc.Stellwerk.OK, sc.Stellwerk.Errors, sc.OtherCores)
	if sc.Added != nil {
		s += fmt.Sprintf("; above Envoy p50 %+.2f ms p99 %+.2f ms; baseline %d errors", sc.Added.P50, sc.Added.P99, sc.Baseline.Errors)
	}
	if sc.AddedOverFloor != nil {
		s += fmt.Sprintf("; above the floor p50 %+.2f ms p99 %+.2f ms; floor %d errors", sc.AddedOverFloor.P50, sc.AddedOverFloor.P99, sc.Floor.Errors)
	}
	return s
}

// sliceOrder is the order of the targets in round k (see runScenario).
func sliceOrder(k, n int) []int {
	order := make([]int, n)
	rot := k / 2 // a round and its reversal share a rotation
	for i := range order {
		order[i] = (i + rot) % n
	}
	if k%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// machine describes the host: nproc (CPUs this process may use) and the
// CPU model from /proc/cpuinfo.
func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), CPUModel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
