package ledger

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestMemorySpendSurvivesRestart: a month's spend, and money held by
// requests in flight at shutdown, are there after a restart.
func TestMemorySpendSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	clk := newClock(midMinute)
	lim := limits(t, berlin, []BudgetRule{
		{Name: "team-month", Scope: ScopeTeam, Limit: eur(10), Period: PeriodMonth},
		{Name: "key-total", Scope: ScopeKey, Limit: eur(100), Period: PeriodTotal},
	}, []RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 100}})
	for name, p := range map[string]Persister{
		"file":   FilePersister{Path: filepath.Join(t.TempDir(), "state", "spend.json")},
		"memory": &MemoryPersister{},
	} {
		t.Run(name, func(t *testing.T) {
			open := func() *Ledger {
				b, err := NewMemory(ctx, MemoryOptions{Persister: p, FlushInterval: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				return New(b, lim, Options{Now: clk.Now})
			}
			l := open()
			settle(t, l, reserve(t, l, "a", eur(2), 0), eur(3), 0)
			reserve(t, l, "in-flight", eur(1.25), 0)
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			l = open()
			defer l.Close(ctx)
			s := peek(t, l)
			for _, name := range []string{"team-month", "key-total"} {
				if b := budget(t, s, name); b.Used != eur(4.25) || b.Reserved != 0 {
					t.Fatalf("%s after restart: %+v, want 4.25 EUR used", name, b)
				}
			}
			if s.Requests.Remaining != 100 {
				t.Fatalf("rate limits are not persisted; got %+v", s.Requests)
			}
		})
	}
}

// TestMemoryFlushes: spend is saved in the background, not only at Close,
// and so is money held by a request in flight, even when nothing settles
// meanwhile (the upgrade helper's crash had lost such a stream's hold).
func TestMemoryFlushes(t *testing.T) {
	for name, tc := range map[string]struct {
		run  func(t *testing.T, l *Ledger)
		want MicroEUR
	}{
		"settled":           {run: func(t *testing.T, l *Ledger) { settle(t, l, reserve(t, l, "a", eur(1), 0), eur(1), 0) }, want: eur(1)},
		"held, not settled": {run: func(t *testing.T, l *Ledger) { reserve(t, l, "streaming", eur(0.318), 0) }, want: eur(0.318)},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p := &MemoryPersister{}
			b, err := NewMemory(ctx, MemoryOptions{Persister: p, FlushInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			l := New(b, limits(t, nil, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodDay}}, nil), Options{})
			defer l.Close(ctx)
			tc.run(t, l)
			deadline := time.Now().Add(5 * time.Second)
			for {
				ts, _ := p.Load(ctx)
				if len(ts) == 1 && ts[0].Used == tc.want && ts[0].Budget == "g" && ts[0].Period == "day" {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("not flushed after 5s: %+v", ts)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestMemoryForgetsOldWindows: counters of past windows and finished
// reservations do not pile up.
func TestMemoryForgetsOldWindows(t *testing.T) {
	clk := newClock(midMinute)
	b, _ := NewMemory(context.Background(), MemoryOptions{})
	m := b.(*memory)
	l := New(b, limits(t, nil, nil, []RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 100}}), Options{Now: clk.Now, Lease: time.Minute})
	settle(t, l, reserve(t, l, "a", 0, 0), 0, 0)
	clk.Add(72 * time.Hour)
	peek(t, l)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.counters) != 0 || len(m.res) != 0 {
		t.Fatalf("%d counters and %d reservations kept after 3 days", len(m.counters), len(m.res))
	}
}

// TestMemoryForgetsInSteps: finished reservations and ended counters are
// forgotten a batch per operation, in the order they ended, so a backlog
// drains over a few operations and no operation walks every map.
func TestMemoryForgetsInSteps(t *testing.T) {
	clk := newClock(midMinute)
	b, _ := NewMemory(context.Background(), MemoryOptions{})
	m := b.(*memory)
	l := New(b, limits(t, nil, nil, []RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 10000}}), Options{Now: clk.Now, Lease: time.Minute})
	const n = 3*gcBatch + 10
	for i := range n {
		settle(t, l, reserve(t, l, fmt.Sprint("r", i), 0, 0), 0, 0)
	}
	kept := func() (int, int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.res), len(m.counters)
	}
	if res, _ := kept(); res != n {
		t.Fatalf("%d reservations kept, want %d", res, n)
	}
	clk.Add(time.Hour)
	peek(t, l)
	if res, counters := kept(); res != n-gcBatch || counters != 0 {
		t.Fatalf("after one operation: %d reservations, %d counters kept; want %d and 0", res, counters, n-gcBatch)
	}
	for range 3 {
		peek(t, l)
	}
	if res, _ := kept(); res != 0 {
		t.Fatalf("%d reservations kept after the backlog drained", res)
	}
}
