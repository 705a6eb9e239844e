package handoff

import (
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestQueue: values come out in order, at most limit of them wait, Take
// takes a batch or all, Wake fires at wakeAt, Since follows the oldest.
func TestQueue(t *testing.T) {
	q := New[int](5, 3)
	if !q.Since().IsZero() || q.Len() != 0 || q.Cap() != 5 {
		t.Fatal("a new queue is not empty")
	}
	before := time.Now()
	for i := range 5 {
		if !q.Put(i) {
			t.Fatalf("Put %d refused", i)
		}
		if i == 1 {
			select {
			case <-q.Wake():
				t.Fatal("woken at 2 of 3")
			default:
			}
		}
	}
	select {
	case <-q.Wake():
	default:
		t.Fatal("not woken at 3")
	}
	if q.Put(5) || q.Len() != 5 {
		t.Fatalf("a full queue took a value (len %d)", q.Len())
	}
	if s := q.Since(); s.Before(before.Add(-time.Millisecond)) || s.After(time.Now()) {
		t.Fatalf("since %v, queued after %v", s, before)
	}
	got := q.Take(nil, 2)
	if !slices.Equal(got, []int{0, 1}) || q.Len() != 3 || q.Since().IsZero() {
		t.Fatalf("Take 2: %v, %d left", got, q.Len())
	}
	q.Put(5)
	got = q.Take(got[:0], 0)
	if !slices.Equal(got, []int{2, 3, 4, 5}) || q.Len() != 0 || !q.Since().IsZero() {
		t.Fatalf("Take all: %v, %d left, since %v", got, q.Len(), q.Since())
	}
	if got := q.Take(nil, 0); len(got) != 0 {
		t.Fatalf("Take of an empty queue: %v", got)
	}
	// wakeAt beyond the limit wakes when full.
	q2 := New[string](2, 0)
	q2.Put("a")
	q2.Put("b")
	select {
	case <-q2.Wake():
	default:
		t.Fatal("a full queue did not wake")
	}
}

// TestQueueConcurrent: many producers, one consumer taking batches; every
// value arrives once, in each producer's order (run with -race).
func TestQueueConcurrent(t *testing.T) {
	const producers, each = 8, 5000
	q := New[[2]int](producers*each, 64)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !q.Put([2]int{p, i}) {
					t.Error("refused below the limit")
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	next := make([]int, producers)
	var batch [][2]int
	check := func() {
		for _, v := range batch {
			if v[1] != next[v[0]] {
				t.Fatalf("producer %d: got %d, want %d", v[0], v[1], next[v[0]])
			}
			next[v[0]]++
		}
	}
	for finished := false; !finished; {
		select {
		case <-q.Wake():
		case <-done:
			finished = true
		case <-time.After(time.Millisecond):
		}
		batch = q.Take(batch[:0], 100)
		check()
	}
	batch = q.Take(batch[:0], 0)
	check()
	for p, n := range next {
		if n != each {
			t.Errorf("producer %d: %d of %d values arrived", p, n, each)
		}
	}
}

// cpuNS is the process's user and system CPU time so far.
func cpuNS(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkPaced hands values over one at a time with a pause between
// them, as requests arrive (every 200 µs: 5,000 per second), to a consumer
// that works in 50 ms batches, and reports the process's CPU per value
// (cpu-ns/op; the pauses are in ns/op): a channel the consumer selects on
// against a Queue.
func BenchmarkPaced(b *testing.B) {
	const gap, interval = 200 * time.Microsecond, 50 * time.Millisecond
	pace := func(b *testing.B, put func(int)) {
		start := cpuNS(b)
		next := time.Now()
		for i := 0; b.Loop(); i++ {
			put(i)
			next = next.Add(gap)
			time.Sleep(time.Until(next))
		}
		b.ReportMetric(float64(cpuNS(b)-start)/float64(b.N), "cpu-ns/op")
	}
	b.Run("channel", func(b *testing.B) {
		in := make(chan int, 65536)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var batch []int
			for {
				select {
				case v := <-in:
					batch = append(batch, v)
				case <-tick.C:
					batch = batch[:0]
				case <-stop:
					return
				}
			}
		}()
		pace(b, func(v int) {
			select {
			case in <- v:
			default:
			}
		})
	})
	b.Run("queue", func(b *testing.B) {
		q := New[int](65536, 512)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var batch []int
			for {
				select {
				case <-q.Wake():
				case <-tick.C:
				case <-stop:
					return
				}
				batch = q.Take(batch[:0], 0)
			}
		}()
		pace(b, func(v int) { q.Put(v) })
	})
}

// TestSleep: Sleep is refused while values wait; after it, the first Put
// signals Arrived once (the next ones do not) and the queue is awake
// again.
func TestSleep(t *testing.T) {
	q := New[int](4, 4)
	arrived := func() bool {
		select {
		case <-q.Arrived():
			return true
		default:
			return false
		}
	}
	q.Put(1)
	if q.Sleep() || q.Asleep() {
		t.Fatal("slept with a value waiting")
	}
	q.Put(2)
	if arrived() {
		t.Fatal("Arrived without Sleep")
	}
	q.Take(nil, 0)
	if !q.Sleep() || !q.Asleep() {
		t.Fatal("an empty queue refused Sleep")
	}
	q.Put(3)
	q.Put(4)
	if !arrived() || arrived() {
		t.Fatal("Arrived not signalled exactly once")
	}
	if q.Asleep() {
		t.Fatal("still asleep after a Put")
	}
}
