package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/notify"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// claimsBackends opens the three places told events are kept, each on a
// real server: Redis (a fleet's ledger), SQLite and PostgreSQL (the state
// store). Each entry opens a new client on the same backend, as another
// replica, or the same one after a restart, would.
func claimsBackends(t *testing.T) map[string]func() notify.Claims {
	t.Helper()
	ctx := context.Background()
	out := map[string]func() notify.Claims{}
	rs := testsrv.Redis(t)
	out["redis"] = func() notify.Claims {
		c := redis.NewClient(&redis.Options{Addr: rs.Addr})
		t.Cleanup(func() { c.Close() })
		return ledger.New(ledger.NewRedis(c, "{t}:"), nil, ledger.Options{})
	}
	// The state store's table, on a new connection to the database each time.
	onStore := func(open func() (*store.DB, error)) func() notify.Claims {
		return func() notify.Claims {
			db, err := open()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			s, err := spend.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			return s.Notices()
		}
	}
	path := filepath.Join(t.TempDir(), "state")
	out["sqlite"] = onStore(func() (*store.DB, error) { return store.OpenSQLite(ctx, path) })
	dsn := testsrv.PostgresDSN(t)
	out["postgres"] = onStore(func() (*store.DB, error) { return store.OpenPostgres(ctx, dsn) })
	return out
}

// TestClaimsConformance: every backend marks a key once until it runs out
// (a total's never does), and of many claims at once from two clients
// exactly one is first.
func TestClaimsConformance(t *testing.T) {
	ctx := context.Background()
	for name, open := range claimsBackends(t) {
		t.Run(name, func(t *testing.T) {
			a, b := open(), open()
			claim := func(c notify.Claims, key string, until time.Time) bool {
				t.Helper()
				first, err := c.Claim(ctx, key, until)
				if err != nil {
					t.Fatal(err)
				}
				return first
			}
			hour := time.Now().Add(time.Hour)
			if !claim(a, "budget_warning/team/acme", hour) || claim(b, "budget_warning/team/acme", hour) || claim(a, "budget_warning/team/acme", hour) {
				t.Fatal("a period's mark is not claimed exactly once")
			}
			if !claim(b, "budget_exhausted/team/acme", hour) {
				t.Fatal("another kind is another mark")
			}
			if !claim(a, "budget_warning/total", time.Time{}) || claim(b, "budget_warning/total", time.Time{}) {
				t.Fatal("a total's mark is not claimed exactly once")
			}
			// A mark that ran out is claimed again.
			soon := time.Now().Add(300 * time.Millisecond)
			if !claim(a, "budget_warning/short", soon) || claim(b, "budget_warning/short", soon) {
				t.Fatal("the short mark is not claimed exactly once")
			}
			time.Sleep(time.Until(soon) + 50*time.Millisecond)
			if !claim(b, "budget_warning/short", time.Now().Add(time.Hour)) {
				t.Fatal("a mark that ran out is not claimed again")
			}
			var firsts atomic.Int32
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := a
					if i%2 == 1 {
						c = b
					}
					first, err := c.Claim(ctx, "budget_warning/race", hour)
					if err != nil {
						t.Error(err)
					}
					if first {
						firsts.Add(1)
					}
				}()
			}
			wg.Wait()
			if firsts.Load() != 1 {
				t.Fatalf("%d of 16 concurrent claims were first", firsts.Load())
			}
		})
	}
}

// TestToldOnceAcrossReplicasAndRestarts: two replicas' webhooks on one
// backend post a budget's warning once between them, and a replica started
// again does not post it a second time; the next period is told again.
func TestToldOnceAcrossReplicasAndRestarts(t *testing.T) {
	for name, open := range claimsBackends(t) {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, string(b))
				mu.Unlock()
			}))
			defer srv.Close()
			now := time.Now().UTC()
			ev := notify.Event{Kind: "budget_warning", Budget: "team-day", Subject: "acme/ml", Period: "day", Ratio: 0.85,
				Limit: 10, Used: 8.5, At: now, Resets: now.Add(6 * time.Hour)}
			r1 := notify.New(srv.URL, nil, "r1", open(), zap.NewNop())
			r2 := notify.New(srv.URL, nil, "r2", open(), zap.NewNop())
			r1.Tell(ev)
			r2.Tell(ev)
			r1.Close()
			r2.Close()
			restarted := notify.New(srv.URL, nil, "r1", open(), zap.NewNop())
			restarted.Tell(ev)
			next := ev
			next.At, next.Resets = ev.Resets.Add(time.Minute), ev.Resets.Add(24*time.Hour)
			restarted.Tell(next)
			restarted.Close()
			if len(got) != 2 {
				t.Fatalf("posted %d events, want the warning once and the next period's once:\n%q", len(got), got)
			}
		})
	}
}

// TestUnreachableClaimsStillPost: when the shared place cannot answer, the
// event is posted (a receiver may get it twice, but does not miss it).
func TestUnreachableClaimsStillPost(t *testing.T) {
	var posted atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { posted.Add(1) }))
	defer srv.Close()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	w := notify.New(srv.URL, nil, "r1", ledger.New(ledger.NewRedis(c, "x:"), nil, ledger.Options{}), zap.NewNop())
	now := time.Now()
	w.Tell(notify.Event{Kind: "budget_exhausted", Budget: "b", At: now, Resets: now.Add(time.Hour)})
	w.Close()
	if posted.Load() != 1 {
		t.Fatalf("posted %d, want 1", posted.Load())
	}
}
