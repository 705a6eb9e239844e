package tracesum

import (
	"bytes"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
)

// echo answers every value it receives until in closes.
func echo(in <-chan int, out chan<- int, wg *sync.WaitGroup) {
	defer wg.Done()
	for v := range in {
		out <- v
	}
}

// ask sends n values to echo and waits for each answer: every send makes
// echo ready (it waits on in), every answer makes ask ready.
func ask(in chan<- int, out <-chan int, n int) {
	for i := range n {
		in <- i
		<-out
	}
	close(in)
}

func TestRead(t *testing.T) {
	const rounds = 200
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("tracing is on already: %v", err)
	}
	in, out := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(1)
	go echo(in, out, &wg)
	ask(in, out, rounds)
	wg.Wait()
	trace.Stop()

	s, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if s.Creations < 1 || s.Span <= 0 {
		t.Fatalf("creations %d, span %s: the echo goroutine's start and the trace's span are missing", s.Creations, s.Span)
	}
	// echo usually waits on in before a send and is readied by ask (unless
	// ask's next send comes first); ask is readied by echo every round,
	// by the answer or by the receive that takes its send.
	var byAsk, byEcho int
	for _, c := range s.Wakes {
		if c.Woken == "tracesum.echo" && strings.HasPrefix(c.By, "tracesum.ask") {
			byAsk += c.N
		}
		if strings.HasPrefix(c.By, "tracesum.echo") {
			byEcho += c.N
		}
	}
	if byAsk < rounds/4 || byEcho < rounds/2 {
		t.Errorf("echo readied by ask %d times (want ≥ %d), something readied by echo %d times (want ≥ %d) in %d rounds:\n%+v",
			byAsk, rounds/4, byEcho, rounds/2, rounds, s.Wakes)
	}
	ran := false
	for _, r := range s.Running {
		ran = ran || r.Goroutine == "tracesum.echo" && r.Total > 0
	}
	if !ran {
		t.Errorf("no executing time for tracesum.echo: %+v", s.Running)
	}
	waited := false
	for _, w := range s.Waits {
		if w.Goroutine == "tracesum.echo" {
			waited = w.N >= byAsk && w.P50 <= w.P99 && w.P99 <= w.P999 && w.Total >= w.P999
		}
	}
	if !waited {
		t.Errorf("echo's waits to run are not one per readying, in order of quantiles: %+v", s.Waits)
	}

	var w bytes.Buffer
	if err := s.Write(&w, rounds, 5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"figures per request", "goroutines made ready", "tracesum.echo", "tracesum.ask"} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, w.String())
		}
	}
}

func TestReadRefusesGarbage(t *testing.T) {
	if _, err := Read(strings.NewReader("not a trace")); err == nil {
		t.Fatal("a file that is not a trace was read without an error")
	}
}
