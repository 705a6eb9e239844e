package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// backendKind builds fresh, isolated backends of one kind for the
// conformance suite. pair gives two handles on one store: two replicas.
type backendKind struct {
	name string
	new  func(t *testing.T) Backend
	pair func(t *testing.T) (Backend, Backend)
}

func memoryKind() backendKind {
	newMem := func(t *testing.T) Backend {
		b, err := NewMemory(context.Background(), MemoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return backendKind{name: "memory", new: newMem,
		// Two ledgers in one process share one memory backend; replicas
		// across processes need Redis.
		pair: func(t *testing.T) (Backend, Backend) { b := newMem(t); return b, b }}
}

// redisKind starts one redis-server for the whole suite; each test gets
// its own key prefix, so tests never see each other's counters.
func redisKind(t *testing.T) backendKind {
	srv := testsrv.Redis(t)
	var n atomic.Int64
	client := func(t *testing.T) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
		t.Cleanup(func() { c.Close() })
		return c
	}
	prefix := func() string { return fmt.Sprintf("{t%d}:", n.Add(1)) }
	return backendKind{name: "redis",
		new: func(t *testing.T) Backend { return NewRedis(client(t), prefix()) },
		pair: func(t *testing.T) (Backend, Backend) {
			p := prefix()
			return NewRedis(client(t), p), NewRedis(client(t), p) // two clients: two replicas' connections
		}}
}

func TestConformance(t *testing.T) {
	kinds := map[string]func(t *testing.T) backendKind{
		"memory": func(*testing.T) backendKind { return memoryKind() },
		"redis":  redisKind, // skipped only with STELLWERK_STORE_TESTS=skip
	}
	for name, kind := range kinds {
		t.Run(name, func(t *testing.T) {
			k := kind(t)
			for name, test := range conformance {
				t.Run(name, func(t *testing.T) { test(t, k) })
			}
		})
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// midMinute is a Friday, 30 s into a minute: no window rolls over while a
// test runs with the clock standing still.
var midMinute = time.Date(2025, 3, 14, 12, 0, 30, 0, time.UTC)

func limits(t *testing.T, loc *time.Location, budgets []BudgetRule, rates []RateRule) *Limits {
	t.Helper()
	l, err := NewLimits(loc, budgets, rates)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func eur(x float64) MicroEUR { return FromEUR(x) }

var alice = Subject{Key: "k1", User: "alice", Team: "ml", Workspace: "acme"}

func reserve(t *testing.T, l *Ledger, id string, cost MicroEUR, tokens int64) *Reservation {
	t.Helper()
	r, err := l.Reserve(context.Background(), &Request{ID: id, Subject: alice, Model: "m1", Cost: cost, Tokens: tokens})
	if err != nil {
		t.Fatalf("reserve %s: %v", id, err)
	}
	return r
}

func peek(t *testing.T, l *Ledger) State {
	t.Helper()
	s, err := l.Peek(context.Background(), &Request{Subject: alice, Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func budget(t *testing.T, s State, name string) BudgetState {
	t.Helper()
	for _, b := range s.Budgets {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("no budget %q in %+v", name, s.Budgets)
	return BudgetState{}
}

func settle(t *testing.T, l *Ledger, r *Reservation, cost MicroEUR, tokens int64) Settlement {
	t.Helper()
	s, err := l.Settle(context.Background(), r, Usage{Cost: cost, Tokens: tokens})
	if err != nil {
		t.Fatalf("settle %s: %v", r.ID, err)
	}
	return s
}

// concurrently runs n attempts at once and counts the allowed ones.
func concurrently(t *testing.T, n int, attempt func(i int) (*Reservation, error)) (allowed int, refusals []*Refusal) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := attempt(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("attempt %d: %v", i, err)
			case r.Allowed:
				allowed++
			default:
				refusals = append(refusals, r.Refusal)
			}
		}()
	}
	close(start)
	wg.Wait()
	return allowed, refusals
}

var conformance = map[string]func(t *testing.T, k backendKind){
	// A budget added mid-period starts from what its subjects spent in
	// the period (the spend ledger's sums), once across two replicas; a
	// counter that counted the requests itself is not raised again.
	"a budget added mid-period is seeded from what was spent": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{
			{Name: "team-month", Scope: ScopeTeam, Subject: "acme/ml", Limit: eur(10), Period: PeriodMonth},
			{Name: "each-user-day", Scope: ScopeUser, Limit: eur(5), Period: PeriodDay},
			{Name: "ws-total", Scope: ScopeWorkspace, Limit: eur(100), Period: PeriodTotal},
		}, nil)
		b1, b2 := k.pair(t)
		l1, l2 := New(b1, lim, Options{Now: clk.Now}), New(b2, lim, Options{Now: clk.Now})
		bob := Subject{Key: "k2", User: "bob", Team: "ml", Workspace: "acme"}
		keyOnly := Subject{Key: "k3", Workspace: "acme"} // a key without a user: its own "user"
		spent := []Spent{{alice, eur(4)}, {bob, eur(5)}, {keyOnly, eur(1)}, {Subject{Key: "k9", Team: "ops", Workspace: "acme"}, eur(2)}}
		if start, ok := lim.PeriodStart("team-month", clk.Now()); !ok || !start.Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("period start %v %v", start, ok)
		}
		ctx := context.Background()
		for _, l := range []*Ledger{l1, l2} { // two replicas seed the same: once
			for _, rule := range []string{"team-month", "each-user-day", "ws-total"} {
				if _, _, err := l.Seed(ctx, lim, rule, spent, clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
		}
		st := peek(t, l1)
		if b := budget(t, st, "team-month"); b.Used != eur(9) { // alice and bob, not ops
			t.Errorf("team-month used %s, want 9", b.Used)
		}
		if b := budget(t, st, "each-user-day"); b.Used != eur(4) || b.Subject != "acme/alice" {
			t.Errorf("alice's day %+v", b)
		}
		if b := budget(t, st, "ws-total"); b.Used != eur(12) {
			t.Errorf("workspace total used %s, want 12", b.Used)
		}
		if s, err := l1.Peek(ctx, &Request{Subject: keyOnly}); err != nil || budget(t, s, "each-user-day").Used != eur(1) {
			t.Errorf("the key without a user: %v %+v", err, s.Budgets)
		}
		// The seeded money holds: 1.01 EUR more does not fit alice's team.
		if r := reserve(t, l1, "over", eur(1.01), 0); r.Allowed || r.Refusal.Name != "team-month" {
			t.Errorf("over the seeded team budget: %+v", r)
		}
		// A request settled since (counted by the counter) is not seeded
		// again: the ledger's sums then include it.
		r := reserve(t, l1, "later", eur(0.5), 0)
		settle(t, l1, r, eur(0.5), 0)
		spent[0].Cost += eur(0.5)
		if n, total, err := l2.Seed(ctx, lim, "team-month", spent, clk.Now()); err != nil || n != 0 || total != 0 {
			t.Errorf("seeded again: %d counters, %s, %v", n, total, err)
		}
		if b := budget(t, peek(t, l1), "team-month"); b.Used != eur(9.5) {
			t.Errorf("team-month used %s, want 9.5", b.Used)
		}
		// What a counter still lacks later (spend another replica made
		// before it had the budget) is seeded then: a second seed of the
		// same period raised nothing before (the seeding probe).
		spent[1].Cost += eur(0.25)
		if n, total, err := l2.Seed(ctx, lim, "team-month", spent, clk.Now()); err != nil || n != 1 || total != eur(0.25) {
			t.Errorf("a later shortfall: %d counters, %s, %v", n, total, err)
		}
		if b := budget(t, peek(t, l1), "team-month"); b.Used != eur(9.75) {
			t.Errorf("team-month used %s, want 9.75", b.Used)
		}
	},

	// A seed that expires a lease keeps the reservation's record: its late
	// settle corrects the worst case charged at the expiry instead of
	// adding the usage on top (the seeding probe: 20 EUR too much).
	"a seed keeps what an expired lease's settle needs": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "team-day", Scope: ScopeTeam, Subject: "acme/ml", Limit: eur(10), Period: PeriodDay}}, nil)
		l := New(k.new(t), lim, Options{Now: clk.Now, Lease: time.Minute})
		r := reserve(t, l, "slow", eur(2), 0)
		clk.Add(61 * time.Second) // the lease ended
		if _, _, err := l.Seed(context.Background(), lim, "team-day", []Spent{{alice, eur(1)}}, clk.Now()); err != nil {
			t.Fatal(err)
		}
		if s := settle(t, l, r, eur(0.5), 0); s.Unmatched {
			t.Errorf("the late settle found no record: %+v", s)
		}
		if b := budget(t, peek(t, l), "team-day"); b.Used != eur(0.5) && b.Used != eur(1) {
			t.Errorf("team-day used %s, want the usage (0.5), or the seed (1) had it come first", b.Used)
		}
	},

	"budget admits exactly N of 200 concurrent reservations": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "team-day", Scope: ScopeTeam, Subject: "acme/ml", Limit: eur(10), Period: PeriodDay}}, nil)
		l := New(k.new(t), lim, Options{Now: clk.Now})
		cost := eur(0.37) // 27 fit in 10 EUR
		allowed, refusals := concurrently(t, 200, func(i int) (*Reservation, error) {
			return l.Reserve(context.Background(), &Request{ID: fmt.Sprint("r", i), Subject: alice, Cost: cost})
		})
		if allowed != 27 {
			t.Fatalf("%d reservations allowed, want exactly 27", allowed)
		}
		for _, rf := range refusals {
			if rf.Kind != RefusedBudget || rf.Name != "team-day" || rf.Subject != "acme/ml" {
				t.Fatalf("refusal %+v", rf)
			}
			// 12:00:30 UTC → midnight: 11h59m30s.
			if want := 11*time.Hour + 59*time.Minute + 30*time.Second; rf.RetryAfter != want {
				t.Fatalf("Retry-After %s, want %s", rf.RetryAfter, want)
			}
		}
		b := budget(t, peek(t, l), "team-day")
		if b.Reserved != 27*cost || b.Used != 0 {
			t.Fatalf("after the burst: %+v", b)
		}
	},

	"100 per minute admits exactly 100 of 300 concurrent requests": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, nil, []RateRule{{Name: "key-rpm", Scope: ScopeKey, RequestsPerMinute: 100}})
		l := New(k.new(t), lim, Options{Now: clk.Now})
		allowed, refusals := concurrently(t, 300, func(i int) (*Reservation, error) {
			return l.Reserve(context.Background(), &Request{ID: fmt.Sprint("q", i), Subject: alice, Model: "m1", Tokens: 10})
		})
		if allowed != 100 {
			t.Fatalf("%d requests admitted, want exactly 100", allowed)
		}
		for _, rf := range refusals {
			if rf.Kind != RefusedRequests || rf.RetryAfter != 30*time.Second || rf.Limit != 100 {
				t.Fatalf("refusal %+v", rf)
			}
		}
		s := peek(t, l)
		if s.Requests.Limit != 100 || s.Requests.Remaining != 0 || !s.Requests.Reset.Equal(midMinute.Add(30*time.Second)) {
			t.Fatalf("requests state %+v", s.Requests)
		}
		clk.Add(30 * time.Second) // the next minute
		if r := reserve(t, l, "next-minute", 0, 10); !r.Allowed || r.Requests.Remaining != 99 {
			t.Fatalf("next minute: allowed %v, %+v", r.Allowed, r.Requests)
		}
	},

	"a day's limit used up with the minute's: the headers name the day's reset": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, nil, []RateRule{{Name: "key", Scope: ScopeKey, RequestsPerMinute: 2, RequestsPerDay: 2}})
		l := New(k.new(t), lim, Options{Now: clk.Now})
		for i := range 2 {
			if r := reserve(t, l, fmt.Sprint("d", i), 0, 10); !r.Allowed {
				t.Fatalf("request %d refused", i)
			}
		}
		r := reserve(t, l, "d2", 0, 10)
		_, dayEnd := PeriodDay.Bounds(midMinute, time.UTC)
		if r.Allowed || r.Refusal.Period != PeriodDay || !r.Refusal.Reset.Equal(dayEnd) || r.Requests.Remaining != 0 || !r.Requests.Reset.Equal(dayEnd) {
			t.Fatalf("refusal %+v, requests %+v: want both at the day's end %s", r.Refusal, r.Requests, dayEnd)
		}
	},

	"all or nothing across budgets and limits": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC,
			[]BudgetRule{
				{Name: "key-day", Scope: ScopeKey, Limit: eur(10), Period: PeriodDay},
				{Name: "team-month", Scope: ScopeTeam, Subject: "acme/ml", Limit: eur(1), Period: PeriodMonth},
			},
			[]RateRule{{Name: "key-limits", Scope: ScopeKey, RequestsPerMinute: 100, TokensPerMinute: 10_000}})
		l := New(k.new(t), lim, Options{Now: clk.Now})
		if r := reserve(t, l, "a", eur(0.8), 1000); !r.Allowed {
			t.Fatalf("first refused: %+v", r.Refusal)
		}
		r := reserve(t, l, "b", eur(0.3), 1000) // the team budget has 0.2 left
		if r.Allowed || r.Refusal.Name != "team-month" || r.Refusal.Kind != RefusedBudget {
			t.Fatalf("second: allowed %v, refusal %+v", r.Allowed, r.Refusal)
		}
		// March 14 12:00:30 UTC → April 1: 17 days 11h59m30s.
		if want := 17*24*time.Hour + 11*time.Hour + 59*time.Minute + 30*time.Second; r.Refusal.RetryAfter != want {
			t.Fatalf("Retry-After %s, want %s", r.Refusal.RetryAfter, want)
		}
		s := peek(t, l)
		if b := budget(t, s, "key-day"); b.Reserved != eur(0.8) {
			t.Fatalf("the refused request left a hold on key-day: %+v", b)
		}
		if s.Requests.Remaining != 99 || s.Tokens.Remaining != 9000 {
			t.Fatalf("the refused request was counted: requests %+v tokens %+v", s.Requests, s.Tokens)
		}
		// A token limit refusing holds nothing on the budgets either.
		r = reserve(t, l, "c", eur(0.1), 9001)
		if r.Allowed || r.Refusal.Kind != RefusedTokens {
			t.Fatalf("tokens: allowed %v, refusal %+v", r.Allowed, r.Refusal)
		}
		if b := budget(t, peek(t, l), "team-month"); b.Reserved != eur(0.8) {
			t.Fatalf("a token refusal held money: %+v", b)
		}
	},

	// A budget for each user (or team) caps a key without one as its own
	// user: such keys were skipped, uncapped (the FinOps probe). Two such
	// keys have a budget each; a named user's is apart from both.
	"each user's budget caps a key without a user": func(t *testing.T, k backendKind) {
		lim := limits(t, time.UTC, []BudgetRule{
			{Name: "each-user", Scope: ScopeUser, Limit: eur(1), Period: PeriodDay},
			{Name: "each-team", Scope: ScopeTeam, Limit: eur(5), Period: PeriodDay},
		}, nil)
		l := New(k.new(t), lim, Options{Now: newClock(midMinute).Now})
		send := func(id string, sub Subject, cost float64) *Reservation {
			r, err := l.Reserve(context.Background(), &Request{ID: id, Subject: sub, Cost: eur(cost)})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		k1, k2 := Subject{Key: "k1", Workspace: "acme"}, Subject{Key: "k2", Workspace: "acme"}
		if r := send("a", k1, 0.8); !r.Allowed || len(r.State.Budgets) != 2 || budget(t, r.State, "each-user").Subject != "key:k1" {
			t.Fatalf("k1: %+v", r)
		}
		if r := send("b", k1, 0.3); r.Allowed || r.Refusal.Name != "each-user" || r.Refusal.Subject != "key:k1" {
			t.Fatalf("k1 over its user budget: allowed %v %+v", r.Allowed, r.Refusal)
		}
		if r := send("c", k2, 0.8); !r.Allowed {
			t.Fatalf("k2 has a budget of its own: %+v", r.Refusal)
		}
		if r := send("d", Subject{Key: "k3", Workspace: "acme", User: "k1", Team: "k1"}, 0.8); !r.Allowed || budget(t, r.State, "each-user").Subject != "acme/k1" {
			t.Fatalf("a user named like a key: %+v", r)
		}
		if r := send("e", Subject{Workspace: "acme"}, 0.8); !r.Allowed || len(r.State.Budgets) != 0 {
			t.Fatalf("an anonymous caller: %+v", r)
		}
	},

	"settle charges the actual amount, above or below the reservation": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "ws", Scope: ScopeWorkspace, Limit: eur(100), Period: PeriodMonth}},
			[]RateRule{{Name: "tpm", Scope: ScopeWorkspace, TokensPerMinute: 10_000}})
		l := New(k.new(t), lim, Options{Now: clk.Now})
		r := reserve(t, l, "above", eur(1), 1000)
		if st := settle(t, l, r, eur(1.5), 1500); st != (Settlement{}) {
			t.Fatalf("settlement %+v", st)
		}
		r = reserve(t, l, "below", eur(1), 1000)
		settle(t, l, r, eur(0.25), 300)
		s := peek(t, l)
		if b := budget(t, s, "ws"); b.Used != eur(1.75) || b.Reserved != 0 {
			t.Fatalf("budget %+v, want used 1.75 EUR, nothing reserved", b)
		}
		if s.Tokens.Remaining != 10_000-1800 {
			t.Fatalf("tokens remaining %d, want %d", s.Tokens.Remaining, 10_000-1800)
		}
	},

	"a refusal says whether holds in flight or spend refused it": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "ws", Scope: ScopeWorkspace, Limit: eur(10), Period: PeriodDay}}, nil)
		l := New(k.new(t), lim, Options{Now: clk.Now})
		held := reserve(t, l, "held", eur(6), 0) // in flight
		r := reserve(t, l, "waits", eur(5), 0)
		if f := r.Refusal; r.Allowed || f == nil || !f.InFlight() || f.Used != 0 || f.Held != int64(eur(6)) || f.Amount != int64(eur(5)) {
			t.Fatalf("refusal %+v, want one in flight: used 0, held 6, amount 5 EUR", f)
		}
		settle(t, l, held, eur(7), 0)
		r = reserve(t, l, "too large", eur(5), 0)
		if f := r.Refusal; r.Allowed || f == nil || f.InFlight() || f.Used != int64(eur(7)) || f.Held != 0 {
			t.Fatalf("refusal %+v, want one by spend: used 7 EUR, nothing held", f)
		}
		if r := reserve(t, l, "fits", eur(3), 0); !r.Allowed {
			t.Fatalf("3 EUR of the 3 left refused: %+v", r.Refusal)
		}
	},

	"settle is idempotent": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(100), Period: PeriodTotal}}, nil)
		l := New(k.new(t), lim, Options{Now: clk.Now})
		r := reserve(t, l, "once", eur(2), 0)
		var wg sync.WaitGroup
		var firsts atomic.Int32
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := l.Settle(context.Background(), r, Usage{Cost: eur(1)})
				if err != nil {
					t.Error(err)
				}
				if !st.Duplicate {
					firsts.Add(1)
				}
			}()
		}
		wg.Wait()
		if firsts.Load() != 1 {
			t.Fatalf("%d settlements were not duplicates, want 1", firsts.Load())
		}
		if err := l.Release(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if b := budget(t, peek(t, l), "g"); b.Used != eur(1) || b.Reserved != 0 {
			t.Fatalf("budget %+v, want used 1 EUR once", b)
		}
		if _, err := l.Reserve(context.Background(), &Request{ID: "once", Subject: alice, Cost: 1}); !errors.Is(err, ErrDuplicateID) {
			t.Fatalf("reusing a settled id: %v, want ErrDuplicateID", err)
		}
	},

	"release charges nothing, the request still counts": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodDay}},
			[]RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 10, TokensPerMinute: 1000}})
		l := New(k.new(t), lim, Options{Now: clk.Now})
		r := reserve(t, l, "never-sent", eur(2), 500)
		if err := l.Release(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if st := settle(t, l, r, eur(2), 500); !st.Duplicate {
			t.Fatalf("settle after release: %+v, want a duplicate", st)
		}
		s := peek(t, l)
		if b := budget(t, s, "g"); b.Used != 0 || b.Reserved != 0 {
			t.Fatalf("budget %+v after release", b)
		}
		if s.Requests.Remaining != 9 || s.Tokens.Remaining != 1000 {
			t.Fatalf("requests %+v tokens %+v", s.Requests, s.Tokens)
		}
	},

	"an expired lease is charged at the reserved amount": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodMonth}}, nil)
		a, b := k.pair(t)
		dying := New(a, lim, Options{Now: clk.Now, Lease: time.Minute})
		survivor := New(b, lim, Options{Now: clk.Now, Lease: time.Minute})
		reserve(t, dying, "orphan", eur(3), 0) // its replica dies before the answer
		clk.Add(59 * time.Second)
		if g := budget(t, peek(t, survivor), "g"); g.Reserved != eur(3) || g.Used != 0 {
			t.Fatalf("within the lease: %+v", g)
		}
		clk.Add(2 * time.Second)
		if g := budget(t, peek(t, survivor), "g"); g.Used != eur(3) || g.Reserved != 0 {
			t.Fatalf("after the lease: %+v, want 3 EUR charged", g)
		}
		// The replica was only slow: its settle replaces the charge.
		r := reserve(t, survivor, "slow", eur(2), 0)
		clk.Add(61 * time.Second)
		if st := settle(t, survivor, r, eur(0.5), 0); !st.Late {
			t.Fatalf("settlement %+v, want late", st)
		}
		if g := budget(t, peek(t, survivor), "g"); g.Used != eur(3.5) || g.Reserved != 0 {
			t.Fatalf("after the late settle: %+v, want 3.5 EUR", g)
		}
	},

	"periods roll over in the configured time zone": func(t *testing.T, k backendKind) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		// 23:59:30 on 31 March in Berlin (CEST, UTC+2) is 21:59:30 UTC.
		clk := newClock(time.Date(2025, 3, 31, 21, 59, 30, 0, time.UTC))
		lim := limits(t, berlin, []BudgetRule{
			{Name: "month", Scope: ScopeWorkspace, Limit: eur(5), Period: PeriodMonth},
			{Name: "day", Scope: ScopeWorkspace, Limit: eur(100), Period: PeriodDay},
		}, nil)
		l := New(k.new(t), lim, Options{Now: clk.Now})
		if r := reserve(t, l, "fill", eur(5), 0); !r.Allowed {
			t.Fatal("the first 5 EUR were refused")
		}
		r := reserve(t, l, "late-march", eur(1), 0)
		if r.Allowed || r.Refusal.Name != "month" || r.Refusal.RetryAfter != 30*time.Second ||
			!r.Refusal.Reset.Equal(time.Date(2025, 4, 1, 0, 0, 0, 0, berlin)) {
			t.Fatalf("end of March: allowed %v refusal %+v", r.Allowed, r.Refusal)
		}
		clk.Add(time.Minute) // 00:00:30 on 1 April in Berlin, still March in UTC
		r = reserve(t, l, "april", eur(1), 0)
		if !r.Allowed {
			t.Fatalf("April in Berlin refused: %+v", r.Refusal)
		}
		if m := budget(t, r.State, "month"); m.Reserved != eur(1) || !m.Reset.Equal(time.Date(2025, 5, 1, 0, 0, 0, 0, berlin)) {
			t.Fatalf("April's month budget %+v", m)
		}
		if d := budget(t, r.State, "day"); d.Reserved != eur(1) {
			t.Fatalf("1 April's day budget %+v", d)
		}
	},

	"two replicas share counters exactly": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "key-day", Scope: ScopeKey, Limit: eur(5), Period: PeriodDay}},
			[]RateRule{{Name: "key-rpm", Scope: ScopeKey, RequestsPerMinute: 100}})
		a, b := k.pair(t)
		replicas := []*Ledger{New(a, lim, Options{Now: clk.Now}), New(b, lim, Options{Now: clk.Now})}
		// Budget: 200 attempts at 0.2 EUR for 5 EUR → exactly 25, whichever replica.
		allowed, _ := concurrently(t, 200, func(i int) (*Reservation, error) {
			return replicas[i%2].Reserve(context.Background(), &Request{ID: fmt.Sprint("b", i),
				Subject: Subject{Key: "k2", Workspace: "acme"}, Cost: eur(0.2)})
		})
		if allowed != 25 {
			t.Fatalf("budget: %d allowed across two replicas, want 25", allowed)
		}
		allowed, _ = concurrently(t, 300, func(i int) (*Reservation, error) {
			return replicas[i%2].Reserve(context.Background(), &Request{ID: fmt.Sprint("q", i),
				Subject: Subject{Key: "k3", Workspace: "acme"}})
		})
		if allowed != 100 {
			t.Fatalf("rate: %d admitted across two replicas, want 100", allowed)
		}
	},

	"move re-reserves for failover, all or nothing": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(3), Period: PeriodDay}},
			[]RateRule{
				{Name: "key", Scope: ScopeKey, RequestsPerMinute: 10},
				{Name: "m2-rpm", Scope: ScopeModel, Subject: "m2", RequestsPerMinute: 5},
			})
		l := New(k.new(t), lim, Options{Now: clk.Now})
		r := reserve(t, l, "fo", eur(1), 100)
		if rf, err := l.Move(context.Background(), r, "m2", eur(2.5), 100); err != nil || rf != nil {
			t.Fatalf("move to 2.5 EUR: %v %+v", err, rf)
		}
		if g := budget(t, r.State, "g"); g.Reserved != eur(2.5) {
			t.Fatalf("after the move: %+v", g)
		}
		rf, err := l.Move(context.Background(), r, "m3", eur(3.5), 100)
		if err != nil || rf == nil || rf.Name != "g" {
			t.Fatalf("move to 3.5 EUR: %v %+v, want refused by g", err, rf)
		}
		s, err := l.Peek(context.Background(), &Request{Subject: alice, Model: "m2"})
		if err != nil {
			t.Fatal(err)
		}
		if g := budget(t, s, "g"); g.Reserved != eur(2.5) {
			t.Fatalf("a refused move changed the hold: %+v", g)
		}
		// The key's request was counted once; m2's limit counted the move.
		if s.Requests.Name != "m2-rpm" || s.Requests.Remaining != 4 {
			t.Fatalf("requests %+v, want m2-rpm with 4 left", s.Requests)
		}
		settle(t, l, r, eur(2), 100)
		if g := budget(t, peek(t, l), "g"); g.Used != eur(2) || g.Reserved != 0 {
			t.Fatalf("after settle: %+v", g)
		}
		if _, err := l.Move(context.Background(), r, "m1", eur(1), 1); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("move after settle: %v, want ErrNotReserved", err)
		}
	},

	"warn threshold and downgrade budgets": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		lim := limits(t, time.UTC, []BudgetRule{
			{Name: "soft", Scope: ScopeUser, Limit: eur(1), Period: PeriodWeek, Downgrade: true, WarnAt: 0.8},
		}, nil)
		l := New(k.new(t), lim, Options{Now: clk.Now})
		r := reserve(t, l, "a", eur(0.7), 0)
		if r.Warning {
			t.Fatal("warning at 70%")
		}
		// A request is told how used the budget is as it found it: its own
		// worst case, held until it settles, is not spend.
		r = reserve(t, l, "b", eur(0.15), 0)
		if !r.Allowed || r.Warning || budget(t, r.State, "soft").Ratio != 0.7 {
			t.Fatalf("the request that takes it to 85%%: allowed %v warning %v %+v", r.Allowed, r.Warning, r.Budgets)
		}
		r = reserve(t, l, "c", eur(0.5), 0)
		if b := budget(t, r.State, "soft"); !r.Allowed || !r.Warning || b.Exceeded || b.Reserved != eur(1.35) {
			t.Fatalf("at 85%%: allowed %v warning %v %+v", r.Allowed, r.Warning, b)
		}
		// Nothing is spent yet: what the warning header, the notifications
		// and the gauge say (holds are worst cases, not spend).
		if b := budget(t, r.State, "soft"); b.Spent != 0 || b.SpentWarn {
			t.Fatalf("with nothing settled: %+v", b)
		}
		r = reserve(t, l, "d", eur(0.1), 0)
		b := budget(t, r.State, "soft")
		if !r.Allowed || !b.Exceeded || !b.Downgrade || b.Ratio < 1.3 || b.Subject != "acme/alice" {
			t.Fatalf("over a downgrade budget: allowed %v %+v", r.Allowed, b)
		}
		// The week started on Monday 10 March.
		if !b.Reset.Equal(time.Date(2025, 3, 17, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("week resets %s", b.Reset)
		}
	},

	// A key's own budget is seeded from what that key spent, not what
	// its workspace's other keys did: after a restart of a memory ledger,
	// or a budget added to the key, it started from zero (a key given
	// 1 EUR a day after spending 2.5 that day could spend 1 more).
	"a key's own budget is seeded from what the key spent": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		b1, b2 := k.pair(t)
		l1 := New(b1, limits(t, time.UTC, nil, nil), Options{Now: clk.Now})
		l2 := New(b2, limits(t, time.UTC, nil, nil), Options{Now: clk.Now})
		extra, err := NewKeyLimits("k1", []BudgetRule{{Name: "day", Limit: eur(3), Period: PeriodDay}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		spent := []Spent{{alice, eur(2.5)}, {Subject{Key: "k9", User: "alice", Team: "ml", Workspace: "acme"}, eur(7)}}
		ctx := context.Background()
		for _, l := range []*Ledger{l1, l2} { // two replicas: once
			if _, _, err := l.Seed(ctx, extra, "key.k1.day", spent, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		st, err := l1.Peek(ctx, &Request{Subject: alice, Extra: extra})
		if err != nil {
			t.Fatal(err)
		}
		if b := budget(t, st, "key.k1.day"); b.Used != eur(2.5) {
			t.Errorf("the key's day used %s, want the 2.5 it spent (not k9's 7)", b.Used)
		}
		r, err := l2.Reserve(ctx, &Request{ID: "over", Subject: alice, Cost: eur(0.6), Extra: extra})
		if err != nil || r.Allowed || r.Refusal.Name != "key.k1.day" {
			t.Errorf("0.6 EUR over the seeded 2.5 of 3: %v %+v", err, r)
		}
	},

	"a key's own limits apply to that key only": func(t *testing.T, k backendKind) {
		clk := newClock(midMinute)
		l := New(k.new(t), limits(t, time.UTC, nil, nil), Options{Now: clk.Now})
		extra, err := NewKeyLimits("k1", []BudgetRule{{Name: "day", Limit: eur(1), Period: PeriodDay}},
			[]RateRule{{Name: "rpm", RequestsPerMinute: 2}})
		if err != nil {
			t.Fatal(err)
		}
		req := Request{Subject: alice, Cost: eur(0.4), Extra: extra}
		for i, want := range []bool{true, true, false} {
			req.ID = fmt.Sprint("x", i)
			r, err := l.Reserve(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			if r.Allowed != want {
				t.Fatalf("request %d: allowed %v, refusal %+v", i, r.Allowed, r.Refusal)
			}
		}
		other := Request{ID: "other", Subject: Subject{Key: "k9", Workspace: "acme"}, Cost: eur(5), Extra: extra}
		if r, err := l.Reserve(context.Background(), &other); err != nil || !r.Allowed {
			t.Fatalf("k1's limits applied to k9: %v %+v", err, r)
		}
	},
}
