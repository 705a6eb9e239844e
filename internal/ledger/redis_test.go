package ledger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestRedisStoppedMidTest: once Redis is gone, every operation says so
// with ErrUnavailable; the failure modes decide whether Reserve refuses
// (budgets, by default) or admits unchecked (open rate limits).
func TestRedisStoppedMidTest(t *testing.T) {
	srv := testsrv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: 1})
	t.Cleanup(func() { client.Close() })
	clk := newClock(midMinute)
	lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodDay}},
		[]RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 100}})
	rateOnly := limits(t, time.UTC, nil, []RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 100}})
	closed := New(NewRedis(client, "{down}:"), lim, Options{Now: clk.Now})
	open := New(NewRedis(client, "{down}:"), rateOnly, Options{Now: clk.Now, FailOpenRateLimits: true})

	held := reserve(t, closed, "before", eur(1), 0)
	if !held.Allowed {
		t.Fatal("refused while Redis is up")
	}
	srv.Stop()

	ctx := context.Background()
	_, err := closed.Reserve(ctx, &Request{ID: "during", Subject: alice, Cost: eur(1)})
	var ue *UnavailableError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) || ue.Op != "reserve" {
		t.Fatalf("reserve with Redis down: %v, want an UnavailableError", err)
	}
	if _, err := closed.Settle(ctx, held, Usage{Cost: eur(1)}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("settle with Redis down: %v", err)
	}
	if _, err := closed.Peek(ctx, &Request{Subject: alice}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("peek with Redis down: %v", err)
	}
	if _, err := closed.Move(ctx, held, "m2", eur(2), 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("move with Redis down: %v", err)
	}
	r, err := open.Reserve(ctx, &Request{ID: "open", Subject: alice})
	if err != nil || !r.Allowed || !r.Unenforced {
		t.Fatalf("open rate limits with Redis down: %v %+v, want admitted unenforced", err, r)
	}
	if _, err := open.Settle(ctx, r, Usage{Tokens: 10}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("settling an unenforced reservation with Redis down: %v", err)
	}
	// A budget fails closed even when rate limits fail open.
	mixed := New(NewRedis(client, "{down}:"), lim, Options{Now: clk.Now, FailOpenRateLimits: true})
	if _, err := mixed.Reserve(ctx, &Request{ID: "mixed", Subject: alice, Cost: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("budget with rate limits open: %v, want refused", err)
	}
}

// TestRedisUnreachableAnswersFast: with the options stellwerk uses
// (RedisOptions), a Redis that refuses connections costs a request at most
// the configured timeout per attempt (one attempt and one retry), not
// go-redis's default of five dials per attempt 100ms apart (0.8 s a
// request, measured end to end before this was set).
func TestRedisUnreachableAnswersFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every dial is refused at once
	const timeout = 250 * time.Millisecond
	opts, err := RedisOptions(&config.Redis{Address: addr, Timeout: timeout}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodDay}}, nil)
	led := New(NewRedis(client, "{down}:"), lim, Options{})
	for i := range 3 {
		start := time.Now()
		_, err := led.Reserve(context.Background(), &Request{ID: fmt.Sprint("r", i), Subject: alice, Cost: eur(1)})
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("reserve against a refused port: %v", err)
		}
		if took > 2*timeout {
			t.Errorf("reserve %d took %s to find Redis unreachable; at most %s (two attempts) expected", i, took, 2*timeout)
		}
	}
}

// TestRedisLostRecord: a reservation Redis no longer knows (restarted
// without persistence) is charged directly at settle, once.
func TestRedisLostRecord(t *testing.T) {
	srv := testsrv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	clk := newClock(midMinute)
	lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodDay}}, nil)
	l := New(NewRedis(client, "{lost}:"), lim, Options{Now: clk.Now})
	r := reserve(t, l, "lost", eur(2), 0)
	if err := client.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if st := settle(t, l, r, eur(1.5), 0); !st.Unmatched {
		t.Fatalf("settlement %+v, want unmatched", st)
	}
	if st := settle(t, l, r, eur(1.5), 0); !st.Duplicate {
		t.Fatalf("second settlement %+v, want duplicate", st)
	}
	if g := budget(t, peek(t, l), "g"); g.Used != eur(1.5) {
		t.Fatalf("budget %+v, want 1.5 EUR charged once", g)
	}
}

// TestRedisStallHoldsNothing: Redis stalls longer than the client's timeout
// (a fork, an fsync, a slow script) while a Reserve is in it. The script
// still runs, and go-redis sends it again. Whatever the caller was told —
// admitted (the retry answered), or unavailable (both timed out) — once it
// releases what it was given nothing is held and nothing charged: the
// retry is the same reservation, and one the caller never got is given
// back when Redis answers again.
func TestRedisStallHoldsNothing(t *testing.T) {
	srv := testsrv.Redis(t)
	opts, err := RedisOptions(&config.Redis{Address: srv.Addr, Timeout: 150 * time.Millisecond}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	staller := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { client.Close(); staller.Close() })
	lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodDay}}, nil)
	for _, stall := range []int{250, 1000} {
		t.Run(fmt.Sprint(stall, "ms"), func(t *testing.T) {
			l := New(NewRedis(client, fmt.Sprintf("{stall%d}:", stall)), lim, Options{})
			t.Cleanup(func() { l.Close(context.Background()) })
			reserve(t, l, "warm", 0, 0) // the script is loaded: EVALSHA from here on
			stalled := make(chan error, 1)
			go func() {
				stalled <- staller.Eval(context.Background(),
					`local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) >= tonumber(ARGV[1]) * 1000 return 1`,
					nil, stall).Err()
			}()
			time.Sleep(30 * time.Millisecond) // the busy script has started
			r, err := l.Reserve(context.Background(), &Request{ID: "req-1", Subject: alice, Model: "m1", Cost: eur(3)})
			if err := <-stalled; err != nil {
				t.Fatal(err)
			}
			switch {
			case err == nil && r.Allowed:
				if err := l.Release(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			case errors.Is(err, ErrUnavailable):
			default:
				t.Fatalf("reserve: %+v %v", r, err)
			}
			var b BudgetState
			for range 100 {
				if b = budget(t, peek(t, l), "g"); b.Reserved == 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if b.Reserved != 0 || b.Used != 0 || l.orphans.pending() != 0 {
				t.Fatalf("after a reserve the caller released or never got: reserved %v used %v, %d waiting", b.Reserved, b.Used, l.orphans.pending())
			}
		})
	}
}

// TestHealth: the store's health as requests find it: reachable until one
// fails, then down with the time of that failure and the requests admitted
// unchecked.
func TestHealth(t *testing.T) {
	srv := testsrv.Redis(t)
	opts, err := RedisOptions(&config.Redis{Address: srv.Addr, Timeout: 200 * time.Millisecond}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	rateOnly := limits(t, time.UTC, nil, []RateRule{{Name: "rpm", Scope: ScopeKey, RequestsPerMinute: 100}})
	l := New(NewRedis(client, "{health}:"), rateOnly, Options{FailOpenRateLimits: true})
	reserve(t, l, "a", 0, 0)
	if h := l.Health(); h.Backend != "redis" || !h.Reachable || h.LastFailureAt != nil || h.AdmittedUnchecked != 0 {
		t.Fatalf("up: %+v", h)
	}
	srv.Stop()
	if r := reserve(t, l, "b", 0, 0); !r.Unenforced {
		t.Fatalf("down: %+v", r)
	}
	if h := l.Health(); h.Reachable || h.LastFailureAt == nil || h.AdmittedUnchecked != 1 {
		t.Fatalf("down: %+v", h)
	}
	mem, err := NewMemory(context.Background(), MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := New(mem, rateOnly, Options{}).Health(); h.Backend != "memory" || !h.Reachable {
		t.Errorf("memory: %+v", h)
	}
}

// An empty password file is refused at start, as an empty password_env is:
// it was taken as no password, and every request met NOAUTH.
func TestRedisPasswordFileEmpty(t *testing.T) {
	env := Env{Getenv: func(string) string { return "" }, ReadFile: func(string) ([]byte, error) { return []byte(" \n"), nil }}
	if _, err := RedisOptions(&config.Redis{Address: "r:6379", PasswordFile: "/run/secrets/redis"}, env); err == nil ||
		!strings.Contains(err.Error(), "state.redis.password_file: the file is empty") {
		t.Fatalf("%v", err)
	}
	if _, err := RedisOptions(&config.Redis{Address: "r:6379", PasswordEnv: "REDIS_PASSWORD"}, env); err == nil {
		t.Fatal("an empty variable accepted")
	}
}

// TestRedisHeldReservationOutlivesQuiet: a held reservation has no expiry
// of its own, so one whose replica died is still there for the first
// sweep after its lease however long nothing ran, and is charged then (a
// helper's finding: after a quiet spell its record had expired, the sweep
// found nothing, and the hold stayed on a total budget for good).
func TestRedisHeldReservationOutlivesQuiet(t *testing.T) {
	srv := testsrv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	clk := newClock(midMinute)
	lim := limits(t, time.UTC, []BudgetRule{{Name: "g", Scope: ScopeGlobal, Limit: eur(10), Period: PeriodTotal}}, nil)
	l := New(NewRedis(client, "{quiet}:"), lim, Options{Now: clk.Now, Lease: 5 * time.Second})
	reserve(t, l, "orphan", eur(2), 0) // its replica dies: never settled
	ctx := context.Background()
	if ttl, err := client.PTTL(ctx, "{quiet}:r:orphan").Result(); err != nil || ttl != -1 {
		t.Fatalf("a held reservation expires by itself (PTTL %v, %v)", ttl, err)
	}
	clk.Add(time.Hour) // nothing ran meanwhile
	if g := budget(t, peek(t, l), "g"); g.Used != eur(2) || g.Reserved != 0 {
		t.Fatalf("after the quiet hour: budget %+v, want the 2 EUR hold charged", g)
	}
	if ttl, _ := client.PTTL(ctx, "{quiet}:r:orphan").Result(); ttl <= 0 {
		t.Errorf("the swept record does not expire (PTTL %v)", ttl)
	}
}

// TestRedisLostStateIsSaid (the upgrade helper's finding): a Redis that
// loses stellwerk's keys (restarted without persistence, flushed) had
// reset every budget's period without a word. The marker the replicas keep
// there is found gone, and said so once by each of them: the one that
// makes it anew, and the other, which finds it made at another time (the
// fleet probe: only one replica said so).
func TestRedisLostStateIsSaid(t *testing.T) {
	srv := testsrv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	type replica struct {
		b    *redisBackend
		logs *observer.ObservedLogs
	}
	var rs []replica
	lost := make(chan struct{}, 4)
	for range 2 {
		core, logs := observer.New(zap.InfoLevel)
		b := &redisBackend{c: client, prefix: "{lost}:"}
		seed := func() { lost <- struct{}{} } // the budgets are seeded again (serve)
		b.onLost.Store(&seed)
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() { defer close(stopped); b.watchState(stop, 20*time.Millisecond, zap.New(core)) }()
		defer func() { close(stop); <-stopped }()
		rs = append(rs, replica{b, logs})
	}
	wait := func(r replica, what string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); r.logs.FilterMessageSnippet(what).Len() < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log: %v", what, r.logs.All())
			}
		}
	}
	for deadline := time.Now().Add(5 * time.Second); rs[0].logs.FilterMessageSnippet("Redis held no stellwerk state").Len()+
		rs[1].logs.FilterMessageSnippet("Redis held no stellwerk state").Len() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the new state not said once: %v %v", rs[0].logs.All(), rs[1].logs.All())
		}
	}
	time.Sleep(100 * time.Millisecond) // checks that find the marker say nothing
	for i, r := range rs {
		if n := r.logs.FilterMessageSnippet("Redis lost stellwerk's state").Len(); n != 0 {
			t.Fatalf("replica %d: %d losses reported with the state there", i, n)
		}
	}
	if err := client.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		wait(r, "Redis lost stellwerk's state", 1)
		time.Sleep(100 * time.Millisecond)
		if n := r.logs.FilterMessageSnippet("Redis lost stellwerk's state").Len(); n != 1 || r.b.lostAt.Load() == 0 {
			t.Errorf("replica %d: the loss reported %d times, want once (lost at %d)", i, n, r.b.lostAt.Load())
		}
	}
	for i := range rs {
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatalf("replica %d's hook was not called on the loss", i)
		}
	}
}

// TestRedisOfAnOlderVersion: a Redis whose counters an older stellwerk
// (without the state marker) wrote is said to be kept, not to start from
// zero (the operator probe read "start from zero" on an upgrade with the
// counters intact).
func TestRedisOfAnOlderVersion(t *testing.T) {
	srv := testsrv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { client.Close() })
	if err := client.HSet(context.Background(), "{older}:c:bmonth:ml:team/acme:1764547200", "u", 5520).Err(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	b := &redisBackend{c: client, prefix: "{older}:"}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { defer close(stopped); b.watchState(stop, time.Hour, zap.New(core)) }()
	defer func() { close(stop); <-stopped }()
	for deadline := time.Now().Add(5 * time.Second); logs.Len() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing said")
		}
	}
	if logs.FilterMessageSnippet("they are kept").Len() != 1 || logs.FilterMessageSnippet("start from zero").Len() != 0 {
		t.Errorf("said: %v", logs.All())
	}
}

// The state check tells the ledger's health whether Redis answered: with
// no traffic, stellwerk_budget_store_up stayed 1 after Redis went down and
// 0 after it came back (the observability probe).
func TestStateCheckSetsHealth(t *testing.T) {
	srv := testsrv.Redis(t)
	up := redis.NewClient(&redis.Options{Addr: srv.Addr})
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { up.Close(); down.Close() })
	for _, tc := range []struct {
		name   string
		c      *redis.Client
		before bool
	}{{"found down", down, true}, {"found back", up, false}} {
		b := &redisBackend{c: tc.c, prefix: "{health}:"}
		l := New(b, nil, Options{})
		if !tc.before {
			l.answered(context.Background(), errors.New("a request found it down"))
		}
		if l.Health().Reachable != tc.before {
			t.Fatalf("%s: reachable %v before the check", tc.name, !tc.before)
		}
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() { defer close(stopped); b.watchState(stop, 20*time.Millisecond, nil) }()
		for deadline := time.Now().Add(5 * time.Second); l.Health().Reachable == tc.before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%s: reachable still %v", tc.name, tc.before)
				break
			}
		}
		close(stop)
		<-stopped
	}
}
