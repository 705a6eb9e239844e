package logevery

import (
	"sync"
	"testing"
	"time"
)

// TestAllow: the first occurrence is logged, the next ones in the interval
// are counted into the line after it, and concurrent callers let exactly
// one through.
func TestAllow(t *testing.T) {
	l := &Limiter{Every: 50 * time.Millisecond}
	if ok, n := l.Allow(); !ok || n != 1 {
		t.Fatalf("first: %v %d", ok, n)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow(); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed != 0 {
		t.Fatalf("%d let through within the interval", allowed)
	}
	time.Sleep(60 * time.Millisecond)
	if ok, n := l.Allow(); !ok || n != 101 {
		t.Fatalf("after the interval: %v %d, want the 100 held back and this one", ok, n)
	}
}
