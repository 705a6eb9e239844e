package ledger

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// memory keeps counters in this process under one mutex. One lock makes
// all-or-nothing across a request's counters trivially exact; an operation
// holds it for about a microsecond, which two cores never queue on. (A
// sharded lock would have to take several shards in order per request for
// the same guarantee, and gain nothing at this size.)
type memory struct {
	mu       sync.Mutex
	counters map[counterKey]*mcounter
	res      map[string]*mres
	leases   leaseHeap
	// finished are reservations that ended, in the order they did (their
	// deadlines in order: now + the fixed retention), and expiring the
	// counters with an end, soonest first: sweep forgets a few of them in
	// every operation rather than walking every map once a minute under
	// the lock (a helper measured a 24 ms pause at 360,000 entries).
	finished fifo
	expiring expiryHeap
	dirty    bool // budget counters changed since the last save

	persister Persister
	log       *zap.Logger
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type mcounter struct {
	used, held int64
	expireAt   int64
}

type mres struct {
	id       string
	state    byte // 'r' held, 'x' expired (charged at the reserved amount), 's' settled, 'l' released
	holds    []hold
	deadline int64 // lease end while held; forget after this once finished
	index    int   // in the lease heap; -1 when not in it
}

type hold struct {
	key    counterKey
	amount int64
}

// MemoryOptions configure the in-memory backend.
type MemoryOptions struct {
	// Persister keeps budget spend across restarts; nil keeps none.
	Persister Persister
	// FlushInterval is how often changed spend is saved (default 1s): what
	// a crash can lose. Close saves the rest.
	FlushInterval time.Duration
	Logger        *zap.Logger
}

// NewMemory makes the in-memory backend for one replica, loading persisted
// spend first. With a Persister it starts a goroutine that saves changed
// spend every FlushInterval; Ledger.Close stops it and saves once more.
func NewMemory(ctx context.Context, o MemoryOptions) (Backend, error) {
	m := &memory{counters: map[counterKey]*mcounter{}, res: map[string]*mres{}, persister: o.Persister, log: o.Logger}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	if o.Persister == nil {
		return m, nil
	}
	totals, err := o.Persister.Load(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range totals {
		k, ok := t.key()
		if !ok {
			continue
		}
		c := m.counters[k]
		if c == nil {
			c = &mcounter{}
			m.counters[k] = c
		}
		c.used += int64(t.Used)
		if !t.Expires.IsZero() {
			c.expireAt = t.Expires.UnixMilli()
			heap.Push(&m.expiring, expiry{key: k, at: c.expireAt})
		}
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	m.stop, m.stopped = make(chan struct{}), make(chan struct{})
	go m.flushLoop(o.FlushInterval)
	return m, nil
}

var _ Backend = (*memory)(nil)

func (m *memory) reserve(_ context.Context, p *plan) (status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(p.now, p.retention)
	r := m.res[p.id]
	if !p.move && r != nil {
		return statusDuplicate, nil
	}
	if p.move {
		if r == nil || r.state != 'r' {
			return statusGone, nil
		}
		m.lift(r.holds, -1)
	}
	refused := false
	for i := range p.counters {
		c := &p.counters[i]
		mc := m.counters[c.key]
		c.used, c.held = 0, 0
		if mc != nil {
			c.used, c.held = mc.used, mc.held
		}
		if c.enforce && c.used+c.held+c.amount > c.limit {
			refused = true
		}
	}
	if refused {
		if p.move {
			m.lift(r.holds, 1)
		}
		return statusRefused, nil
	}
	holds := make([]hold, 0, len(p.counters))
	for i := range p.counters {
		c := &p.counters[i]
		mc := m.counters[c.key]
		if mc == nil {
			mc = &mcounter{}
			m.counters[c.key] = mc
		}
		if mc.expireAt != c.expireAt && c.expireAt != 0 {
			heap.Push(&m.expiring, expiry{key: c.key, at: c.expireAt})
		}
		mc.expireAt = c.expireAt
		if c.key.kind == kindRequests {
			mc.used += c.amount
		} else {
			mc.held += c.amount
			holds = append(holds, hold{key: c.key, amount: c.amount})
			// Saved as spent at the next flush (totals): a hold had been
			// saved only once something else changed, so a crash with
			// nothing settling lost it (the upgrade helper's streams).
			m.dirty = m.dirty || c.key.kind == kindMoney
		}
		c.used, c.held = mc.used, mc.held
	}
	if r == nil {
		r = &mres{id: p.id, index: -1}
		m.res[p.id] = r
	}
	r.state, r.holds, r.deadline = 'r', holds, p.leaseUntil
	if r.index >= 0 {
		heap.Fix(&m.leases, r.index)
	} else {
		heap.Push(&m.leases, r)
	}
	return statusOK, nil
}

// lift adds sign × each hold back to (or off) its counter's held amount.
func (m *memory) lift(hs []hold, sign int64) {
	for _, h := range hs {
		if mc := m.counters[h.key]; mc != nil {
			mc.held += sign * h.amount
		}
	}
}

func (m *memory) settle(_ context.Context, id string, now, retention, money, tokens int64, release bool) (status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, retention)
	r := m.res[id]
	switch {
	case r == nil:
		return statusUnknown, nil
	case r.state == 's' || r.state == 'l':
		return statusDuplicate, nil
	}
	for _, h := range r.holds {
		mc := m.counters[h.key]
		if mc == nil {
			continue // its window is over and gone
		}
		actual := money
		if h.key.kind == kindTokens {
			actual = tokens
		}
		if release {
			actual = 0
		}
		if r.state == 'r' {
			mc.held -= h.amount
		} else {
			mc.used -= h.amount // the expiry charged the reserved amount: undo it
		}
		mc.used += actual
		if h.key.kind == kindMoney {
			m.dirty = true
		}
	}
	st := statusOK
	if r.state == 'x' {
		st = statusLate
	}
	if r.index >= 0 {
		heap.Remove(&m.leases, r.index)
	}
	r.state, r.holds, r.deadline = 's', nil, now+retention
	if release {
		r.state = 'l'
	}
	m.finished.push(finished{id: id, deadline: r.deadline})
	return st, nil
}

// counterOf is c's counter, made (and set to expire) if it has none yet.
// The caller holds m.mu.
func (m *memory) counterOf(c *counter) *mcounter {
	mc := m.counters[c.key]
	if mc == nil {
		mc = &mcounter{expireAt: c.expireAt}
		m.counters[c.key] = mc
		if c.expireAt != 0 {
			heap.Push(&m.expiring, expiry{key: c.key, at: c.expireAt})
		}
	}
	return mc
}

func (m *memory) raise(_ context.Context, now, retention int64, c counter, to int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, retention)
	mc := m.counterOf(&c)
	if mc.used >= to {
		return 0, nil
	}
	d := to - mc.used
	mc.used = to
	m.dirty = true
	return d, nil
}

func (m *memory) charge(_ context.Context, id string, now, retention int64, cs []counter, money, tokens int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now, retention)
	if m.res[id] != nil {
		return nil // charged (or settled) once already
	}
	for i := range cs {
		c := &cs[i]
		mc := m.counterOf(c)
		switch c.key.kind {
		case kindMoney:
			mc.used += money
			m.dirty = true
		case kindTokens:
			mc.used += tokens
		default:
			mc.used++
		}
	}
	m.res[id] = &mres{id: id, state: 's', deadline: now + retention, index: -1}
	m.finished.push(finished{id: id, deadline: now + retention})
	return nil
}

func (m *memory) peek(_ context.Context, p *plan) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(p.now, p.retention)
	for i := range p.counters {
		c := &p.counters[i]
		c.used, c.held = 0, 0
		if mc := m.counters[c.key]; mc != nil {
			c.used, c.held = mc.used, mc.held
		}
	}
	return nil
}

// sweep expires leases past their end into charges at the reserved amount
// and forgets finished reservations and counters past their retention, at
// most gcBatch of each per call. It runs inside every operation: no
// background owner.
func (m *memory) sweep(now, retention int64) {
	for len(m.leases) > 0 && m.leases[0].deadline <= now {
		r := heap.Pop(&m.leases).(*mres)
		for _, h := range r.holds {
			if mc := m.counters[h.key]; mc != nil {
				mc.held -= h.amount
				mc.used += h.amount
				if h.key.kind == kindMoney {
					m.dirty = true
				}
			}
		}
		r.state = 'x'
		r.deadline = now + retention // a late settle still corrects it
		m.finished.push(finished{id: r.id, deadline: r.deadline})
	}
	for n := 0; n < gcBatch; n++ {
		f, ok := m.finished.popDue(now)
		if !ok {
			break
		}
		// One settled late after it expired ends again, later: that entry
		// forgets it.
		if r := m.res[f.id]; r != nil && r.state != 'r' && r.deadline <= now {
			delete(m.res, f.id)
		}
	}
	for n := 0; n < gcBatch && len(m.expiring) > 0 && m.expiring[0].at <= now; n++ {
		e := heap.Pop(&m.expiring).(expiry)
		if c := m.counters[e.key]; c != nil && c.expireAt != 0 && c.expireAt <= now {
			delete(m.counters, e.key)
			m.dirty = m.dirty || e.key.kind == kindMoney
		}
	}
}

// gcBatch bounds what one operation's sweep forgets of each kind: more
// than an operation adds, so the backlog of a quiet spell drains too.
const gcBatch = 64

// finished is a reservation that ended, to forget after deadline.
type finished struct {
	id       string
	deadline int64
}

// fifo is a queue of finished reservations in chunks of fifoChunk, so
// neither a push nor a pop ever copies the queue.
type fifo struct {
	chunks [][]finished
	head   int // the next to pop in chunks[0]
}

const fifoChunk = 1024

func (q *fifo) push(f finished) {
	if n := len(q.chunks); n == 0 || len(q.chunks[n-1]) == fifoChunk {
		q.chunks = append(q.chunks, make([]finished, 0, fifoChunk))
	}
	last := &q.chunks[len(q.chunks)-1]
	*last = append(*last, f)
}

// popDue pops the oldest entry if its deadline has come.
func (q *fifo) popDue(now int64) (finished, bool) {
	if len(q.chunks) == 0 || q.head >= len(q.chunks[0]) || q.chunks[0][q.head].deadline > now {
		return finished{}, false
	}
	f := q.chunks[0][q.head]
	q.chunks[0][q.head] = finished{}
	q.head++
	if q.head == fifoChunk { // a full chunk, drained
		q.chunks[0] = nil
		q.chunks, q.head = q.chunks[1:], 0
	}
	return f, true
}

// expiry is a counter's end, for expiring.
type expiry struct {
	key counterKey
	at  int64
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// totals snapshots budget spend for the Persister. Money held by requests
// in flight is saved as spent: if the process dies, their leases would
// have charged it.
func (m *memory) totals() []Total {
	var out []Total
	for k, c := range m.counters {
		if k.kind != kindMoney {
			continue
		}
		t := Total{Budget: k.rule, Period: k.period.String(), Subject: k.subject(), Used: MicroEUR(c.used + c.held)}
		if k.start != 0 {
			t.Start = time.UnixMilli(k.start).UTC()
		}
		if c.expireAt != 0 {
			t.Expires = time.UnixMilli(c.expireAt).UTC()
		}
		out = append(out, t)
	}
	return out
}

func (m *memory) save(ctx context.Context) error {
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	ts := m.totals()
	m.dirty = false
	m.mu.Unlock()
	if err := m.persister.Save(ctx, ts); err != nil {
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
		return err
	}
	return nil
}

func (m *memory) flushLoop(every time.Duration) {
	defer close(m.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if err := m.save(context.Background()); err != nil {
				m.log.Warn("saving budget spend failed; retrying", zap.Error(err))
			}
		}
	}
}

func (m *memory) close(ctx context.Context) error {
	if m.persister == nil {
		return nil
	}
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.stopped
		m.mu.Lock()
		m.dirty = true // save once more, whatever happened before
		m.mu.Unlock()
		m.closeErr = m.save(ctx)
	})
	return m.closeErr
}

// leaseHeap orders held reservations by lease end.
type leaseHeap []*mres

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h leaseHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *leaseHeap) Push(x any)        { r := x.(*mres); r.index = len(*h); *h = append(*h, r) }
func (h *leaseHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.index = -1
	return r
}
