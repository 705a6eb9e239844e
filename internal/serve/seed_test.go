package serve

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// flakySpend is a spend ledger that fails its first queries, then reports
// one workspace's spend.
type flakySpend struct {
	mu    sync.Mutex
	fails int
	calls int
}

func (f *flakySpend) Query(context.Context, spend.Query) (*spend.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return nil, errors.New("connection refused")
	}
	return &spend.Report{Groups: []spend.Group{{Values: []string{"k1", "acme", "", ""}, Sums: spend.Sums{Cost: 820_000}}}}, nil
}

// TestSeedingTriesAgain (the storage probe): budgets are seeded until the
// spend ledger answers. A Redis that lost its data while PostgreSQL was
// away too was seeded once, failed, and counted from zero for the rest of
// the period: 0.82 EUR spent, 0 on the budget.
func TestSeedingTriesAgain(t *testing.T) {
	lim, err := ledger.NewLimits(time.UTC, []ledger.BudgetRule{{Name: "ws-day", Scope: ledger.ScopeWorkspace, Subject: "acme",
		Limit: ledger.FromEUR(5), Period: ledger.PeriodDay}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(b, lim, ledger.Options{})
	sp := &flakySpend{fails: 2}
	s := &seeder{led: led, sp: sp, log: zap.NewNop(), retry: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.all(ctx)
	st, err := led.Peek(ctx, &ledger.Request{Subject: ledger.Subject{Key: "k1", Workspace: "acme"}})
	if err != nil || len(st.Budgets) != 1 || st.Budgets[0].Used != 820_000 {
		t.Errorf("after two failed queries: %+v %v; want 0.82 EUR used", st.Budgets, err)
	}
	if sp.calls != 3 {
		t.Errorf("%d queries, want 3", sp.calls)
	}
}
