// Package tracesum summarises a Go execution trace (runtime/trace, as
// `stellwerk-bench profile --trace` writes it) by the hand-offs between
// goroutines: how often a goroutine was made ready and by what, how long
// each kind of goroutine ran, and how long it waited to run once ready.
// A CPU profile shows none of this; `go tool trace` shows it one goroutine
// at a time. Goroutines are named by the function they started in, wake-ups
// by the first frame of the waker's stack outside the runtime, sync and
// context: the code that handed something over.
package tracesum

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/exp/trace"
)

// Summary is what a trace held.
type Summary struct {
	Span       time.Duration // from the first event to the last
	Unblocks   int           // waiting → runnable: a goroutine made ready
	Creations  int           // goroutines started
	ProcStarts int           // a P taken from idle to running: a thread woken to run Go code
	Wakes      []Count       // the unblocks, by woken goroutine and waker, most first
	Running    []Time        // executing time, by goroutine, most first
	Waits      []Wait        // runnable → running, by goroutine
}

// Count is how often a kind of goroutine was made ready by one site.
type Count struct {
	Woken, By string
	N         int
}

// Time is how long a kind of goroutine executed (running or in a system
// call) in all.
type Time struct {
	Goroutine string
	Total     time.Duration
}

// Wait is how long a kind of goroutine waited to run once it was ready.
type Wait struct {
	Goroutine      string
	N              int
	Total          time.Duration
	P50, P99, P999 time.Duration
	Over300us      int
}

// noGoroutine names the waker of a goroutine made ready outside any
// goroutine: by the scheduler, for the network poller or a timer.
const noGoroutine = "(scheduler: network poller, timer)"

// Read summarises the trace in r.
func Read(r io.Reader) (*Summary, error) {
	rd, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	var (
		s           Summary
		first, last trace.Time
		names       = map[trace.GoID]string{}
		since       = map[trace.GoID]trace.Time{} // running since
		readySince  = map[trace.GoID]trace.Time{}
		wakes       = map[[2]string]int{}
		running     = map[string]time.Duration{}
		waits       = map[string][]time.Duration{}
		seen        bool
	)
	name := func(g trace.GoID) string {
		if n, ok := names[g]; ok {
			return n
		}
		return "(goroutine that started before the trace)"
	}
	for {
		ev, err := rd.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !seen {
			first, seen = ev.Time(), true
		}
		last = ev.Time()
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		switch st.Resource.Kind {
		case trace.ResourceProc:
			if from, to := st.Proc(); from == trace.ProcIdle && to == trace.ProcRunning {
				s.ProcStarts++
			}
			continue
		case trace.ResourceGoroutine:
		default:
			continue
		}
		g := st.Resource.Goroutine()
		from, to := st.Goroutine()
		// A goroutine is named by the root of any stack of its own.
		if r := root(st.Stack); r != "" {
			names[g] = r
		} else if ev.Goroutine() == g {
			if r := root(ev.Stack()); r != "" {
				names[g] = r
			}
		}
		t := ev.Time()
		if from.Executing() && !to.Executing() {
			if t0, ok := since[g]; ok {
				running[name(g)] += t.Sub(t0)
				delete(since, g)
			}
		}
		if to.Executing() && !from.Executing() {
			since[g] = t
		}
		switch {
		case from == trace.GoNotExist && to == trace.GoRunnable:
			s.Creations++
		case from == trace.GoWaiting && to == trace.GoRunnable:
			s.Unblocks++
			by := noGoroutine
			if ev.Goroutine() != trace.NoGoroutine {
				by = site(ev.Stack())
			}
			wakes[[2]string{name(g), by}]++
		}
		if to == trace.GoRunnable {
			readySince[g] = t
		}
		if to == trace.GoRunning {
			if t0, ok := readySince[g]; ok {
				waits[name(g)] = append(waits[name(g)], t.Sub(t0))
			}
			delete(readySince, g)
		}
	}
	if seen {
		s.Span = last.Sub(first)
	}
	for k, n := range wakes {
		s.Wakes = append(s.Wakes, Count{Woken: k[0], By: k[1], N: n})
	}
	sort.Slice(s.Wakes, func(i, j int) bool {
		a, b := s.Wakes[i], s.Wakes[j]
		if a.N != b.N {
			return a.N > b.N
		}
		return a.Woken+a.By < b.Woken+b.By
	})
	for g, d := range running {
		s.Running = append(s.Running, Time{Goroutine: g, Total: d})
	}
	sort.Slice(s.Running, func(i, j int) bool {
		if s.Running[i].Total != s.Running[j].Total {
			return s.Running[i].Total > s.Running[j].Total
		}
		return s.Running[i].Goroutine < s.Running[j].Goroutine
	})
	for g, ds := range waits {
		slices.Sort(ds)
		w := Wait{Goroutine: g, N: len(ds), P50: quantile(ds, 0.5), P99: quantile(ds, 0.99), P999: quantile(ds, 0.999)}
		for _, d := range ds {
			w.Total += d
			if d > 300*time.Microsecond {
				w.Over300us++
			}
		}
		s.Waits = append(s.Waits, w)
	}
	sort.Slice(s.Waits, func(i, j int) bool {
		if s.Waits[i].N != s.Waits[j].N {
			return s.Waits[i].N > s.Waits[j].N
		}
		return s.Waits[i].Goroutine < s.Waits[j].Goroutine
	})
	return &s, nil
}

// quantile of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q * float64(len(ds)))
	if i >= len(ds) {
		i = len(ds) - 1
	}
	return ds[i]
}

// root is the function a stack's goroutine started in.
func root(stk trace.Stack) string {
	r := ""
	for f := range stk.Frames() {
		if f.Func != "runtime.goexit" {
			r = f.Func
		}
	}
	return short(r)
}

// site is where a waker handed something over: the first two frames of
// its stack that are not the machinery of the hand-off itself (the
// runtime, sync, context), "callee ← caller".
func site(stk trace.Stack) string {
	var found []string
	leaf := ""
	for f := range stk.Frames() {
		if leaf == "" {
			leaf = f.Func
		}
		if !machinery(f.Func) {
			if found = append(found, short(f.Func)); len(found) == 2 {
				break
			}
		}
	}
	switch {
	case len(found) > 0:
		return strings.Join(found, " ← ")
	case leaf != "":
		return short(leaf)
	}
	return "(no stack)"
}

func machinery(fn string) bool {
	for _, p := range []string{"runtime.", "sync.", "sync/", "internal/", "context."} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// short drops a function's import path up to its package name.
func short(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

// Write prints s per request (requests > 0: the requests the trace
// covers) or per second, the top rows of each table.
func (s *Summary) Write(w io.Writer, requests float64, rows int) error {
	per, unit := s.Span.Seconds(), "second"
	if requests > 0 {
		per, unit = requests, "request"
	}
	if per <= 0 {
		return errors.New("empty trace")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "trace of %s", s.Span.Round(time.Millisecond))
	if requests > 0 {
		fmt.Fprintf(w, ", %.0f requests", requests)
	}
	fmt.Fprintf(w, "; figures per %s\n\n", unit)
	fmt.Fprintf(tw, "goroutines made ready\t%.2f\t\n", float64(s.Unblocks)/per)
	fmt.Fprintf(tw, "goroutines started\t%.2f\t\n", float64(s.Creations)/per)
	fmt.Fprintf(tw, "Ps started (a thread woken to run Go code)\t%.2f\t\n", float64(s.ProcStarts)/per)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nmade ready, by goroutine and by what readied it (per %s)\n", unit)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "n\tgoroutine\treadied by\t")
	for _, c := range s.Wakes[:min(rows, len(s.Wakes))] {
		fmt.Fprintf(tw, "%.3f\t%s\t%s\t\n", float64(c.N)/per, c.Woken, c.By)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nexecuting (running or in a system call), ms per %s\n", unit)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range s.Running[:min(rows, len(s.Running))] {
		fmt.Fprintf(tw, "%.4f\t%s\t\n", float64(t.Total)/float64(time.Millisecond)/per, t.Goroutine)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nready to running: waits, their sum in µs per %s, quantiles in µs\n", unit)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "waits\tsum\tp50\tp99\tp99.9\t>300µs\tgoroutine\t")
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	for _, x := range s.Waits[:min(rows, len(s.Waits))] {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t\n", x.N, us(time.Duration(float64(x.Total)/per)), us(x.P50), us(x.P99), us(x.P999), x.Over300us, x.Goroutine)
	}
	return tw.Flush()
}
