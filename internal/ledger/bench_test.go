package ledger

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// benchLimits is what a production request meets: a per-key daily budget,
// its team's and workspace's monthly ones, a global one, and per-key and
// per-model rate limits: 4 budgets and 6 rate counters, 10 counters in all.
func benchLimits(b *testing.B) *Limits {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	l, err := NewLimits(berlin, []BudgetRule{
		{Name: "each-key-day", Scope: ScopeKey, Limit: eur(1e6), Period: PeriodDay},
		{Name: "team-month", Scope: ScopeTeam, Limit: eur(1e6), Period: PeriodMonth},
		{Name: "ws-month", Scope: ScopeWorkspace, Limit: eur(1e6), Period: PeriodMonth},
		{Name: "global-month", Scope: ScopeGlobal, Limit: eur(1e8), Period: PeriodMonth},
	}, []RateRule{
		{Name: "key", Scope: ScopeKey, RequestsPerMinute: 1e12, TokensPerMinute: 1e15, RequestsPerDay: 1e12, TokensPerDay: 1e15},
		{Name: "model", Scope: ScopeModel, RequestsPerMinute: 1e12, TokensPerMinute: 1e15},
	})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// typicalLimits is what the production-shaped `make bench` stack sets
// (internal/bench): a monthly workspace budget and a per-key rate limit on
// requests and tokens per minute, 3 counters.
func typicalLimits(b *testing.B) *Limits {
	l, err := NewLimits(time.UTC, []BudgetRule{
		{Name: "ws-month", Scope: ScopeWorkspace, Subject: "acme", Limit: eur(1e6), Period: PeriodMonth},
	}, []RateRule{{Name: "per-key", Scope: ScopeKey, RequestsPerMinute: 1e12, TokensPerMinute: 1e15}})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkReserveSettle is the ledger's cost per request: one Reserve
// after the decision and one Settle when usage is known, one request at a
// time (the latency a request sees; p50 and p99 are reported), and from
// many goroutines (throughput).
func BenchmarkReserveSettle(b *testing.B) {
	backends := map[string]func(b *testing.B) Backend{
		"memory": func(b *testing.B) Backend {
			m, err := NewMemory(context.Background(), MemoryOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return m
		},
		"redis": func(b *testing.B) Backend {
			srv := testsrv.Redis(b)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 32})
			b.Cleanup(func() { c.Close() })
			return NewRedis(c, "{bench}:")
		},
	}
	for _, run := range []struct {
		name, limits string
	}{{"memory", "10-counters"}, {"memory", "3-counters"}, {"redis", "10-counters"}, {"redis", "3-counters"}} {
		backend := backends[run.name](b)
		lim := benchLimits(b)
		if run.limits == "3-counters" {
			lim = typicalLimits(b)
		}
		name := run.name + "/" + run.limits
		l := New(backend, lim, Options{})
		req := Request{Subject: Subject{Key: "k1", User: "alice", Team: "ml", Workspace: "acme"}, Model: "gpt-4o-mini",
			Cost: eur(0.0123), Tokens: 4096}
		var seq atomic.Int64
		b.Run(name+"/serial", func(b *testing.B) {
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = name + "-s-" + strconv.Itoa(int(seq.Add(1)))
			}
			total, reserveLat, settleLat := make([]time.Duration, b.N), make([]time.Duration, b.N), make([]time.Duration, b.N)
			ctx := context.Background()
			stats := serverStats(b, backend)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				r := req
				r.ID = ids[i]
				res, err := l.Reserve(ctx, &r)
				if err != nil || !res.Allowed {
					b.Fatalf("reserve: %v %+v", err, res)
				}
				t1 := time.Now()
				if _, err := l.Settle(ctx, res, Usage{Cost: eur(0.004), Tokens: 900}); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				total[i], reserveLat[i], settleLat[i] = t2.Sub(t0), t1.Sub(t0), t2.Sub(t1)
			}
			b.StopTimer()
			b.ReportMetric(p50(total), "p50-µs")
			b.ReportMetric(p50(reserveLat), "reserve-p50-µs")
			b.ReportMetric(p50(settleLat), "settle-p50-µs")
			slices.Sort(total)
			b.ReportMetric(float64(total[len(total)*99/100].Nanoseconds())/1e3, "p99-µs")
			if stats != nil {
				// Time inside Redis running the two scripts, from INFO commandstats.
				b.ReportMetric(2*stats(), "server-µs")
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					r := req
					r.ID = name + "-p-" + strconv.Itoa(int(seq.Add(1)))
					res, err := l.Reserve(ctx, &r)
					if err != nil || !res.Allowed {
						b.Fatalf("reserve: %v %+v", err, res)
					}
					if _, err := l.Settle(ctx, res, Usage{Cost: eur(0.004), Tokens: 900}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func p50(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds()) / 1e3
}

// serverStats resets Redis's command statistics and returns a function that
// reads the mean time of one script call (EVALSHA) inside Redis, in µs; nil
// for the memory backend.
func serverStats(b *testing.B, backend Backend) func() float64 {
	rb, ok := backend.(*redisBackend)
	if !ok {
		return nil
	}
	ctx := context.Background()
	if err := rb.c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	return func() float64 {
		info, err := rb.c.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
				for _, f := range strings.Split(rest, ",") {
					if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
						x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
						return x
					}
				}
			}
		}
		return 0
	}
}

// BenchmarkRedisRoundTrip is the floor under the Redis figures: one PING
// on the same loopback connection.
func BenchmarkRedisRoundTrip(b *testing.B) {
	srv := testsrv.Redis(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(p50(lat), "p50-µs")
}

// BenchmarkPolicyPeek is what the edge adds before routing a request that
// meets a downgrade budget: the Downgrades check and one Peek (the 10
// counters of benchLimits, one of the budgets a downgrade budget); and the
// check alone, for a request that meets none (what every other request
// pays).
func BenchmarkPolicyPeek(b *testing.B) {
	lim := benchLimits(b)
	budgets := slices.Clone(lim.Budgets())
	budgets[0].Downgrade = true
	withDowngrade, err := NewLimits(lim.Location(), budgets, lim.RateLimits())
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Subject: Subject{Key: "k1", User: "alice", Team: "ml", Workspace: "acme"}}
	b.Run("check-only", func(b *testing.B) {
		l := New(nil, lim, Options{})
		b.ReportAllocs()
		for b.Loop() {
			if l.Downgrades(&req) {
				b.Fatal("no downgrade budget is configured")
			}
		}
	})
	for _, name := range []string{"memory", "redis"} {
		var backend Backend
		if name == "memory" {
			backend, err = NewMemory(context.Background(), MemoryOptions{})
			if err != nil {
				b.Fatal(err)
			}
		} else {
			srv := testsrv.Redis(b)
			c := redis.NewClient(&redis.Options{Addr: srv.Addr})
			b.Cleanup(func() { c.Close() })
			backend = NewRedis(c, "{peek}:")
		}
		l := New(backend, withDowngrade, Options{})
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			lat := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if !l.Downgrades(&req) {
					b.Fatal("the downgrade budget does not apply")
				}
				st, err := l.Peek(ctx, &req)
				if err != nil || len(st.Budgets) != 4 {
					b.Fatalf("peek: %v %+v", err, st)
				}
				lat = append(lat, time.Since(t0))
			}
			b.ReportMetric(p50(lat), "p50-µs")
		})
	}
}

// BenchmarkReserveManyRules is BenchmarkReserveSettle's memory/10-counters
// request in a config of a large company: 500 budgets of other teams and
// workspaces and 300 rate limits of other keys beside the ones it meets
// (the tenancy probe: each request scanned and allocated for every rule).
func BenchmarkReserveManyRules(b *testing.B) {
	var budgets []BudgetRule
	var rates []RateRule
	for i := range 250 {
		budgets = append(budgets, BudgetRule{Name: "ws-" + strconv.Itoa(i), Scope: ScopeWorkspace, Subject: "ws" + strconv.Itoa(i), Limit: eur(1e6), Period: PeriodMonth},
			BudgetRule{Name: "team-" + strconv.Itoa(i), Scope: ScopeTeam, Subject: "ws" + strconv.Itoa(i) + "/t", Limit: eur(1e6), Period: PeriodMonth})
	}
	for i := range 300 {
		rates = append(rates, RateRule{Name: "key-" + strconv.Itoa(i), Scope: ScopeKey, Subject: "k-" + strconv.Itoa(i), RequestsPerMinute: 1e12})
	}
	base := benchLimits(b)
	lim, err := NewLimits(base.loc, append(slices.Clone(base.budgets), budgets...), append(slices.Clone(base.rates), rates...))
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewMemory(context.Background(), MemoryOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := New(m, lim, Options{})
	req := Request{Subject: Subject{Key: "k1", User: "alice", Team: "ml", Workspace: "acme"}, Model: "gpt-4o-mini", Cost: eur(0.0123), Tokens: 4096}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := req
		r.ID = "many-" + strconv.Itoa(i)
		i++
		res, err := l.Reserve(ctx, &r)
		if err != nil || !res.Allowed || len(res.Budgets) != 4 {
			b.Fatalf("reserve: %v %+v", err, res)
		}
		if _, err := l.Settle(ctx, res, Usage{Cost: eur(0.004), Tokens: 900}); err != nil {
			b.Fatal(err)
		}
	}
}
