package observe

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestLatencyLearns(t *testing.T) {
	var l Latency
	if got := l.Get("m", false, 900); got != 900 {
		t.Fatalf("seed: %d", got)
	}
	l.Observe("m", false, 100*time.Millisecond)
	if got := l.Get("m", false, 900); got != 100 {
		t.Fatalf("first observation replaces the seed: %d", got)
	}
	for range 30 {
		l.Observe("m", false, 300*time.Millisecond)
	}
	if got := l.Get("m", false, 900); got < 295 || got > 300 {
		t.Fatalf("converges to 300: %d", got)
	}
	l.Observe("m", false, 3*time.Second) // one slow answer moves it, but not all the way
	if got := l.Get("m", false, 900); got < 800 || got > 900 {
		t.Fatalf("after one slow answer: %d", got)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				l.Observe("n", false, 50*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if got := l.Get("n", false, 0); got != 50 {
		t.Fatalf("concurrent: %d", got)
	}
}

// TestSlowOnceIsTriedAgain (issue 19): a model measured slow once fades back toward its
// seed while nothing refreshes it, so selection by latency picks it again within a few
// half-lives; the next observation blends with the faded value.
func TestSlowOnceIsTriedAgain(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	l := Latency{HalfLife: time.Minute, Now: func() time.Time { return now }}
	const seed, rival = 300, 400         // the rival model's steady latency
	l.Observe("m", false, 5*time.Second) // a cold TLS connection
	if got := l.Get("m", false, seed); got != 5000 {
		t.Fatalf("right after: %d, want 5000", got)
	}
	now = now.Add(time.Minute)
	if got := l.Get("m", false, seed); got != 2650 {
		t.Errorf("after one half-life: %d, want 2650 (half way back to the seed)", got)
	}
	now = now.Add(5 * time.Minute)
	got := l.Get("m", false, seed)
	if got != 373 || got >= rival {
		t.Errorf("after six half-lives: %d, want 373, below the rival's %d so that it is chosen again", got, rival)
	}
	// It is chosen, answers fast now, and the learned value follows.
	l.Observe("m", false, 250*time.Millisecond)
	if after := l.Get("m", false, seed); after >= got || after < 250 {
		t.Errorf("after a fast answer: %d, want between 250 and %d", after, got)
	}
	// Steady traffic hardly fades: observations keep refreshing it (a second between them
	// pulls it toward the seed by a fraction of a millisecond).
	for range 50 {
		now = now.Add(time.Second)
		l.Observe("m", false, 250*time.Millisecond)
	}
	if got := l.Get("m", false, seed); got < 250 || got > 255 {
		t.Errorf("steady: %d, want 250–255", got)
	}
}

// TestStreamsAndAnswersApart (issue 19): a model's time to first token and
// its completion time are learned apart, each faded toward the seed on its
// own; a stream never drags a JSON answer's estimate and back.
func TestStreamsAndAnswersApart(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	l := Latency{HalfLife: time.Minute, Now: func() time.Time { return now }}
	l.Observe("m", true, 200*time.Millisecond)
	l.Observe("m", false, 6*time.Second)
	if s, j := l.Get("m", true, 1000), l.Get("m", false, 1000); s != 200 || j != 6000 {
		t.Fatalf("stream %d, JSON %d; want 200 and 6000", s, j)
	}
	if got := l.Get("n", true, 700); got != 700 {
		t.Errorf("unobserved: %d, want the seed", got)
	}
	l.Observe("o", false, 2*time.Second)
	if got := l.Get("o", true, 700); got != 700 {
		t.Errorf("a model observed only on JSON answers: stream estimate %d, want the seed", got)
	}
	now = now.Add(time.Minute)
	if s, j := l.Get("m", true, 1000), l.Get("m", false, 1000); s != 600 || j != 3500 {
		t.Errorf("after a half-life: stream %d, JSON %d; want 600 and 3500", s, j)
	}
}

// BenchmarkGet70 is selection's question, asked for every model of every
// request (≈70 in the shipped catalog) by concurrent requests, with every
// model learned.
//
//	go test -run '^$' -bench Get70 -benchmem ./internal/observe/
func BenchmarkGet70(b *testing.B) {
	var l Latency
	ids := make([]string, 70)
	for i := range ids {
		ids[i] = "model-" + strconv.Itoa(i)
		l.Observe(ids[i], i%2 == 0, time.Duration(300+i)*time.Millisecond)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for i, id := range ids {
				if l.Get(id, i%2 == 0, 1000) < 300 {
					b.Fatal("wrong answer")
				}
			}
		}
	})
}

// BenchmarkCells70 is the same question as selection asks it: through the
// cells it keeps per catalog model, without a lookup by name.
//
//	go test -run '^$' -bench 'Get70|Cells70' -benchmem ./internal/observe/
func BenchmarkCells70(b *testing.B) {
	var l Latency
	cells := make([]*Cell, 70)
	for i := range cells {
		id := "model-" + strconv.Itoa(i)
		l.Observe(id, i%2 == 0, time.Duration(300+i)*time.Millisecond)
		cells[i] = l.Cell(id)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			for i, c := range cells {
				if c.Get(i%2 == 0, 1000, now) < 300 {
					b.Fatal("wrong answer")
				}
			}
		}
	})
}
