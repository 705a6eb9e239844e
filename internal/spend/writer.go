package spend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/handoff"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Inserter is where a Writer's batches go: the Store, or a test's fake.
type Inserter interface {
	Insert(ctx context.Context, rows []Row) (int, error)
}

// WriterOptions tune a Writer; zero values take the defaults.
type WriterOptions struct {
	// Buffer is how many rows wait in memory at most (default 16384, about
	// 4 MB, and up to 4 MB more of end users and tags): what absorbs a
	// slow or unreachable store.
	Buffer int
	// BatchRows is the most rows one insert carries (default 500); a full
	// batch is written at once.
	BatchRows int
	// FlushEvery is the longest a row waits before its batch is written,
	// and how often a failed batch is retried (default 1s).
	FlushEvery time.Duration
	// InsertTimeout bounds one insert (default 10s).
	InsertTimeout time.Duration
	Logger        *zap.Logger
}

// Writer records rows off the request path: Record puts a row in a bounded
// buffer and returns; one goroutine writes batches of them. When the buffer
// is full, Record drops the row and counts it (never blocks). While the
// store is unreachable, the writer holds one batch and retries it every
// FlushEvery; new rows wait in the buffer until it is full.
type Writer struct {
	// in holds the rows Record queued: a queue, not a channel, so a request
	// does not wake the writer (internal/handoff).
	in    *handoff.Queue[Row]
	ins   Inserter
	o     WriterOptions
	log   *zap.Logger
	stop  chan struct{}
	done  chan struct{}
	close sync.Once
	// closing is set once Close starts: Record drops from then on.
	closing atomic.Bool
	closeE  error
	// pending is the batch run held when it stopped, for Close.
	pending []Row

	written  atomic.Int64 // rows in committed batches
	dropped  atomic.Int64 // rows Record could not buffer
	held     atomic.Int64 // rows of the batch the writer holds for a retry
	lost     atomic.Int64 // rows of batches given up (a store error that retrying cannot fix, or Close)
	failures atomic.Int64 // failed insert attempts
	lastErr  atomic.Pointer[string]
}

var _ Recorder = (*Writer)(nil)

// NewWriter starts a writer into ins; Close stops it.
func NewWriter(ins Inserter, o WriterOptions) *Writer {
	if o.Buffer <= 0 {
		o.Buffer = 16384
	}
	if o.BatchRows <= 0 {
		o.BatchRows = 500
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = time.Second
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = 10 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	w := &Writer{in: handoff.New[Row](o.Buffer, o.BatchRows), ins: ins, o: o, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// Record queues a row without waiting: a full buffer (or a closed writer)
// drops it and counts the drop, which the writer logs.
func (w *Writer) Record(r Row) {
	if w.closing.Load() {
		w.dropped.Add(1)
		return
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	if !w.in.Put(r) {
		w.dropped.Add(1)
	}
}

// Stats are a writer's counters since it started.
type Stats struct {
	Written int64 `json:"written"`
	// Queued are the rows not yet written: in the buffer, and the batch
	// the writer holds while the store does not answer (the fleet probe
	// saw 0–11 while half a minute of rows waited in it).
	Queued   int64  `json:"queued"`
	Dropped  int64  `json:"dropped"`
	Lost     int64  `json:"lost"`
	Failures int64  `json:"insert_failures"`
	LastErr  string `json:"last_error,omitempty"`
}

// Stats reports the counters.
func (w *Writer) Stats() Stats {
	s := Stats{Written: w.written.Load(), Queued: int64(w.in.Len()) + w.held.Load(), Dropped: w.dropped.Load(), Lost: w.lost.Load(),
		Failures: w.failures.Load()}
	if e := w.lastErr.Load(); e != nil {
		s.LastErr = *e
	}
	return s
}

// Close writes what is buffered (until ctx ends) and stops the writer.
// Rows it could not write are counted as lost, logged, and reported in the
// error.
func (w *Writer) Close(ctx context.Context) error {
	w.close.Do(func() {
		w.closing.Store(true)
		close(w.stop)
		select {
		case <-w.done:
		case <-ctx.Done():
			w.closeE = ctx.Err()
			return
		}
		w.closeE = w.drain(ctx)
	})
	return w.closeE
}

// dropLogEvery bounds how often drops are logged.
const dropLogEvery = 10 * time.Second

func (w *Writer) run() {
	defer close(w.done)
	batch := make([]Row, 0, w.o.BatchRows)
	tick := time.NewTicker(w.o.FlushEvery)
	defer tick.Stop()
	failing := false
	var reported int64
	var reportedAt time.Time
	for {
		fullOnly := false
		select {
		case <-w.in.Wake(): // a full batch waits: write full batches now, the rest at the tick
			fullOnly = true
		case <-tick.C:
		case <-w.stop:
			w.pending = batch
			return
		}
		// Write what waits, a batch at a time. While the store is
		// unreachable the writer holds one batch and retries it; the queue
		// takes the rest until it is full.
		for {
			if fullOnly && len(batch)+w.in.Len() < w.o.BatchRows {
				break
			}
			batch = w.fill(batch)
			if len(batch) == 0 || !w.flush(batch, &failing) {
				break
			}
			clear(batch)
			batch = batch[:0]
		}
		w.held.Store(int64(len(batch)))
		if d := w.dropped.Load(); d > reported && time.Since(reportedAt) >= dropLogEvery {
			w.log.Warn("spend ledger buffer full: rows dropped (their requests were served and charged to budgets; only their ledger rows are missing)",
				zap.Int64("dropped", d-reported), zap.Int64("dropped_total", d), zap.Int("buffer", w.o.Buffer))
			reported, reportedAt = d, time.Now()
		}
	}
}

// fill tops batch up from the queue to BatchRows rows.
func (w *Writer) fill(batch []Row) []Row {
	if room := w.o.BatchRows - len(batch); room > 0 {
		return w.in.Take(batch, room)
	}
	return batch
}

// flush inserts a batch; false keeps it for a retry (the store is
// unreachable). A batch the store refuses for another reason is dropped
// (counted as lost) rather than retried forever.
func (w *Writer) flush(batch []Row, failing *bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.o.InsertTimeout)
	defer cancel()
	_, err := w.ins.Insert(ctx, batch)
	if err == nil {
		w.written.Add(int64(len(batch)))
		if *failing {
			w.log.Info("spend ledger store reachable again; buffered rows are being written", zap.Int("queued", w.in.Len()))
			*failing = false
		}
		return true
	}
	w.failures.Add(1)
	msg := err.Error()
	w.lastErr.Store(&msg)
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		if !*failing {
			w.log.Warn("spend ledger store unreachable: rows wait in memory and are retried every flush interval",
				zap.Error(err), zap.Int("batch", len(batch)), zap.Int("buffer", w.o.Buffer))
			*failing = true
		}
		return false
	}
	w.lost.Add(int64(len(batch)))
	w.log.Error("spend ledger rows refused by the store; batch dropped", zap.Error(err), zap.Int("rows", len(batch)))
	return true
}

// drain writes the batch run left and everything buffered, once each;
// what fails is lost.
func (w *Writer) drain(ctx context.Context) error {
	batch := w.pending
	w.pending = nil
	var lost int64
	var firstErr error
	write := func() {
		if len(batch) == 0 {
			return
		}
		if ctx.Err() == nil {
			ictx, cancel := context.WithTimeout(ctx, w.o.InsertTimeout)
			_, err := w.ins.Insert(ictx, batch)
			cancel()
			if err == nil {
				w.written.Add(int64(len(batch)))
				batch = batch[:0]
				return
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		lost += int64(len(batch))
		batch = batch[:0]
	}
	for {
		batch = w.fill(batch)
		if len(batch) < w.o.BatchRows {
			break
		}
		write()
	}
	write()
	if lost > 0 {
		w.lost.Add(lost)
		w.log.Error("spend ledger rows could not be written on shutdown", zap.Int64("lost", lost), zap.Error(firstErr))
		if firstErr == nil {
			firstErr = ctx.Err()
		}
		return firstErr
	}
	if d := w.dropped.Load(); d > 0 {
		w.log.Warn("spend ledger rows dropped since start (buffer full)", zap.Int64("dropped_total", d))
	}
	return nil
}
