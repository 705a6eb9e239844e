package feedback

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// conform runs f against SQLite and a real PostgreSQL; open returns another Store on the
// same database each call, as a second replica (or the CLI) would have.
func conform(t *testing.T, f func(t *testing.T, open func() *Store)) {
	openOn := func(t *testing.T, db *store.DB) *Store {
		t.Cleanup(func() { db.Close() })
		s, err := Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
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

func TestVotes(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		a, b := open(), open()
		t0 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
		id := "d-" + t.Name() // PostgreSQL is shared between the conformance runs
		for _, e := range []Entry{
			{DecisionID: id, Model: "small", Good: true, By: "alice", At: t0},
			{DecisionID: id, Model: "small", Good: false, Prompt: "Sort this list", By: "alice", At: t0.Add(time.Second)}, // alice changes her mind
			{DecisionID: id, Model: "small", Good: true, By: "bob", At: t0.Add(2 * time.Second)},
		} {
			if _, err := a.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		all, err := b.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []Entry
		for _, e := range all {
			if e.DecisionID == id {
				got = append(got, e)
			}
		}
		if len(got) != 2 || got[0].By != "alice" || got[0].Good || got[0].Prompt != "Sort this list" || !got[0].At.Equal(t0.Add(time.Second)) ||
			got[1].By != "bob" || !got[1].Good {
			t.Errorf("votes: %+v; want alice's later thumbs down with its prompt, then bob's thumbs up", got)
		}
		if _, err := a.Record(ctx, Entry{DecisionID: id, By: "carol"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("a vote without a model: %v, want ErrInvalid", err)
		}
	})
}
