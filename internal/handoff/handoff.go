// Package handoff passes values from the request path to a background
// writer that works in batches (the audit log, the spend ledger) without
// waking the writer for each value.
//
// A buffered channel read by the writer's select makes every send ready
// the parked writer goroutine: a futex wake-up, a thread taken off its
// sleep and a scheduler pass, per request, only for the writer to append
// one value and park again until its batch interval. A Queue is a slice
// under a mutex: Put appends and returns, and the writer takes what has
// gathered when its timer fires, or when Wake says a full batch waits.
// A writer that found nothing for a while may stop its timer and Sleep:
// the next Put then signals Arrived, once, so an idle server does not wake
// twenty times a second to find its queue empty.
// BenchmarkPaced (docs/benchmarks.md) measures the difference in CPU per
// value at request-like spacing.
package handoff

import (
	"sync"
	"sync/atomic"
	"time"
)

// Queue is a bounded FIFO of values for one consumer. Put never blocks;
// Take empties it (or takes a batch's worth).
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	n      atomic.Int64
	since  atomic.Int64 // Unix ns when the queue last went from empty to not, 0 while empty
	limit  int
	wakeAt int
	wake   chan struct{}
	// asleep: the consumer stopped its timer (Sleep) and waits for
	// arrived, which the next Put signals.
	asleep  bool
	arrived chan struct{}
}

// New is a queue that holds at most limit values and signals Wake when
// wakeAt of them wait (wakeAt ≤ 0 or beyond limit: when it is full).
func New[T any](limit, wakeAt int) *Queue[T] {
	if limit < 1 {
		limit = 1
	}
	if wakeAt <= 0 || wakeAt > limit {
		wakeAt = limit
	}
	return &Queue[T]{limit: limit, wakeAt: wakeAt, wake: make(chan struct{}, 1), arrived: make(chan struct{}, 1)}
}

// Put queues v; false when limit values already wait (v is not queued).
func (q *Queue[T]) Put(v T) bool {
	q.mu.Lock()
	n := len(q.items)
	if n >= q.limit {
		q.mu.Unlock()
		return false
	}
	if n == 0 {
		q.since.Store(time.Now().UnixNano())
	}
	q.items = append(q.items, v)
	n++
	q.n.Store(int64(n))
	woke := q.asleep
	q.asleep = false
	q.mu.Unlock()
	if woke {
		select {
		case q.arrived <- struct{}{}:
		default:
		}
	}
	if n == q.wakeAt {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Sleep tells the queue its consumer stopped its timer: the next Put
// signals Arrived. It refuses (false) when values wait already, which the
// consumer must then take as it would have on its timer.
func (q *Queue[T]) Sleep() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 {
		return false
	}
	q.asleep = true
	return true
}

// Arrived is signalled by the first Put after Sleep.
func (q *Queue[T]) Arrived() <-chan struct{} { return q.arrived }

// Asleep says whether the consumer sleeps: it called Sleep and nothing
// was put since.
func (q *Queue[T]) Asleep() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.asleep
}

// Take appends up to max waiting values (all of them when max ≤ 0) to
// dst, oldest first, and removes them from the queue.
func (q *Queue[T]) Take(dst []T, max int) []T {
	q.mu.Lock()
	k := len(q.items)
	if max > 0 && max < k {
		k = max
	}
	dst = append(dst, q.items[:k]...)
	rest := copy(q.items, q.items[k:])
	clear(q.items[rest:]) // the taken values are the caller's alone
	q.items = q.items[:rest]
	q.n.Store(int64(rest))
	if rest == 0 {
		q.since.Store(0)
	}
	q.mu.Unlock()
	return dst
}

// Len is how many values wait.
func (q *Queue[T]) Len() int { return int(q.n.Load()) }

// Cap is the most values that can wait.
func (q *Queue[T]) Cap() int { return q.limit }

// Since is when the oldest waiting value was queued, or earlier: after a
// partial Take it is still when the queue last went from empty to not. It
// is the zero time while the queue is empty.
func (q *Queue[T]) Since() time.Time {
	if ns := q.since.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Wake receives a signal when wakeAt values wait: the consumer takes a
// batch without waiting for its timer.
func (q *Queue[T]) Wake() <-chan struct{} { return q.wake }
