package extproc

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
)

// planState: auto chooses a1 (1 EUR per million tokens) and fails over to
// b1 at a thousand times its price, with the given budgets and rate limits.
func planState(t *testing.T, budgets []ledger.BudgetRule, rates []ledger.RateRule) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: a1}
currency: {usd_to_eur: 1}
providers:
  - {name: a, base_url: "https://a.example.com/v1", residency: us, credential: {env: A_KEY}}
  - {name: b, base_url: "https://b.example.com/v1", residency: us, credential: {env: B_KEY}}
models:
  - {id: a1, provider: a, context_window: 200000, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: b1, provider: b, context_window: 200000, price: {input_per_mtok: 1000, output_per_mtok: 1000}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(k string) string { return "sk-" + k })
	st.Failover = &Failover{MaxAttempts: 2, AttemptTimeout: c.Failover.AttemptTimeout}
	b, err := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ledger.NewLimits(nil, budgets, rates)
	if err != nil {
		t.Fatal(err)
	}
	st.Ledger, st.Limited, st.Spend = ledger.New(b, lim, ledger.Options{}), true, &rowsRecorder{}
	t.Cleanup(func() { st.Ledger.Close(context.Background()) })
	return st
}

var sent atomic.Int64 // decision ids

// send sends body as a chat request on a new edge; the edge, and its
// immediate answer when it was refused.
func send(st *State, body string) (*edge, []byte, map[string]string) {
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "d-" + strconv.FormatInt(sent.Add(1), 10), seen: &attemptLog{}}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	r := p.handle(bodyMsg(body)).GetImmediateResponse()
	if r == nil {
		return p, nil, nil
	}
	return p, r.Body, setHeaders(r.GetHeaders())
}

// TestBudgetDropsFallbacksThatDoNotFit (the long-context probe): a small
// request for auto under a small budget was refused for the worst case of
// its dearest fallback, and told to lower max_tokens. The fallbacks that
// do not fit are left out, the rest held, and the answer says so; only a
// first model that does not fit is refused, for its own worst case.
func TestBudgetDropsFallbacksThatDoNotFit(t *testing.T) {
	// a1's worst case without max_tokens is ~0.004 EUR, b1's ~4.1 EUR.
	st := planState(t, []ledger.BudgetRule{{Name: "small", Scope: ledger.ScopeGlobal, Limit: ledger.FromEUR(0.05), Period: ledger.PeriodDay}}, nil)
	p, b, _ := send(st, `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)
	if b != nil {
		t.Fatalf("refused: %s", b)
	}
	if len(p.plan) != 1 || p.plan[0].ID != "a1" || !strings.Contains(p.reason(), `fallbacks left out for budget "small": b1`) {
		t.Fatalf("plan %v, reason %q; want a1 alone, b1 left out for the budget", modelIDs(p.plan), p.reason())
	}
	a1, _ := st.Router.Catalog.Lookup("a1")
	want, _ := worstCase(p.class.InputTokens, []*catalog.Model{a1}, p.out)
	if got := p.reservation.State.Budgets[0].Reserved; got != want {
		t.Errorf("held %d µEUR, want a1's worst case %d", got, want)
	}
	if p.served != a1 || p.selection.Model != a1 {
		t.Errorf("served %v", p.served.ID)
	}
	if r := p.auditRecord(); r.Reason != p.reason() || len(r.Fallbacks) != 0 {
		t.Errorf("audit record: reason %q, fallbacks %v; want %q and none", r.Reason, r.Fallbacks, p.reason())
	}

	// A budget with room for both keeps the plan as it was.
	st = planState(t, []ledger.BudgetRule{{Name: "big", Scope: ledger.ScopeGlobal, Limit: ledger.FromEUR(100), Period: ledger.PeriodDay}}, nil)
	if p, b, _ := send(st, `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`); b != nil || len(p.plan) != 2 || p.reason() != p.selection.Reason {
		t.Fatalf("plan %v, reason %q, refused %s", modelIDs(p.plan), p.reason(), b)
	}

	// Not even a1 fits: refused for a1's worst case, not b1's; a short
	// prompt is told to ask for fewer tokens, a long one that its input
	// is too large.
	st = planState(t, []ledger.BudgetRule{{Name: "tiny", Scope: ledger.ScopeGlobal, Limit: ledger.FromEUR(0.002), Period: ledger.PeriodDay}}, nil)
	_, b, _ = send(st, `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)
	msg := gjson.GetBytes(b, "error.message").String()
	if gjson.GetBytes(b, "error.code").String() != "budget_exceeded" || !strings.Contains(msg, "on a1)") || !strings.Contains(msg, "ask for fewer tokens") {
		t.Fatalf("short prompt: %s", b)
	}
	if w, _ := strconv.ParseFloat(strings.Fields(msg[strings.Index(msg, "(")+1:])[0], 64); w > 0.005 {
		t.Errorf("worst case %v EUR: b1's, not a1's: %s", w, msg)
	}
	_, b, _ = send(st, `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"`+strings.Repeat("lorem ipsum dolor sit amet ", 2000)+`"}]}`)
	msg = gjson.GetBytes(b, "error.message").String()
	if !strings.Contains(msg, "the prompt is too large for this budget") || strings.Contains(msg, "max_tokens or") {
		t.Fatalf("long prompt: %s", b)
	}
}

// TestModelRateLimitMovesAutoDownThePlan (the long-context probe): a
// model's own rate limit refused a request for auto although the next
// model of its plan had room. Auto moves on; a pinned model does not; a
// request no model's limit allows gets the earliest Retry-After.
func TestModelRateLimitMovesAutoDownThePlan(t *testing.T) {
	st := planState(t, nil, []ledger.RateRule{{Name: "a1-tpm", Scope: ledger.ScopeModel, Subject: "a1", TokensPerMinute: 100}})
	p, b, _ := send(st, `{"model":"auto","max_tokens":500,"messages":[{"role":"user","content":"hello"}]}`)
	if b != nil {
		t.Fatalf("auto refused: %s", b)
	}
	if p.served.ID != "b1" || len(p.plan) != 1 || p.plan[0].ID != "b1" || !strings.Contains(p.reason(), `moved past a1 (rate limit "a1-tpm")`) {
		t.Fatalf("served %s, plan %v, reason %q; want b1, past a1's limit", p.served.ID, modelIDs(p.plan), p.reason())
	}
	if r := p.auditRecord(); r.Chosen != "a1" || !strings.Contains(r.Reason, "moved past a1") {
		t.Errorf("audit record: chosen %q, reason %q", r.Chosen, r.Reason)
	}
	if _, b, _ := send(st, `{"model":"a1","max_tokens":500,"messages":[{"role":"user","content":"hello"}]}`); gjson.GetBytes(b, "error.code").String() != "rate_limit_exceeded" {
		t.Fatalf("pinned a1: %s", b)
	}

	// Both used up: the minute's wait, not the day's.
	st = planState(t, nil, []ledger.RateRule{
		{Name: "a1-rpm", Scope: ledger.ScopeModel, Subject: "a1", RequestsPerMinute: 1},
		{Name: "b1-rpd", Scope: ledger.ScopeModel, Subject: "b1", RequestsPerDay: 1}})
	for _, m := range []string{"a1", "b1"} {
		if _, b, _ := send(st, `{"model":"`+m+`","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`); b != nil {
			t.Fatalf("%s: %s", m, b)
		}
	}
	_, b, hs := send(st, `{"model":"auto","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	retry, _ := strconv.Atoi(hs["retry-after"])
	if gjson.GetBytes(b, "error.code").String() != "rate_limit_exceeded" || retry < 1 || retry > 60 || !strings.Contains(string(b), "a1-rpm") {
		t.Fatalf("Retry-After %q: %s; want a1's minute", hs["retry-after"], b)
	}
}
