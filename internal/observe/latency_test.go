package observe

import (
	"sync"
	"testing"
	"time"
)

func TestLatencyLearns(t *testing.T) {
	var l Latency
	if got := l.Get("m", 900); got != 900 {
		t.Fatalf("seed: %d", got)
	}
	l.Observe("m", 100*time.Millisecond)
	if got := l.Get("m", 900); got != 100 {
		t.Fatalf("first observation replaces the seed: %d", got)
	}
	for range 30 {
		l.Observe("m", 300*time.Millisecond)
	}
	if got := l.Get("m", 900); got < 295 || got > 300 {
		t.Fatalf("converges to 300: %d", got)
	}
	l.Observe("m", 3*time.Second) // one slow answer moves it, but not all the way
	if got := l.Get("m", 900); got < 800 || got > 900 {
		t.Fatalf("after one slow answer: %d", got)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				l.Observe("n", 50*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if got := l.Get("n", 0); got != 50 {
		t.Fatalf("concurrent: %d", got)
	}
}
