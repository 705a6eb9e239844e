package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"time"
)

// SoakOptions shape a soak: steady load on the stellwerk stack only.
type SoakOptions struct {
	Root, Envoy, Stellwerk string

	Duration time.Duration // default 10m
	Interval time.Duration // between samples; default 5s
	Rate     float64       // default 200
	Size     int           // default 2048
	Stream   bool
	Delay    time.Duration // provider first-byte delay
	Prompts  string        // PromptsSame (default here) or PromptsVaried (stellwerk-bench's)
	Timeout  time.Duration // per request; default 10s

	EnvoyConcurrency int
	Transport        string  // Envoy → stellwerk: unix (default) or mtls
	Shape            string  // of stellwerk's config: ShapeProduction (default) or ShapeOneModel
	Ledger           string  // of the production shape: LedgerMemory (default), LedgerRedis or LedgerNone
	Tenants          Tenants // of the production shape (StackOptions); zero: the one bench key
	Command          string
	Progress         io.Writer
}

// SoakReport is what a soak saw over time.
type SoakReport struct {
	Started  time.Time    `json:"started"`
	Command  string       `json:"command"`
	Machine  Machine      `json:"machine"`
	Versions Versions     `json:"versions"`
	Scenario string       `json:"scenario"`
	Samples  []SoakSample `json:"samples"`
	// Flat says, per metric, whether the last quarter's mean stayed within
	// 10% of the second quarter's (the first quarter is warm-up).
	Flat   []Flatness   `json:"flat"`
	Result TargetResult `json:"result"`
	Notes  []string     `json:"notes,omitempty"`
}

// SoakSample is one look at the processes.
type SoakSample struct {
	AtS    float64 `json:"at_s"`
	RSSKB  int64   `json:"stellwerk_rss_kb"`
	AnonKB int64   `json:"stellwerk_rss_anon_kb"`
	FileKB int64   `json:"stellwerk_rss_file_kb"`
	// HeapInuseKB is Go's heap in use (runtime.MemStats.HeapInuse).
	HeapInuseKB int64   `json:"stellwerk_go_heap_inuse_kb,omitempty"`
	FDs         int     `json:"stellwerk_fds"`
	Goroutines  *int    `json:"stellwerk_goroutines,omitempty"`
	EnvoyRSSKB  int64   `json:"envoy_rss_kb"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
}

// Flatness compares the second and the last quarter of a soak.
type Flatness struct {
	Metric       string  `json:"metric"`
	SecondQuart  float64 `json:"second_quarter_mean"`
	LastQuart    float64 `json:"last_quarter_mean"`
	ChangePct    float64 `json:"change_pct"`
	Flat         bool    `json:"flat"`
	Inconclusive bool    `json:"inconclusive,omitempty"` // too few samples
}

// Soak runs steady load against Envoy + stellwerk and samples stellwerk's
// RSS, open file descriptors and (if its admin API publishes them)
// goroutines, and Envoy's RSS.
func Soak(ctx context.Context, o SoakOptions) (*SoakReport, error) {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Size <= 0 {
		o.Size = 2 << 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	prompts, err := LoadPrompts(o.Root, o.Prompts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stellwerk-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	stack, err := StartStack(ctx, StackOptions{Root: o.Root, Envoy: o.Envoy, StellwerkArgv: []string{o.Stellwerk, "serve"},
		EnvoyConcurrency: o.EnvoyConcurrency, Dir: dir, Progress: o.Progress, Transport: o.Transport, Shape: o.Shape, Ledger: o.Ledger, Tenants: o.Tenants})
	if err != nil {
		return nil, err
	}
	defer stack.Close()
	stack.Provider.SetBehavior(mockBehavior(o.Delay))

	rep := &SoakReport{Started: time.Now().UTC(), Command: o.Command, Machine: machine(),
		Versions: Versions{Go: runtime.Version(), Envoy: envoyVersion(o.Envoy)}}
	rep.Versions.Stellwerk, rep.Versions.StellwerkGo = stellwerkVersion(ctx, stack.StellwerkAdmin, stack.AdminToken)
	rep.Scenario = scenarioName(Scenario{Rate: o.Rate, SizeBytes: o.Size, Stream: o.Stream, ProviderMS: float64(o.Delay) / 1e6}) +
		fmt.Sprintf(", %s shape, %s prompts, %s, sampled every %s", stack.Shape, promptsName(o.Prompts), o.Duration, o.Interval)
	rep.Notes = append(rep.Notes, stack.Notes...)
	// Goroutines and the Go heap in use (live objects and their spans,
	// what a leak grows; the heap's high-water, which Go returns to the
	// system only slowly, is in the anonymous RSS) come from /debug/vars.
	goroutines := func() (*int, int64) { return nil, 0 }
	var vars map[string]any
	if err := getJSON(ctx, stack.StellwerkAdmin+"/debug/vars", stack.AdminToken, &vars); err != nil {
		rep.Notes = append(rep.Notes, "goroutines not sampled: stellwerk's admin API has no /debug/vars ("+err.Error()+")")
	} else if _, ok := vars["goroutines"].(float64); !ok {
		rep.Notes = append(rep.Notes, "goroutines not sampled: /debug/vars has no \"goroutines\" value")
	} else {
		goroutines = func() (*int, int64) {
			var v struct {
				Goroutines *float64 `json:"goroutines"`
				MemStats   struct {
					HeapInuse int64
				} `json:"memstats"`
			}
			if getJSON(ctx, stack.StellwerkAdmin+"/debug/vars", stack.AdminToken, &v) != nil || v.Goroutines == nil {
				return nil, 0
			}
			n := int(*v.Goroutines)
			return &n, v.MemStats.HeapInuse / 1024
		}
	}

	target := newTarget("stellwerk", stack.StellwerkURL, stack.StellwerkHeaders, o.Timeout)
	target.Keys = stack.TenantKeys
	defer target.close()
	body := chatRequest(prompts, o.Size, o.Stream, "auto")
	attack(ctx, target, o.Rate, 2*time.Second, body, func(result) {}) // warm-up

	var (
		mu         sync.Mutex
		window     []time.Duration
		all        []time.Duration
		winErrs    int
		errs       = map[string]int{}
		sent       int
		sendWindow time.Duration
	)
	began := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent, sendWindow = attack(ctx, target, o.Rate, o.Duration, body, func(r result) {
			mu.Lock()
			defer mu.Unlock()
			if !r.ok() {
				winErrs++
				errs[r.Err]++
				return
			}
			window = append(window, r.Total)
			all = append(all, r.Total)
		})
	}()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	sample := func() {
		mu.Lock()
		w, e := window, winErrs
		window, winErrs = nil, 0
		mu.Unlock()
		d := summarize(w)
		s := SoakSample{AtS: round2(time.Since(began).Seconds()), OK: len(w), Errors: e, P50: d.P50, P99: d.P99}
		s.Goroutines, s.HeapInuseKB = goroutines()
		if m, err := readMemStatus(stack.stellwerk.pid()); err == nil {
			s.RSSKB, s.AnonKB, s.FileKB = m.RSSKB, m.AnonKB, m.FileKB
		}
		if m, err := readMemStatus(stack.envoyB.pid()); err == nil {
			s.EnvoyRSSKB = m.RSSKB
		}
		s.FDs, _ = fdCount(stack.stellwerk.pid())
		rep.Samples = append(rep.Samples, s)
		progress(o.Progress, "soak %6.0fs: stellwerk rss %.1f MiB (anonymous %.1f, file %.1f; Go heap in use %.1f), %d fds, envoy rss %.1f MiB, %d ok, %d errors, p99 %.2f ms",
			s.AtS, mib(s.RSSKB), mib(s.AnonKB), mib(s.FileKB), mib(s.HeapInuseKB), s.FDs, mib(s.EnvoyRSSKB), s.OK, s.Errors, s.P99)
	}
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			sample()
		}
	}
	sample()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	r := TargetResult{Name: "stellwerk", Sent: sent, OK: len(all), ErrorKinds: errs,
		SentRate: round2(float64(sent) / sendWindow.Seconds()), Throughput: round2(float64(len(all)) / time.Since(began).Seconds()),
		TotalHist: histogram(all), Total: summarize(all)}
	for _, n := range errs {
		r.Errors += n
	}
	if r.Errors == 0 {
		r.ErrorKinds = nil
	}
	rep.Result = r

	pick := func(f func(SoakSample) (float64, bool)) []float64 {
		var xs []float64
		for _, s := range rep.Samples {
			if v, ok := f(s); ok {
				xs = append(xs, v)
			}
		}
		return xs
	}
	rep.Flat = append(rep.Flat,
		flatness("stellwerk RSS (KiB)", pick(func(s SoakSample) (float64, bool) { return float64(s.RSSKB), true })),
		// A leak grows the heaps; file-backed pages (the binary's code,
		// first used) grow once and are reclaimable.
		flatness("stellwerk anonymous RSS (KiB)", pick(func(s SoakSample) (float64, bool) { return float64(s.AnonKB), s.AnonKB > 0 })),
		flatness("stellwerk Go heap in use (KiB)", pick(func(s SoakSample) (float64, bool) { return float64(s.HeapInuseKB), s.HeapInuseKB > 0 })),
		flatness("stellwerk open fds", pick(func(s SoakSample) (float64, bool) { return float64(s.FDs), true })),
		flatness("Envoy RSS (KiB)", pick(func(s SoakSample) (float64, bool) { return float64(s.EnvoyRSSKB), true })),
	)
	if g := pick(func(s SoakSample) (float64, bool) {
		if s.Goroutines == nil {
			return 0, false
		}
		return float64(*s.Goroutines), true
	}); len(g) > 0 {
		rep.Flat = append(rep.Flat, flatness("stellwerk goroutines", g))
	}
	return rep, nil
}

// flatness compares the means of the second and the last quarter of xs
// (samples in time order). Fewer than 8 samples is too short to say.
func flatness(metric string, xs []float64) Flatness {
	f := Flatness{Metric: metric}
	n := len(xs)
	if n < 8 {
		f.Inconclusive = true
		return f
	}
	f.SecondQuart = math.Round(meanOf(xs[n/4 : n/2]))
	f.LastQuart = math.Round(meanOf(xs[n-n/4:]))
	if f.SecondQuart != 0 {
		f.ChangePct = math.Round((f.LastQuart-f.SecondQuart)/f.SecondQuart*1000) / 10
	}
	f.Flat = math.Abs(f.LastQuart-f.SecondQuart) <= 0.10*math.Abs(f.SecondQuart)
	return f
}

// WriteSoakText prints the verdicts of a soak.
func WriteSoakText(w io.Writer, rep *SoakReport) {
	fmt.Fprintf(w, "\nsoak: %s\n", rep.Scenario)
	r := rep.Result
	fmt.Fprintf(w, "sent %d (%.1f/s), ok %d, errors %d; latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
		r.Sent, r.SentRate, r.OK, r.Errors, r.Total.P50, r.Total.P99, r.Total.P999, r.Total.Max)
	for _, f := range rep.Flat {
		verdict := "FLAT"
		switch {
		case f.Inconclusive:
			verdict = "too few samples to say"
		case !f.Flat:
			verdict = "NOT FLAT"
		}
		fmt.Fprintf(w, "%-30s second quarter %10.0f  last quarter %10.0f  (%+.1f%%)  %s\n", f.Metric, f.SecondQuart, f.LastQuart, f.ChangePct, verdict)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// WriteSoakJSON writes the soak report, indented.
func WriteSoakJSON(path string, rep *SoakReport) error { return writeJSONFile(path, rep) }
