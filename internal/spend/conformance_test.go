package spend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// backends opens an empty spend ledger on SQLite and on a real PostgreSQL:
// every test of this file runs against both.
func backends(t *testing.T) map[store.Dialect]*Store {
	t.Helper()
	ctx := context.Background()
	lite, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out := map[store.Dialect]*Store{}
	if out[store.SQLite], err = Open(ctx, lite); err != nil {
		t.Fatal(err)
	}
	pg, err := store.OpenPostgres(ctx, testsrv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	if out[store.Postgres], err = Open(ctx, pg); err != nil {
		t.Fatal(err)
	}
	return out
}

// rawBackends opens an empty state database of each dialect, without the
// spend ledger's tables.
func rawBackends(t *testing.T) map[store.Dialect]*store.DB {
	t.Helper()
	ctx := context.Background()
	lite, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	pg, err := store.OpenPostgres(ctx, testsrv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return map[store.Dialect]*store.DB{store.SQLite: lite, store.Postgres: pg}
}

func eachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	for d, s := range backends(t) {
		t.Run(string(d), func(t *testing.T) { fn(t, s) })
	}
}

var day0 = time.Date(2025, 3, 29, 0, 0, 0, 0, time.UTC) // the day before Europe/Berlin's spring change

func row(id string, at time.Time, key, model string, in, out int64, cost ledger.MicroEUR) Row {
	return Row{Time: at, DecisionID: id, KeyID: key, User: "ana@example.com", Team: "ml", Workspace: "acme",
		Model: model, Provider: "p-" + model, TokensIn: in, TokensOut: out, Cost: cost, Status: Served}
}

func mustInsert(t *testing.T, s *Store, rows ...Row) int {
	t.Helper()
	n, err := s.Insert(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// groups renders a report's groups as "v1|v2: requests in out cached cost est".
func groups(r *Report) []string {
	var out []string
	for _, g := range r.Groups {
		out = append(out, fmt.Sprintf("%s: %d %d %d %d %d %d", strings.Join(g.Values, "|"), g.Requests, g.TokensIn, g.TokensOut,
			g.TokensCached, g.Cost, g.Estimated))
	}
	return out
}

func TestInsertIgnoresKnownDecisionIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		a := row("d-1", day0.Add(time.Hour), "k1", "m1", 10, 20, 300)
		if n := mustInsert(t, s, a, row("d-2", day0.Add(time.Hour), "k1", "m1", 1, 1, 1)); n != 2 {
			t.Fatalf("%d new rows, want 2", n)
		}
		// The same id again (a retried batch), and twice in one batch.
		b := a
		b.Cost, b.TokensOut = 999_999, 999
		if n := mustInsert(t, s, b, row("d-3", day0, "k1", "m1", 1, 1, 1), row("d-3", day0, "k1", "m1", 5, 5, 5)); n != 1 {
			t.Fatalf("%d new rows, want 1 (d-3 once)", n)
		}
		r, err := s.Query(context.Background(), Query{Since: day0, Until: day0.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if want := (Sums{Requests: 3, TokensIn: 12, TokensOut: 22, Cost: 302, CostEUR: 0.000302}); r.Total != want {
			t.Errorf("total %+v, want %+v (the first write of an id wins)", r.Total, want)
		}
		if len(r.Groups) != 0 || len(r.GroupBy) != 0 {
			t.Errorf("ungrouped report has groups %v", groups(r))
		}
	})
}

func TestQueryGroups(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		est := row("e", day0.Add(22*time.Hour+30*time.Minute), "k2", "m2", 100, 50, 7_000) // 23:30 in Berlin on the 29th
		est.Estimated, est.Status, est.TokensCached = true, Interrupted, 40
		failed := row("f", day0.Add(23*time.Hour+30*time.Minute), "k1", "m2", 0, 0, 0) // 00:30 on the 30th in Berlin
		failed.Status = Failed
		mustInsert(t, s,
			row("a", day0.Add(time.Hour), "k1", "m1", 10, 20, 1_000),
			row("b", day0.Add(2*time.Hour), "k1", "m1", 30, 40, 2_500),
			row("c", day0.Add(25*time.Hour), "k2", "m1", 5, 5, 100), // the 30th, after the change (UTC+2)
			est, failed,
			row("x", day0.Add(-time.Millisecond), "k1", "m1", 1, 1, 1),  // before the range
			row("y", day0.Add(48*time.Hour), "k1", "m1", 1, 1, 1),       // at its (exclusive) end
			row("z", day0.Add(23*time.Hour), "k3", "m3", 9, 9, 123_456), // another workspace, filtered out below
		)
		if _, err := s.db.SQL.ExecContext(ctx, `UPDATE spend_requests SET workspace = 'other' WHERE decision_id = 'z'`); err != nil {
			t.Fatal(err)
		}
		berlin, _ := time.LoadLocation("Europe/Berlin")
		q := func(loc *time.Location, filter map[Dim]string, by ...Dim) []string {
			t.Helper()
			r, err := s.Query(ctx, Query{Since: day0, Until: day0.Add(48 * time.Hour), GroupBy: by, Location: loc, Filter: filter})
			if err != nil {
				t.Fatal(err)
			}
			var sum Sums
			for _, g := range r.Groups {
				sum.add(g.Sums)
			}
			if sum != r.Total {
				t.Errorf("groups add up to %+v, total says %+v", sum, r.Total)
			}
			return groups(r)
		}
		acme := map[Dim]string{DimWorkspace: "acme"}
		for name, tc := range map[string]struct {
			got, want []string
		}{
			"model": {q(nil, acme, DimModel), []string{"m1: 3 45 65 0 3600 0", "m2: 2 100 50 40 7000 1"}},
			"key and model": {q(nil, acme, DimKey, DimModel),
				[]string{"k1|m1: 2 40 60 0 3500 0", "k1|m2: 1 0 0 0 0 0", "k2|m1: 1 5 5 0 100 0", "k2|m2: 1 100 50 40 7000 1"}},
			"day UTC":    {q(nil, acme, DimDay), []string{"2025-03-29: 4 140 110 40 10500 1", "2025-03-30: 1 5 5 0 100 0"}},
			"day Berlin": {q(berlin, acme, DimDay), []string{"2025-03-29: 3 140 110 40 10500 1", "2025-03-30: 2 5 5 0 100 0"}},
			"model then day Berlin": {q(berlin, acme, DimModel, DimDay),
				[]string{"m1|2025-03-29: 2 40 60 0 3500 0", "m1|2025-03-30: 1 5 5 0 100 0", "m2|2025-03-29: 1 100 50 40 7000 1", "m2|2025-03-30: 1 0 0 0 0 0"}},
			"status":               {q(nil, acme, DimStatus), []string{"failed: 1 0 0 0 0 0", "interrupted: 1 100 50 40 7000 1", "served: 3 45 65 0 3600 0"}},
			"every dim":            {q(nil, map[Dim]string{DimModel: "m2", DimStatus: "failed"}, Dims...), []string{"k1|ana@example.com|ml|acme||m2|p-m2|failed|||2025-03-29: 1 0 0 0 0 0"}},
			"workspace, no filter": {q(nil, nil, DimWorkspace), []string{"acme: 5 145 115 40 10600 1", "other: 1 9 9 0 123456 0"}},
			"nothing matches":      {q(nil, map[Dim]string{DimKey: "nobody"}, DimKey), nil},
		} {
			if !reflect.DeepEqual(tc.want, tc.got) {
				t.Errorf("%s: got %q, want %q", name, tc.got, tc.want)
			}
		}
	})
}

// TestQueryEndUserAndTag: rows group by and filter on the end user and
// the tag, both kept as written (an email too); a row with neither reads
// "" for both.
func TestQueryEndUserAndTag(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		with := func(id, endUser, tag, ws string, cost ledger.MicroEUR) Row {
			r := row(id, day0.Add(time.Hour), "svc", "m1", 10, 5, cost)
			r.EndUser, r.Tag, r.Workspace = endUser, tag, ws
			return r
		}
		mustInsert(t, s,
			with("a", "ana@example.com", "p1", "acme", 100),
			with("b", "ana@example.com", "p2", "acme", 20),
			with("c", "u-漢字", "p1", "acme", 3),
			with("d", "", "", "acme", 4000),
			with("e", "ana@example.com", "p1", "other", 50_000), // another workspace's ana
		)
		q := func(filter map[Dim]string, by ...Dim) []string {
			t.Helper()
			p := Params{GroupBy: strings.Join(dimStrings(by), ","), Since: day0.Format(time.RFC3339), Until: day0.Add(24 * time.Hour).Format(time.RFC3339), Filter: filter}
			qq, err := p.Resolve(day0, "")
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Query(ctx, qq)
			if err != nil {
				t.Fatal(err)
			}
			return groups(r)
		}
		for name, tc := range map[string]struct{ got, want []string }{
			// Grouped with the workspace: two workspaces' "ana" are two
			// people.
			"end_user": {q(nil, DimEndUser), []string{"acme|: 1 10 5 0 4000 0", "acme|ana@example.com: 2 20 10 0 120 0",
				"acme|u-漢字: 1 10 5 0 3 0", "other|ana@example.com: 1 10 5 0 50000 0"}},
			"tag":                 {q(nil, DimTag), []string{": 1 10 5 0 4000 0", "p1: 3 30 15 0 50103 0", "p2: 1 10 5 0 20 0"}},
			"tag and end_user":    {q(map[Dim]string{DimWorkspace: "acme"}, DimTag, DimEndUser), []string{"|acme|: 1 10 5 0 4000 0", "p1|acme|ana@example.com: 1 10 5 0 100 0", "p1|acme|u-漢字: 1 10 5 0 3 0", "p2|acme|ana@example.com: 1 10 5 0 20 0"}},
			"end_user filter":     {q(map[Dim]string{DimEndUser: "ana@example.com"}, DimTag), []string{"p1: 2 20 10 0 50100 0", "p2: 1 10 5 0 20 0"}},
			"tag filter":          {q(map[Dim]string{DimTag: "p1", DimWorkspace: "acme"}, DimModel), []string{"m1: 2 20 10 0 103 0"}},
			"no tag, filtered":    {q(map[Dim]string{DimTag: ""}, DimKey), []string{"svc: 1 10 5 0 4000 0"}},
			"filter matches none": {q(map[Dim]string{DimEndUser: "ANA@example.com"}, DimTag), nil},
		} {
			if !reflect.DeepEqual(tc.want, tc.got) {
				t.Errorf("%s: got %q, want %q", name, tc.got, tc.want)
			}
		}
	})
}

// TestMigrationKeepsOlderRows: rows written before the end user and tag
// columns (schema version 2) stay, and read "" for both.
func TestMigrationKeepsOlderRows(t *testing.T) {
	for d, db := range rawBackends(t) {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			if err := db.Migrate(ctx, Component, Migrations[:2]); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL.ExecContext(ctx, `INSERT INTO spend_requests (decision_id, ts, key_id, user_name, team, workspace, route,
	model, provider, tokens_in, tokens_out, tokens_cached, cost_micro_eur, estimated, status)
	VALUES ('old', `+fmt.Sprint(day0.Add(time.Hour).UnixMilli())+`, 'k', '', '', 'acme', '', 'm', 'p', 1, 2, 0, 30, 0, 'served')`); err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			n := row("new", day0.Add(2*time.Hour), "k", "m", 1, 1, 1)
			n.EndUser, n.Tag = "u1", "p1"
			mustInsert(t, s, n)
			r, err := s.Query(ctx, Query{Since: day0, Until: day0.Add(24 * time.Hour), GroupBy: []Dim{DimEndUser, DimTag}})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := groups(r), []string{"|: 1 1 2 0 30 0", "u1|p1: 1 1 1 0 1 0"}; !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// TestQueryDayAcrossManyTransitions: day grouping stays exact over a year
// and a half of summer-time changes, in a zone west of UTC and one east.
func TestQueryDayAcrossManyTransitions(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		var rows []Row
		start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; i < 600; i++ { // one row a day, at a time that is a different local date in some zones
			rows = append(rows, row(fmt.Sprintf("r%d", i), start.Add(time.Duration(i)*24*time.Hour+time.Duration(i%24)*time.Hour+17*time.Minute),
				"k", "m", 1, 0, 1))
		}
		mustInsert(t, s, rows...)
		for _, zone := range []string{"America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"} {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			for _, r := range rows {
				want[r.Time.In(loc).Format(time.DateOnly)]++
			}
			r, err := s.Query(context.Background(), Query{Since: start.Add(-24 * time.Hour), Until: start.Add(700 * 24 * time.Hour),
				GroupBy: []Dim{DimDay}, Location: loc})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			days := make([]string, 0, len(r.Groups))
			for _, g := range r.Groups {
				got[g.Values[0]] = g.Requests
				days = append(days, g.Values[0])
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("%s: got %v, want %v", zone, got, want)
			}
			if !slices.IsSorted(days) {
				t.Errorf("%s: days out of order", zone)
			}
		}
	})
}

func TestQueryRefusesBadRanges(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		_, err := s.Query(context.Background(), Query{Since: day0, Until: day0})
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Field != "until" {
			t.Errorf("empty range: %v", err)
		}
		_, err = s.Query(context.Background(), Query{Since: day0, Until: day0.Add(time.Hour), GroupBy: []Dim{"cost"}})
		if !errors.As(err, &inv) || inv.Field != "group_by" {
			t.Errorf("unknown dim: %v", err)
		}
	})
}

// TestConcurrentWriters: two writers (two replicas on one database, or a
// replica and a retry) insert overlapping rows at once; each id lands once.
func TestConcurrentWriters(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; b < 10; b++ {
					var rows []Row
					for i := 0; i < 50; i++ {
						rows = append(rows, row(fmt.Sprintf("id-%d-%d", b, i), day0, "k", "m", 1, 1, 1))
					}
					if _, err := s.Insert(context.Background(), rows); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		r, err := s.Query(context.Background(), Query{Since: day0, Until: day0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if r.Total.Requests != 500 || r.Total.Cost != 500 {
			t.Errorf("total %+v, want 500 rows once each", r.Total)
		}
	})
}

// TestLargeBatch: a batch beyond one statement's rows goes in whole.
func TestLargeBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		rows := make([]Row, 1234)
		for i := range rows {
			rows[i] = row(fmt.Sprintf("big-%d", i), day0, "k", "m", 2, 3, 5)
		}
		if n := mustInsert(t, s, rows...); n != len(rows) {
			t.Fatalf("%d rows new", n)
		}
		r, err := s.Query(context.Background(), Query{Since: day0, Until: day0.Add(time.Hour), GroupBy: []Dim{DimModel}})
		if err != nil {
			t.Fatal(err)
		}
		if got := groups(r); !slices.Equal(got, []string{"m: 1234 2468 3702 0 6170 0"}) {
			t.Errorf("%v", got)
		}
	})
}

// TestTotalsPersistBudgetSpend: the in-memory ledger's budget spend
// survives a restart through the store, without a spend file.
func TestTotalsPersistBudgetSpend(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		lim, err := ledger.NewLimits(time.UTC, []ledger.BudgetRule{
			{Name: "team-month", Scope: ledger.ScopeTeam, Limit: ledger.FromEUR(10), Period: ledger.PeriodMonth},
			{Name: "key-total", Scope: ledger.ScopeKey, Limit: ledger.FromEUR(100), Period: ledger.PeriodTotal},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sub := ledger.Subject{Key: "k1", User: "ana", Team: "ml", Workspace: "acme"}
		open := func() *ledger.Ledger {
			b, err := ledger.NewMemory(ctx, ledger.MemoryOptions{Persister: s.Totals(), FlushInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return ledger.New(b, lim, ledger.Options{})
		}
		used := func(l *ledger.Ledger) map[string]ledger.MicroEUR {
			st, err := l.Peek(ctx, &ledger.Request{Subject: sub})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]ledger.MicroEUR{}
			for _, b := range st.Budgets {
				out[b.Name] = b.Used
			}
			return out
		}
		l := open()
		for i, cost := range []float64{2, 0.5} {
			r, err := l.Reserve(ctx, &ledger.Request{ID: fmt.Sprint("r", i), Subject: sub, Cost: ledger.FromEUR(3)})
			if err != nil || !r.Allowed {
				t.Fatalf("reserve: %v %+v", err, r)
			}
			if _, err := l.Settle(ctx, r, ledger.Usage{Cost: ledger.FromEUR(cost)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		l = open()
		want := map[string]ledger.MicroEUR{"team-month": ledger.FromEUR(2.5), "key-total": ledger.FromEUR(2.5)}
		if got := used(l); !reflect.DeepEqual(want, got) {
			t.Fatalf("after restart got %v, want %v", got, want)
		}
		// More spend, saved over the loaded rows (an update, not a second row).
		r, _ := l.Reserve(ctx, &ledger.Request{ID: "r9", Subject: sub, Cost: ledger.FromEUR(1)})
		if _, err := l.Settle(ctx, r, ledger.Usage{Cost: ledger.FromEUR(1)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM budget_totals`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d rows in budget_totals (%v), want 2", n, err)
		}
		l = open()
		defer l.Close(ctx)
		want = map[string]ledger.MicroEUR{"team-month": ledger.FromEUR(3.5), "key-total": ledger.FromEUR(3.5)}
		if got := used(l); !reflect.DeepEqual(want, got) {
			t.Fatalf("after the second restart got %v, want %v", got, want)
		}
	})
}

// TestTotalsSnapshot: Save makes the table equal each snapshot: changed
// counters updated, new ones added, missing ones removed, unchanged ones
// not rewritten; a second Totals (a restarted process) sees the same.
func TestTotalsSnapshot(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		month := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		a := ledger.Total{Budget: "a", Period: "month", Subject: "acme", Start: month, Expires: month.AddDate(0, 2, 0), Used: 10}
		b := ledger.Total{Budget: "b", Period: "total", Used: 20}
		p := s.Totals()
		if err := p.Save(ctx, []ledger.Total{a, b}); err != nil {
			t.Fatal(err)
		}
		a.Used = 11
		c := ledger.Total{Budget: "c", Period: "day", Subject: "acme/ml", Start: month, Expires: month.AddDate(0, 0, 36), Used: 5}
		if err := p.Save(ctx, []ledger.Total{a, c}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Totals().Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(x, y ledger.Total) int { return strings.Compare(x.Budget, y.Budget) })
		if want := []ledger.Total{a, c}; !reflect.DeepEqual(want, got) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

// TestQueryGroupsBounded: a report holds at most maxGroups groups; past
// that it is refused, naming what narrows it (a client naming a new user
// per request decides how many end users there are).
func TestQueryGroupsBounded(t *testing.T) {
	defer func(n int) { maxGroups = n }(maxGroups)
	maxGroups = 2
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i, u := range []string{"u-1", "u-2", "u-3"} {
			r := row(fmt.Sprint("g", i), day0.Add(time.Hour), "svc", "m1", 10, 5, 1)
			r.EndUser = u
			mustInsert(t, s, r)
		}
		_, err := s.Query(ctx, Query{Since: day0, Until: day0.Add(24 * time.Hour), GroupBy: []Dim{DimEndUser}})
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Field != "group_by" || !strings.Contains(inv.Msg, "more than 2 groups") {
			t.Errorf("3 end users against 2 groups: %v", err)
		}
		if rep, err := s.Query(ctx, Query{Since: day0, Until: day0.Add(24 * time.Hour), GroupBy: []Dim{DimModel}}); err != nil || len(rep.Groups) != 1 {
			t.Errorf("one model: %v %v", rep, err)
		}
	})
}
