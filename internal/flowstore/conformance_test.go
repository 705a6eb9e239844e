package flowstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

var env = &flow.Env{Models: []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet"}, Providers: []string{"openai", "anthropic"},
	Budgets: []string{"support-month"}}

// doc is a small route sending everything to model.
func doc(name, model string) []byte {
	return fmt.Appendf(nil, "route: %s\nnodes:\n  - id: m\n    model: %s\n", name, model)
}

func mustFlow(t testing.TB, data []byte) *flow.Flow {
	t.Helper()
	f, err := flow.Load("test", data, env)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// conform runs f against SQLite and a real PostgreSQL; open returns
// another Store on the same database each call, as a second replica (or
// the CLI) would have.
func conform(t *testing.T, f func(t *testing.T, open func() *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		f(t, func() *Store {
			db, err := store.OpenSQLite(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return openOn(t, db)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testsrv.PostgresDSN(t)
		f(t, func() *Store {
			db, err := store.OpenPostgres(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return openOn(t, db)
		})
	})
}

func openOn(t *testing.T, db *store.DB) *Store {
	t.Helper()
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVersionsDeployRollback(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		v1, created, err := s.Create(ctx, mustFlow(t, doc("support", "gpt-4o")), "ana", "first", "api")
		if err != nil || !created || v1.Version != 1 || !strings.HasPrefix(v1.Hash, "sha256:") || v1.Live {
			t.Fatalf("create: %+v %v %v", v1, created, err)
		}
		// The same text is the same version, whoever sends it.
		again, created, err := s.Create(ctx, mustFlow(t, doc("support", "gpt-4o")), "bob", "again", "cli")
		if err != nil || created || again.Version != 1 || again.Author != "ana" {
			t.Fatalf("dedupe: %+v %v %v", again, created, err)
		}
		v2, _, _ := s.Create(ctx, mustFlow(t, doc("support", "gpt-4o-mini")), "bob", "cheaper", "cli")
		v3, _, _ := s.Create(ctx, mustFlow(t, doc("support", "claude-sonnet")), "bob", "try claude", "cli")
		if v2.Version != 2 || v3.Version != 3 {
			t.Fatalf("versions %d %d", v2.Version, v3.Version)
		}
		if _, err := s.Get(ctx, "support", 0); !errors.Is(err, ErrNotDeployed) {
			t.Errorf("live before a deploy: %v", err)
		}
		if _, err := s.Rollback(ctx, "support", 0, "x", nil); !errors.Is(err, ErrNotDeployed) {
			t.Errorf("rollback before a deploy: %v", err)
		}
		d, err := s.Deploy(ctx, "support", 3, "ana")
		if err != nil || d.From != 0 || d.To != 3 {
			t.Fatalf("deploy: %+v %v", d, err)
		}
		// Another replica reads the same.
		s2 := open()
		got, err := s2.Get(ctx, "support", 0)
		if err != nil || got.Version != 3 || !got.Live || got.Document != string(doc("support", "claude-sonnet")) || got.Message != "try claude" {
			t.Fatalf("live: %+v %v", got, err)
		}
		// Nothing was live before v3 (v1 and v2 never were): a rollback
		// without a version has nowhere to go; one named goes there.
		if _, err := s2.Rollback(ctx, "support", 0, "bob", nil); !errors.Is(err, ErrNoEarlier) {
			t.Errorf("rollback past the first deploy: %v", err)
		}
		d, err = s2.Rollback(ctx, "support", 2, "bob", nil)
		if err != nil || d.From != 3 || d.To != 2 || d.Action != "rollback" || d.Reason != "" {
			t.Fatalf("rollback: %+v %v", d, err)
		}
		if d, err = s.Rollback(ctx, "support", 1, "bob", nil); err != nil || d.To != 1 {
			t.Fatalf("rollback to 1: %+v %v", d, err)
		}
		if _, err := s.Rollback(ctx, "support", 3, "bob", nil); !errors.Is(err, ErrNoEarlier) {
			t.Errorf("rollback forward: %v", err)
		}
		if _, err := s.Deploy(ctx, "support", 9, "x"); !errors.Is(err, ErrNoVersion) {
			t.Errorf("deploy of a missing version: %v", err)
		}
		if _, err := s.Deploy(ctx, "nope", 1, "x"); !errors.Is(err, ErrNoRoute) {
			t.Errorf("deploy of a missing route: %v", err)
		}
		if _, err := s.Get(ctx, "support", 7); !errors.Is(err, ErrNoVersion) {
			t.Errorf("get of a missing version: %v", err)
		}
		// Deploying the live version again records nothing.
		if _, err := s.Deploy(ctx, "support", 1, "x"); err != nil {
			t.Fatal(err)
		}
		h, err := s.History(ctx, "support")
		if err != nil || len(h) != 3 || h[0].To != 1 || h[1].To != 2 || h[2].To != 3 || h[2].By != "ana" {
			t.Fatalf("history %+v %v", h, err)
		}
		vs, err := s.Versions(ctx, "support")
		if err != nil || len(vs) != 3 || vs[0].Version != 3 || vs[2].Version != 1 || !vs[2].Live || vs[0].Document != "" {
			t.Fatalf("versions %+v %v", vs, err)
		}
		s.Create(ctx, mustFlow(t, doc("billing", "gpt-4o")), "x", "", "api")
		rs, err := s.Routes(ctx)
		if err != nil || len(rs) != 2 || rs[0].Name != "billing" || rs[0].Live != 0 || rs[1].Live != 1 || rs[1].Latest != 3 || rs[1].Versions != 3 {
			t.Fatalf("routes %+v %v", rs, err)
		}
	})
}

// TestRollbackToThePreviousLive: a rollback without a version goes to the
// version live before the current one, from the deploy history, not to the
// newest version numbered below it; one that does not load is skipped, and
// the answer says so (the routes probe: with support@4 live and support@3
// broken, `routes rollback support` failed on support@3; after a deploy of
// support@2 from support@4, a rollback went to support@1).
func TestRollbackToThePreviousLive(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		docs := [][]byte{doc("support", "gpt-4o"), doc("support", "gpt-4o-mini"), doc("support", "claude-sonnet"),
			append(doc("support", "gpt-4o"), "# v4\n"...)}
		for _, d := range docs {
			if _, _, err := s.Create(ctx, mustFlow(t, d), "ana", "", "api"); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []int64{1, 3, 4} {
			if _, err := s.Deploy(ctx, "support", v, "ana"); err != nil {
				t.Fatal(err)
			}
		}
		// The config lost claude-sonnet: support@3, live before support@4,
		// no longer loads; the rollback goes to support@1, live before it.
		noClaude := &flow.Env{Models: []string{"gpt-4o", "gpt-4o-mini"}, Providers: env.Providers, Budgets: env.Budgets}
		d, err := open().Rollback(ctx, "support", 0, "bob", Loads(noClaude))
		if err != nil || d.From != 4 || d.To != 1 || len(d.Skipped) != 1 || d.Skipped[0].Version != 3 ||
			!strings.Contains(d.Skipped[0].Error, `unknown model "claude-sonnet"`) ||
			d.Reason != "support@1 is the most recent version live before support@4 that loads (skipped support@3: does not load)" {
			t.Fatalf("rollback past a version that does not load: %+v %v", d, err)
		}
		// Deploying support@2 from support@4 and rolling back goes back to
		// support@4, not to support@1 (the newest below 2).
		if _, err := s.Deploy(ctx, "support", 4, "ana"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Deploy(ctx, "support", 2, "ana"); err != nil {
			t.Fatal(err)
		}
		d, err = open().Rollback(ctx, "support", 0, "bob", Loads(env))
		if err != nil || d.From != 2 || d.To != 4 || d.Skipped != nil || d.Reason != "support@4 was live before support@2" {
			t.Fatalf("rollback after a deploy of an older version: %+v %v", d, err)
		}
		// A second rollback undoes the first: support@2 was live before.
		if d, err = s.Rollback(ctx, "support", 0, "bob", Loads(env)); err != nil || d.To != 2 {
			t.Fatalf("second rollback: %+v %v", d, err)
		}
		// When none of the versions live before loads, nothing changes.
		none := func(Version) error { return errors.New("gone") }
		_, err = s.Rollback(ctx, "support", 0, "bob", none)
		var nl *NoneLoadsError
		if !errors.As(err, &nl) || len(nl.Skipped) != 3 || nl.Skipped[0].Version != 4 || nl.Skipped[1].Version != 1 || nl.Skipped[2].Version != 3 ||
			!strings.Contains(err.Error(), "no version live before support@2 loads") || !strings.Contains(err.Error(), "support@3: gone") {
			t.Fatalf("rollback with nothing that loads: %v", err)
		}
		if r, _ := s.Route(ctx, "support"); r.Live != 2 {
			t.Errorf("live after a refused rollback: %d", r.Live)
		}
		// A version named is still checked against the live one.
		if _, err := s.Rollback(ctx, "support", 3, "bob", nil); !errors.Is(err, ErrNoEarlier) {
			t.Errorf("rollback forward by number: %v", err)
		}
		if d, err := s.Rollback(ctx, "support", 1, "bob", nil); err != nil || d.To != 1 || d.Reason != "" {
			t.Errorf("rollback by number: %+v %v", d, err)
		}
	})
}

// Concurrent writers get distinct, gapless version numbers.
func TestConcurrentCreate(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		a, b := open(), open()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 10 {
			for _, s := range []*Store{a, b} {
				wg.Go(func() {
					models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet"}
					data := fmt.Appendf(doc("r", models[i%3]), "# %p %d\n", s, i)
					if _, _, err := s.Create(ctx, mustFlow(t, data), "x", "", "api"); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		vs, _ := a.Versions(ctx, "r")
		if len(vs) != 20 || vs[0].Version != 20 || vs[19].Version != 1 {
			t.Errorf("%d versions, newest %d", len(vs), vs[0].Version)
		}
	})
}

func TestTableFollowsDeploys(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		tb := NewTable(open(), env, nil)
		if err := tb.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.Resolve("support", 0); !errors.Is(err, ErrNoRoute) {
			t.Errorf("unknown route: %v", err)
		}
		s.Create(ctx, mustFlow(t, doc("support", "gpt-4o")), "x", "", "api")
		s.Create(ctx, mustFlow(t, doc("support", "gpt-4o-mini")), "x", "", "api")
		tb.Refresh(ctx)
		if _, err := tb.Resolve("support", 0); !errors.Is(err, ErrNotDeployed) {
			t.Errorf("nothing deployed: %v", err)
		}
		// A pinned version serves before anything is live.
		f, err := tb.Resolve("support", 2)
		if err != nil || f.Version != 2 || target(f) != "gpt-4o-mini" {
			t.Fatalf("pinned: %v %v", f, err)
		}
		if _, err := tb.Resolve("support", 5); !errors.Is(err, ErrNoVersion) {
			t.Errorf("missing pinned: %v", err)
		}
		s.Deploy(ctx, "support", 1, "x")
		tb.Refresh(ctx)
		if f, _ := tb.Resolve("support", 0); f == nil || f.Version != 1 || target(f) != "gpt-4o" {
			t.Fatalf("live after deploy: %v", f)
		}
		s.Deploy(ctx, "support", 2, "x")
		tb.Refresh(ctx)
		if f, _ := tb.Resolve("support", 0); f.Version != 2 {
			t.Fatalf("live after second deploy: %d", f.Version)
		}
		if got := tb.Live(); got["support"] != 2 {
			t.Errorf("live %v", got)
		}
		// Check names the serving version a config would break, before
		// it is in force (serve refuses such a reload), and only it.
		if errs := tb.Check(&flow.Env{Models: []string{"gpt-4o", "gpt-4o-mini"}}); len(errs) != 0 {
			t.Errorf("check under a config with both models: %v", errs)
		}
		if errs := tb.Check(&flow.Env{Models: []string{"gpt-4o"}}); len(errs) != 1 || !strings.Contains(errs[0].Error(), "support@2") ||
			!strings.Contains(errs[0].Error(), "gpt-4o-mini") {
			t.Errorf("check under a config without gpt-4o-mini: %v", errs)
		}
		// A config that drops the live version's model: the last good
		// flow keeps serving, and the table says why.
		tb.SetEnv(&flow.Env{Models: []string{"gpt-4o"}})
		if err := tb.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if f, _ := tb.Resolve("support", 0); f == nil || f.Version != 2 {
			t.Errorf("broken live version stopped serving")
		}
		if b := tb.Broken(); b["support"] == nil || !strings.Contains(b["support"].Error(), "gpt-4o-mini") {
			t.Errorf("broken %v", b)
		}
		if b := tb.BrokenVersions(); len(b) != 1 || b["support"] != 2 {
			t.Errorf("broken versions %v", b)
		}
		// A replica starting under that config has no last good flow: the
		// route is unavailable, and the log does not claim one serves.
		core, logs := observer.New(zap.ErrorLevel)
		fresh := NewTable(open(), &flow.Env{Models: []string{"gpt-4o"}}, zap.New(core))
		if err := fresh.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if f, err := fresh.Resolve("support", 0); f != nil || err == nil {
			t.Errorf("a start under the config: %v %v", f, err)
		}
		if l := logs.All(); len(l) != 1 || !strings.Contains(l[0].Message, "no version of it was loaded before") {
			t.Errorf("a start under the config logs %+v", l)
		}
		// Pinning the live version is the live flow, broken or not.
		if f, err := tb.Resolve("support", 2); err != nil || f.Version != 2 {
			t.Errorf("pinned live version: %v", err)
		}
		if f, err := tb.Resolve("support", 1); err != nil || target(f) != "gpt-4o" {
			t.Errorf("pinned v1 under the new config: %v", err)
		}
		// A version that does not load under the new config, not live.
		s.Create(ctx, mustFlow(t, doc("support", "claude-sonnet")), "x", "", "api")
		tb.Refresh(ctx)
		if _, err := tb.Resolve("support", 3); err == nil || !strings.Contains(err.Error(), "support@3") {
			t.Errorf("pinned version that no longer loads: %v", err)
		}
	})
}

func target(f *flow.Flow) string {
	return f.Evaluate(context.Background(), &flow.Input{}).Targets[0].Model
}

// Two replicas' tables polling the store both switch within a second of a
// deploy and of a rollback, with no request seeing anything but v1 or v2.
func TestReplicasSwitchWithinASecond(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := open()
		s.Create(ctx, mustFlow(t, doc("support", "gpt-4o")), "x", "", "api")
		s.Deploy(ctx, "support", 1, "x")
		s.Create(ctx, mustFlow(t, doc("support", "gpt-4o-mini")), "x", "", "api")
		tables := []*Table{NewTable(open(), env, nil), NewTable(open(), env, nil)}
		var wg sync.WaitGroup
		for _, tb := range tables {
			if err := tb.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { tb.Run(ctx, 250*time.Millisecond) })
		}
		defer wg.Wait()
		defer cancel()
		wait := func(want int64) time.Duration {
			start := time.Now()
			for _, tb := range tables {
				for {
					f, err := tb.Resolve("support", 0)
					if err != nil || (f.Version != 1 && f.Version != 2) {
						t.Fatalf("resolve: %v %v", f, err)
					}
					if f.Version == want {
						break
					}
					if time.Since(start) > 3*time.Second {
						t.Fatalf("replica still on v%d", f.Version)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			return time.Since(start)
		}
		s.Deploy(ctx, "support", 2, "x")
		if d := wait(2); d > time.Second {
			t.Errorf("deploy took %v to reach both replicas", d)
		}
		s.Rollback(ctx, "support", 0, "x", nil)
		if d := wait(1); d > time.Second {
			t.Errorf("rollback took %v to reach both replicas", d)
		}
	})
}

// TestTableFollowsARestore: a database restored from an older backup and
// written to again before a replica's next poll, up to or past the
// generation the replica had loaded, is reloaded whole. Before, the
// replica took the same generation for the same routes: it kept serving
// a version the store no longer had, in place of the one deployed under
// its number since, until it restarted.
func TestTableFollowsARestore(t *testing.T) {
	for name, more := range map[string]int{"catching up with the replica": 0, "passing it": 1} {
		t.Run(name, func(t *testing.T) {
			conform(t, func(t *testing.T, open func() *Store) {
				ctx := context.Background()
				s := open()
				core, logs := observer.New(zap.WarnLevel)
				tb := NewTable(open(), env, zap.New(core))
				mustDeploy := func(model string) {
					t.Helper()
					v, _, err := s.Create(ctx, mustFlow(t, doc("support", model)), "x", "", "api")
					if err != nil {
						t.Fatal(err)
					}
					if _, err := s.Deploy(ctx, "support", v.Version, "x"); err != nil {
						t.Fatal(err)
					}
				}
				mustDeploy("gpt-4o")
				tables, err := s.db.Tables(ctx)
				if err != nil {
					t.Fatal(err)
				}
				restore := testsrv.Backup(t, s.db.SQL, tables...)
				mustDeploy("claude-sonnet")
				if err := tb.Refresh(ctx); err != nil {
					t.Fatal(err)
				}

				// The replica does not poll until the store is past it again;
				// version 2 is another document now.
				restore()
				mustDeploy("gpt-4o-mini")
				for range more {
					s.Create(ctx, mustFlow(t, doc("billing", "gpt-4o")), "x", "", "api")
				}
				if err := tb.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				for _, version := range []int64{0, 2} {
					f, err := tb.Resolve("support", version)
					if err != nil {
						t.Fatalf("support@%d: %v", version, err)
					}
					if f.Version != 2 || target(f) != "gpt-4o-mini" {
						t.Errorf("support@%d: version %d on %s, want version 2 on gpt-4o-mini (deployed since the restore)", version, f.Version, target(f))
					}
				}
				if n := logs.FilterMessageSnippet("route store went back").Len(); n != 1 {
					t.Errorf("%d warnings that the store went back, want 1: %v", n, logs.All())
				}
			})
		})
	}
}

// With the store gone the table keeps serving what it loaded.
func TestTableStoreDown(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := openOn(t, db)
	s.Create(ctx, mustFlow(t, doc("support", "gpt-4o")), "x", "", "api")
	s.Deploy(ctx, "support", 1, "x")
	tb := NewTable(s, env, nil)
	if err := tb.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := tb.Refresh(ctx); err == nil {
		t.Fatal("refresh of a closed store succeeded")
	}
	if ok, _ := tb.Healthy(); ok {
		t.Error("healthy while the store is down")
	}
	if f, err := tb.Resolve("support", 0); err != nil || f.Version != 1 {
		t.Errorf("resolve with the store down: %v", err)
	}
}

func TestSyncDir(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		dir := t.TempDir()
		write := func(name string, data []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("support.yaml", doc("support", "gpt-4o"))
		write("billing.yaml", doc("invoices", "gpt-4o"))                                  // misnamed
		write("broken.yml", []byte("route: broken\nnodes:\n  - {id: m, model: gpt-9}\n")) // does not load
		write("README.md", []byte("not a route"))
		res, err := SyncDir(ctx, s, dir, env, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 3 || res[0].Error == "" || !strings.Contains(res[0].Error, "must be named billing") ||
			!strings.Contains(res[1].Error, "broken.yml:3") || !res[2].Deployed || res[2].Version != 1 || res[2].From != 0 || res[2].Action() != "file" {
			t.Fatalf("sync: %+v", res)
		}
		// Unchanged files change nothing, on this replica or another.
		for _, st := range []*Store{s, open()} {
			at, _, _ := st.Generation(ctx, store.Mark{})
			res, _ = SyncDir(ctx, st, dir, env, true)
			if res[2].Changed {
				t.Errorf("unchanged file synced again: %+v", res[2])
			}
			if now, _, _ := st.Generation(ctx, store.Mark{}); now != at {
				t.Errorf("an unchanged sync bumped the generation")
			}
		}
		// An edit is a new version, deployed.
		write("support.yaml", doc("support", "gpt-4o-mini"))
		res, _ = SyncDir(ctx, s, dir, env, true)
		// The version it replaced is the audit record's before.
		if !res[2].Changed || res[2].Version != 2 || res[2].From != 1 || res[2].Action() != "file" {
			t.Fatalf("edit: %+v", res[2])
		}
		// A rollback through the API holds while the file stays as it is.
		s.Rollback(ctx, "support", 0, "ops", nil)
		SyncDir(ctx, s, dir, env, true)
		if r, _ := s.Route(ctx, "support"); r.Live != 1 {
			t.Errorf("the sync undid a rollback: live %d", r.Live)
		}
		// Reverting the file to v1's text deploys v1 again, no new version.
		write("support.yaml", doc("support", "gpt-4o"))
		write("other.yaml", doc("other", "gpt-4o"))
		if _, err := SyncDir(ctx, s, dir, env, false); err != nil {
			t.Fatalf("revert: %v", err)
		}
		if r, _ := s.Route(ctx, "support"); r.Live != 1 || r.Latest != 2 {
			t.Errorf("revert: %+v", r)
		}
		if r, _ := s.Route(ctx, "other"); r.Live != 0 || r.Latest != 1 {
			t.Errorf("without deploy the file is a version, not live: %+v", r)
		}
	})
}

// Replicas starting together sync the same file into one version.
func TestSyncRace(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		stores := []*Store{open(), open(), open()}
		f := mustFlow(t, doc("support", "gpt-4o"))
		var wg sync.WaitGroup
		for _, s := range stores {
			wg.Go(func() {
				if _, _, _, _, err := s.SyncFile(ctx, f, "routes/support.yaml", time.Time{}, true); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		r, _ := stores[0].Route(ctx, "support")
		h, _ := stores[0].History(ctx, "support")
		if r.Latest != 1 || r.Live != 1 || len(h) != 1 {
			t.Errorf("route %+v, %d deploys", r, len(h))
		}
	})
}

// A replica restarted with an older copy of a route file (its ConfigMap not
// caught up) does not roll the fleet back to the version that copy holds;
// reverting the file on purpose (a newer file) does (found by a helper:
// live went back to 1 fleet-wide).
func TestSyncStaleCopy(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		a, b := open(), open()
		v1, v2 := mustFlow(t, doc("support", "gpt-4o")), mustFlow(t, doc("support", "claude-sonnet"))
		now := time.Now()
		sync := func(s *Store, f *flow.Flow, modified time.Time) (changed, stale bool) {
			t.Helper()
			_, _, changed, stale, err := s.SyncFile(ctx, f, "routes/support.yaml", modified, true)
			if err != nil {
				t.Fatal(err)
			}
			return changed, stale
		}
		sync(a, v1, now.Add(-2*time.Hour))
		sync(a, v2, now.Add(-time.Hour)) // the file's new content: v2 live
		if changed, stale := sync(b, v1, now.Add(-2*time.Hour)); changed || !stale {
			t.Errorf("the old copy: changed %v, stale %v", changed, stale)
		}
		if r, _ := b.Route(ctx, "support"); r.Live != 2 {
			t.Fatalf("an old copy rolled the route back: live %d", r.Live)
		}
		if changed, stale := sync(b, v1, now.Add(time.Minute)); !changed || stale {
			t.Errorf("the file reverted: changed %v, stale %v", changed, stale)
		}
		if r, _ := b.Route(ctx, "support"); r.Live != 1 {
			t.Fatalf("a revert of the file did not deploy: live %d", r.Live)
		}
	})
}
