package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// TestSeedingRetriesQuietly (the red-team probe): while the spend ledger
// is away, a retry asks it once per period, not once per budget, and logs
// one line, not one per budget: 200 day budgets made 200 queries and 201
// lines a minute.
func TestSeedingRetriesQuietly(t *testing.T) {
	var rules []ledger.BudgetRule
	for i := range 50 {
		rules = append(rules, ledger.BudgetRule{Name: fmt.Sprintf("b%d", i), Scope: ledger.ScopeWorkspace, Subject: "acme",
			Limit: ledger.FromEUR(5), Period: ledger.PeriodDay})
	}
	lim, err := ledger.NewLimits(time.UTC, rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	sp := &flakySpend{fails: 3}
	s := &seeder{led: ledger.New(b, lim, ledger.Options{}), sp: sp, log: zap.New(core), retry: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.all(ctx)
	// Three failed tries of one query each, then the one that answered.
	if sp.calls != 4 {
		t.Errorf("%d queries for 50 budgets of one period over 4 tries; want 4", sp.calls)
	}
	// The first try names each budget; the retries say how many are left.
	if n := logs.FilterMessage("budget not seeded from the spend ledger").Len(); n != 1 {
		t.Errorf("%d lines naming a budget; want 1 (the first failed query)", n)
	}
	if n := logs.FilterMessage("budgets not seeded from the spend ledger: trying again").Len(); n != 3 {
		t.Errorf("%d retry lines; want 3", n)
	}
}
