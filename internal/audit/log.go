package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/handoff"
)

// Options tune a Log; OptionsFrom reads them from the config.
type Options struct {
	// Replica names this process's writers ("<replica>/<boot id>").
	Replica            string
	BatchInterval      time.Duration
	BatchSize          int
	Buffer             int
	CheckpointInterval time.Duration
	// Spool: write to SpoolDir while the store is down (else refuse).
	Spool    bool
	SpoolDir string
	// Retention, applied every RetentionInterval when any is set.
	Retention         Retention
	RetentionInterval time.Duration
	// StoreTimeout bounds one commit (default 5s).
	StoreTimeout time.Duration
	// idleAfter is how long the batch timer runs with nothing to do
	// before it stops (default idleAfter; tests shorten it).
	idleAfter time.Duration
}

// OptionsFrom reads the audit section (defaults applied); stateDir is
// where the spool goes unless audit.spool_dir says otherwise.
func OptionsFrom(a config.Audit, stateDir string) Options {
	o := Options{Replica: a.Writer, BatchInterval: a.BatchInterval, BatchSize: a.BatchSize, Buffer: a.Buffer,
		CheckpointInterval: a.CheckpointInterval, Spool: a.OnStoreDown != config.AuditRefuse, SpoolDir: a.SpoolDir,
		Retention: Retention{Default: a.Retention.Default, Workspaces: a.Retention.Workspaces}, RetentionInterval: a.Retention.Interval}
	if o.SpoolDir == "" && stateDir != "" {
		o.SpoolDir = filepath.Join(stateDir, "audit-spool")
	}
	return o
}

// ReplicaName is the replica name a config's writers take: audit.writer,
// or the host's name.
func ReplicaName(a config.Audit) string {
	if a.Writer != "" {
		return a.Writer
	}
	return hostReplica()
}

func (o *Options) defaults() {
	if o.Replica == "" {
		o.Replica = hostReplica()
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = config.DefaultAuditBatchInterval
	}
	if o.idleAfter <= 0 {
		o.idleAfter = idleAfter
	}
	if o.BatchSize <= 0 {
		o.BatchSize = config.DefaultAuditBatchSize
	}
	if o.Buffer < o.BatchSize {
		o.Buffer = max(config.DefaultAuditBuffer, o.BatchSize)
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = config.DefaultAuditCheckpointInterval
	}
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = config.DefaultAuditRetentionInterval
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 5 * time.Second
	}
}

var replicaRE = regexp.MustCompile(`[^a-z0-9_-]+`)

func hostReplica() string {
	h, _ := os.Hostname()
	h = strings.Trim(replicaRE.ReplaceAllString(strings.ToLower(h), "-"), "-")
	if h == "" {
		h = "stellwerk"
	}
	return h
}

// Log is the audit log's writer: Record hands a record over without
// waiting; one goroutine seals records into the writer's chain and commits
// them in batches (group commit), signs checkpoints, spools while the
// store is down, and applies retention. Replicas each have their own
// writer id, so their chains never contend.
type Log struct {
	st     *Store
	signer *Signer
	log    *zap.Logger
	o      Options
	writer string
	now    func() time.Time

	// in is the records handed over and not yet taken by the writer: a
	// queue rather than a channel, so a request does not wake the writer
	// (internal/handoff).
	in *handoff.Queue[*Record]
	// bodies is the bytes of request bodies queued in `in` for the writer
	// to hash: at most maxQueuedBodies (Record).
	bodies  atomic.Int64
	flushes chan chan error
	stop    chan struct{}
	done    chan struct{}
	closeMu sync.Once
	cancel  context.CancelFunc

	// Figures, read by Stats from any goroutine.
	written, dropped, failed, checkpoints, spooledN atomic.Int64
	pendingN                                        atomic.Int64
	oldestUS                                        atomic.Int64
	storeDown, spoolDown                            atomic.Bool
	lastDropLog                                     atomic.Int64
	lastErr                                         atomic.Pointer[string]

	// The loop's own state.
	seq        uint64
	head       string
	lastCP     Checkpoint
	cpSeq      uint64 // seq of the last checkpoint made
	pending    []Entry
	pendingCPs []Checkpoint
	spool      *spool
	retry      time.Time // no store attempt before this while it is down
	backoff    time.Duration
	// collisionsSeen is the store's Collisions count already logged.
	collisionsSeen int64
}

// ErrClosed is returned by Flush on a closed log.
var ErrClosed = errors.New("audit log closed")

// Open starts a writer on the store: it replays spool files left by
// earlier writers (a crash while the store was down), opens the writer's
// chain with a signed checkpoint linked to the replica's previous one, and
// starts the writer goroutine. Close stops it.
func Open(ctx context.Context, st *Store, signer *Signer, o Options, log *zap.Logger) (*Log, error) {
	o.defaults()
	if log == nil {
		log = zap.NewNop()
	}
	boot := make([]byte, 8)
	binary.BigEndian.PutUint32(boot, uint32(time.Now().Unix()))
	_, _ = rand.Read(boot[4:])
	l := &Log{st: st, signer: signer, log: log, o: o, writer: o.Replica + "/" + hex.EncodeToString(boot), now: time.Now,
		in: handoff.New[*Record](o.Buffer, o.BatchSize), flushes: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{}),
		backoff: o.BatchInterval}
	if o.SpoolDir != "" {
		// Spools of earlier writers are written whatever the mode is now.
		n, err := replaySpools(ctx, st, o.SpoolDir, o.BatchSize, log)
		if err != nil {
			return nil, fmt.Errorf("audit spool: %w", err)
		}
		if n > 0 {
			log.Info("audit records from an earlier spool written to the store", zap.Int("records", n))
		}
	}
	if o.Spool {
		if o.SpoolDir == "" {
			return nil, errors.New("audit: on_store_down spool needs a spool directory")
		}
		if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
			return nil, fmt.Errorf("audit spool: %w", err)
		}
		l.spool = newSpool(filepath.Join(o.SpoolDir, spoolName(l.writer)))
	}
	if err := st.RegisterKey(ctx, signer.Public()); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	prev, ok, err := st.LastCheckpoint(ctx, o.Replica)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	open := Checkpoint{Writer: l.writer, Time: l.now().UTC().Truncate(time.Microsecond), Reason: ReasonOpen}
	if ok {
		open.Prev = prev.Digest
		if prev.Reason != ReasonShutdown && open.Time.Sub(prev.Time) < 2*o.CheckpointInterval+time.Minute {
			log.Warn("the replica's previous audit writer did not shut down and signed recently: another process may write as this replica (give each its own audit.writer), or it crashed",
				zap.String("replica", o.Replica), zap.String("previous_writer", prev.Writer), zap.Time("its_last_checkpoint", prev.Time))
		}
	}
	signer.Sign(&open)
	if err := st.Append(ctx, nil, []Checkpoint{open}); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l.lastCP = open
	l.checkpoints.Add(1)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	go l.run()
	if o.hasRetention() {
		go l.retain(rctx)
	}
	log.Info("audit log open", zap.String("writer", l.writer), zap.String("key_id", signer.Public().ID),
		zap.Bool("spool", o.Spool), zap.Duration("batch_interval", o.BatchInterval))
	return l, nil
}

func (o *Options) hasRetention() bool {
	if o.Retention.Default > 0 {
		return true
	}
	for _, d := range o.Retention.Workspaces {
		if d > 0 {
			return true
		}
	}
	return false
}

// Writer is this log's writer id.
func (l *Log) Writer() string { return l.writer }

// Public is the key checkpoints are signed with.
func (l *Log) Public() PublicKey { return l.signer.Public() }

// Store is the store the log writes to.
func (l *Log) Store() *Store { return l.st }

// Record hands a record to the writer without waiting: it never blocks
// and never touches the store. The log owns r from here on; the caller
// must not change it. It returns false when the buffer is full: the record
// is dropped, counted in Stats.Dropped and logged (at most every 10s).
// Healthy turns false before that happens.
func (l *Log) Record(r *Record) bool {
	r.V = SchemaVersion
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	held := 0
	if q := r.Request; q != nil && q.Fingerprint == "" && q.Body != nil {
		// The writer hashes bodies off the request path, while the bytes
		// they hold stay bounded: past maxQueuedBodies (the store down, a
		// burst of large bodies) the request hashes its own. Otherwise a
		// queue of refused 8 MiB requests held gigabytes (a helper's
		// finding). Such a record is detached from its request, whose
		// strings point into the body and would keep it anyway.
		if held = len(q.Body); l.bodies.Add(int64(held)) > maxQueuedBodies {
			l.bodies.Add(-int64(held))
			q.Fingerprint, q.Body, held = Fingerprint(q.Body), nil, 0
			r.Detach()
		}
	}
	if l.in.Put(r) {
		return true
	}
	l.bodies.Add(-int64(held))
	l.dropped.Add(1)
	now := time.Now().UnixNano()
	if last := l.lastDropLog.Load(); now-last > int64(10*time.Second) && l.lastDropLog.CompareAndSwap(last, now) {
		l.log.Error("audit buffer full: records dropped (the store cannot keep up or is down)",
			zap.Int64("dropped_total", l.dropped.Load()), zap.Int("buffer", l.in.Cap()))
	}
	return false
}

// Healthy reports whether records are reaching the store (or the spool):
// false while the store is down and the log refuses (on_store_down:
// refuse), when the spool cannot be written, or when the buffer is more
// than 90% full. The edge answers 503 while it is false in refuse mode.
func (l *Log) Healthy() bool {
	if l.in.Len() > l.in.Cap()*9/10 {
		return false
	}
	if l.o.Spool {
		return !l.spoolDown.Load()
	}
	return !l.storeDown.Load()
}

// Stats are the log's figures for metrics.
type Stats struct {
	Writer  string `json:"writer"`
	Healthy bool   `json:"healthy"`
	// Queued records wait in the buffer; Pending are sealed but not yet
	// committed; Spooled wait in the spool file for the store.
	Queued  int   `json:"queued"`
	Pending int64 `json:"pending"`
	Spooled int64 `json:"spooled"`
	// OldestAge is how long the oldest record the writer holds has waited.
	OldestAge   time.Duration `json:"oldest_age_ns"`
	Written     int64         `json:"written"`
	Dropped     int64         `json:"dropped"`
	Failed      int64         `json:"failed"`
	Checkpoints int64         `json:"checkpoints"`
	StoreDown   bool          `json:"store_down"`
	LastError   string        `json:"last_error,omitempty"`
	// Collisions are records whose place in the store held another record
	// (someone wrote into the chain), and where the first was.
	Collisions     int64  `json:"collisions,omitempty"`
	FirstCollision string `json:"first_collision,omitempty"`
}

// Stats reports the log's lag and counters.
func (l *Log) Stats() Stats {
	s := Stats{Writer: l.writer, Healthy: l.Healthy(), Queued: l.in.Len(), Pending: l.pendingN.Load(), Spooled: l.spooledN.Load(),
		Written: l.written.Load(), Dropped: l.dropped.Load(), Failed: l.failed.Load(), Checkpoints: l.checkpoints.Load(),
		StoreDown: l.storeDown.Load()}
	s.Collisions, s.FirstCollision = l.st.Collisions()
	if us := l.oldestUS.Load(); us != 0 {
		s.OldestAge = time.Since(FromUS(us))
	} else if t := l.in.Since(); !t.IsZero() {
		s.OldestAge = time.Since(t)
	}
	if e := l.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// Flush waits until every record handed over before it is committed (or
// spooled), for tests and the CLI.
func (l *Log) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case l.flushes <- ch:
	case <-l.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close drains the buffer, commits everything, writes the shutdown
// checkpoint and stops the writer. Records that cannot reach the store by
// ctx's deadline stay in the spool (spool mode) or are reported lost.
func (l *Log) Close(ctx context.Context) error {
	l.closeMu.Do(func() { close(l.stop) })
	if l.cancel != nil {
		l.cancel()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("audit: closing: %w", ctx.Err())
	}
	if n := l.pendingN.Load(); n > 0 {
		return fmt.Errorf("audit: %d record(s) could not be written before shutdown", n)
	}
	return nil
}

func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.o.BatchInterval)
	defer tick.Stop()
	cpTick := time.NewTicker(l.o.CheckpointInterval)
	defer cpTick.Stop()
	batch := make([]*Record, 0, l.o.BatchSize)
	// The batch timer stops once nothing was handed over or left to retry
	// for idleAfter, and starts again with the next record: an idle
	// server does not wake twenty times a second to find the buffer
	// empty. A record still waits at most an interval.
	quietTicks, asleep := 0, false
	idleTicks := max(1, int(l.o.idleAfter/l.o.BatchInterval))
	wake := func() {
		asleep, quietTicks = false, 0
		tick.Reset(l.o.BatchInterval)
	}
	for {
		select {
		case <-l.in.Wake(): // a batch's worth waits: commit it now
			var took bool
			if batch, took = l.take(batch); took {
				quietTicks = 0
			}
		case <-l.in.Arrived():
			if asleep {
				wake()
			}
		case <-tick.C:
			var took bool
			if batch, took = l.take(batch); !took && l.retrying() {
				l.commit(nil) // retries what is pending
			}
			quietTicks++
			switch {
			case took || l.retrying():
				quietTicks = 0
			case quietTicks >= idleTicks && l.in.Sleep():
				tick.Stop()
				asleep = true
			}
		case <-cpTick.C:
			l.checkpoint(ReasonInterval)
		case ch := <-l.flushes:
			batch = l.drain(batch)
			l.commit(batch)
			batch = batch[:0]
			ch <- l.flushErr()
		case <-l.stop:
			batch = l.drain(batch)
			l.commit(batch)
			l.checkpoint(ReasonShutdown)
			l.flushPending(true)
			if len(l.pending) > 0 {
				l.log.Error("audit records not written at shutdown: the store is down", zap.Int("records", len(l.pending)))
			}
			if l.spool.active() {
				l.log.Warn("audit records left in the spool; the next start writes them to the store",
					zap.String("spool", l.spool.path), zap.Int64("records", l.spooledN.Load()))
			}
			l.spool.close()
			return
		}
		if asleep && l.retrying() { // a checkpoint the store did not take
			wake()
		}
	}
}

// maxQueuedBodies bounds the request bodies waiting in the queue to be
// hashed by the writer (Record).
const maxQueuedBodies = 64 << 20

// idleAfter is how long the writer's batch timer runs with nothing to do
// before it stops.
const idleAfter = time.Second

// retrying says whether sealed records or checkpoints wait for the store,
// or the spool for its replay: the batch timer retries them.
func (l *Log) retrying() bool {
	return len(l.pending) > 0 || len(l.pendingCPs) > 0 || l.spool.active()
}

// take commits what waits, a batch at a time, and returns batch emptied
// and whether it committed any. While the log refuses (the store is down
// and as many records as the buffer holds are pending), it takes nothing:
// records wait in the queue until it is full, and Record drops from then
// on.
func (l *Log) take(batch []*Record) ([]*Record, bool) {
	took := false
	for len(l.pending) < l.o.Buffer {
		batch = l.in.Take(batch[:0], l.o.BatchSize)
		if len(batch) == 0 {
			break
		}
		l.commit(batch)
		clear(batch)
		took = true
		if len(batch) < l.o.BatchSize {
			break
		}
	}
	return batch[:0], took
}

// drain takes everything waiting in the buffer.
func (l *Log) drain(batch []*Record) []*Record { return l.in.Take(batch, 0) }

func (l *Log) flushErr() error {
	if len(l.pending) > 0 {
		return fmt.Errorf("audit: %d record(s) wait for the store: %s", len(l.pending), l.Stats().LastError)
	}
	return nil
}

// noteOldest notes for Stats when the oldest record the writer holds
// (pending, or in the spool) arrived; Stats falls back on the queue's.
func (l *Log) noteOldest() {
	switch {
	case len(l.pending) > 0:
		l.oldestUS.Store(TimeUS(l.pending[0].Time))
	case l.spool.active():
		l.oldestUS.Store(l.spool.oldestUS)
	default:
		l.oldestUS.Store(0)
	}
}

// commit seals a batch into the chain and writes what is pending.
func (l *Log) commit(batch []*Record) {
	for _, r := range batch {
		if q := r.Request; q != nil && q.Fingerprint == "" && q.Body != nil {
			l.bodies.Add(-int64(len(q.Body)))
			q.Fingerprint, q.Body = Fingerprint(q.Body), nil
		}
		body, err := pooledRecord(r)
		if err != nil {
			l.failed.Add(1)
			l.log.Error("audit record cannot be encoded; not written", zap.String("id", r.ID), zap.String("kind", r.Kind), zap.Error(err))
			continue
		}
		l.seq++
		e := Entry{Writer: l.writer, Seq: l.seq, Time: r.Time.UTC().Truncate(time.Microsecond), Kind: r.Kind, Workspace: r.Workspace,
			ID: r.ID, Body: body, keyed: true}
		if r.Principal != nil {
			e.key = r.Principal.KeyID
		}
		e.seal(l.head)
		l.head = e.Hash
		l.pending = append(l.pending, e)
	}
	l.flushPending(false)
	l.noteOldest()
}

// checkpoint signs the chain's head, if it moved since the last one (a
// shutdown checkpoint is always written).
func (l *Log) checkpoint(reason string) {
	if l.seq == l.cpSeq && reason != ReasonShutdown {
		return
	}
	c := Checkpoint{Writer: l.writer, Seq: l.seq, Hash: l.head, Prev: l.lastCP.Digest,
		Time: l.now().UTC().Truncate(time.Microsecond), Reason: reason}
	if l.seq == l.cpSeq {
		// Nothing was written since the last checkpoint (the opening one, or
		// an interval's while the log was idle): the shutdown checkpoint takes
		// its place at the same seq, linked to what it linked to, so the
		// chain still ends with one (the store replaces the row: Append).
		c.Prev = l.lastCP.Prev
	}
	l.signer.Sign(&c)
	l.lastCP, l.cpSeq = c, l.seq
	l.pendingCPs = append(l.pendingCPs, c)
	l.flushPending(reason == ReasonShutdown)
}

// flushPending writes pending entries and checkpoints: to the store, or
// to the spool while the store is down (spool mode) or the spool still
// holds older records. Refuse mode keeps them in memory and retries.
func (l *Log) flushPending(final bool) {
	defer func() { l.pendingN.Store(int64(len(l.pending))) }()
	if l.spool.active() {
		l.toSpool()
		l.catchUp(final)
		return
	}
	if len(l.pending) == 0 && len(l.pendingCPs) == 0 {
		return
	}
	now := time.Now()
	if !final && l.storeDown.Load() && now.Before(l.retry) {
		return
	}
	// One transaction per batch: a backlog (the store was down) is
	// written in steps that each fit the timeout.
	var err error
	done := 0
	for err == nil && (done < len(l.pending) || len(l.pendingCPs) > 0) {
		n := min(len(l.pending)-done, l.o.BatchSize)
		var cps []Checkpoint
		if done+n == len(l.pending) {
			cps = l.pendingCPs
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.o.StoreTimeout)
		err = l.st.Append(ctx, l.pending[done:done+n], cps)
		cancel()
		if c, first := l.st.Collisions(); c > l.collisionsSeen {
			l.log.Error("audit store already held other records where this writer's went: someone wrote into its chain; "+
				"these records are not in the store, and stellwerk audit verify reports the place",
				zap.Int64("records", c-l.collisionsSeen), zap.String("first", first))
			l.collisionsSeen = c
		}
		if err == nil {
			releaseBodies(l.pending[done : done+n])
			done += n
			l.written.Add(int64(n))
			l.checkpoints.Add(int64(len(cps)))
			if cps != nil {
				l.pendingCPs = l.pendingCPs[:0]
			}
		}
	}
	l.pending = append(l.pending[:0], l.pending[done:]...)
	if err == nil {
		if l.storeDown.Swap(false) {
			l.log.Info("audit store reachable again")
		}
		// What waited in memory while the spool could not be written has
		// reached the store: nothing waits on the spool (Healthy and its
		// gauge stayed false after the store came back: the storage
		// probe).
		l.spoolDown.Store(false)
		l.backoff = l.o.BatchInterval
		return
	}
	msg := err.Error()
	l.lastErr.Store(&msg)
	if !l.storeDown.Swap(true) {
		l.log.Error("audit store unreachable", zap.Error(err), zap.Bool("spool", l.o.Spool), zap.Int("pending", len(l.pending)))
	}
	if l.o.Spool {
		l.toSpool()
		return
	}
	l.retry = now.Add(l.backoff)
	l.backoff = min(2*l.backoff, 2*time.Second)
}

// toSpool moves pending entries and checkpoints to the spool file.
func (l *Log) toSpool() {
	if len(l.pending) == 0 && len(l.pendingCPs) == 0 {
		return
	}
	if err := l.spool.write(l.pending, l.pendingCPs); err != nil {
		if !l.spoolDown.Swap(true) {
			l.log.Error("audit spool cannot be written: records wait in memory", zap.String("spool", l.spool.path), zap.Error(err))
		}
		return
	}
	l.spoolDown.Store(false)
	l.spooledN.Store(int64(l.spool.count))
	releaseBodies(l.pending)
	l.pending, l.pendingCPs = l.pending[:0], l.pendingCPs[:0]
}

// catchUp writes the spool to the store once it is back, then empties it.
func (l *Log) catchUp(final bool) {
	now := time.Now()
	if !final && now.Before(l.retry) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*l.o.StoreTimeout)
	n, err := l.spool.replay(ctx, l.st, l.o.BatchSize)
	cancel()
	if n.skipped > 0 {
		l.log.Error("audit spool had lines that could not be read (a write cut short): skipped; stellwerk audit verify reports the records missing",
			zap.String("spool", l.spool.path), zap.Int("lines", n.skipped))
	}
	if err != nil {
		l.retry = now.Add(l.backoff)
		l.backoff = min(2*l.backoff, 2*time.Second)
		msg := err.Error()
		if old := l.lastErr.Swap(&msg); old == nil || *old != msg {
			l.log.Warn("audit spool not yet written to the store", zap.Error(err))
		}
		return
	}
	l.spoolDown.Store(false)
	l.written.Add(int64(n.entries))
	l.checkpoints.Add(int64(n.checkpoints))
	l.spooledN.Store(0)
	l.backoff = l.o.BatchInterval
	if l.storeDown.Swap(false) {
		l.log.Info("audit store reachable again; spooled records written", zap.Int("records", n.entries))
	}
}

// retain applies retention every interval until ctx ends.
func (l *Log) retain(ctx context.Context) {
	t := time.NewTicker(l.o.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			res, err := l.st.Prune(ctx, l.o.Retention, time.Now())
			if err != nil {
				l.log.Warn("audit retention failed; it runs again next interval", zap.Error(err))
				continue
			}
			if res.Pruned+res.Compacted > 0 {
				l.log.Info("audit retention", zap.Int64("pruned", res.Pruned), zap.Int64("compacted", res.Compacted))
			}
		}
	}
}
