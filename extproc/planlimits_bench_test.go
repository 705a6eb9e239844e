package extproc

import (
	"context"
	"strconv"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/ledger"
)

// BenchmarkChatRequestBudget is a request for auto with failover that fits
// its budget (memory ledger), reserved and released: the path the plan's
// narrowing must leave as it was.
func BenchmarkChatRequestBudget(b *testing.B) {
	st := failoverState(b)
	mem, err := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	lim, err := ledger.NewLimits(nil, []ledger.BudgetRule{{Name: "all", Scope: ledger.ScopeGlobal, Limit: ledger.FromEUR(1e6), Period: ledger.PeriodDay}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	st.Ledger, st.Limited = ledger.New(mem, lim, ledger.Options{}), true
	defer st.Ledger.Close(context.Background())
	hm, bm := headersMsg("POST", "/v1/chat/completions", false), bodyMsg(benchBody)
	var seen attemptLog
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "bench-" + strconv.Itoa(i), seen: &seen}, ctx: context.Background()}
		p.handle(hm)
		if r := p.handle(bm); r.GetImmediateResponse() != nil {
			b.Fatalf("refused: %v", r)
		}
		p.takeAttempts(0)
		p.release()
	}
}
