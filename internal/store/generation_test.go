package store

import (
	"context"
	"database/sql"
	"testing"
)

// TestGenerationForgetsOldStamps: the stamps table stays StampsKept rows
// long; a mark older than that is reloaded from scratch without being
// called a restore, one in another history is.
func TestGenerationForgetsOldStamps(t *testing.T) {
	for dialect, db := range backends(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			if err := db.Migrate(ctx, "x", []Migration{{Version: 1, Name: "counter", SQL: `
CREATE TABLE x_generation (id INTEGER PRIMARY KEY, gen BIGINT NOT NULL);
INSERT INTO x_generation (id, gen) VALUES (1, 0);
CREATE TABLE x_stamps (gen BIGINT PRIMARY KEY, stamp BIGINT NOT NULL)`}}); err != nil {
				t.Fatal(err)
			}
			g := NewGeneration(db.SQL, "x")
			bump := func(n int) {
				t.Helper()
				if err := db.Tx(ctx, func(tx *sql.Tx) error {
					for range n {
						if _, err := g.Bump(ctx, tx); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			read := func(seen Mark) (Mark, Continuity) {
				t.Helper()
				now, c, err := g.Read(ctx, seen)
				if err != nil {
					t.Fatal(err)
				}
				return now, c
			}
			bump(1)
			first, c := read(Mark{})
			if first.Gen != 1 || first.Stamp == 0 || c != Continues {
				t.Fatalf("after one write: %+v %v", first, c)
			}
			bump(StampsKept)
			last, _ := read(Mark{})
			for name, tc := range map[string]struct {
				seen Mark
				want Continuity
			}{
				"the last mark":                 {last, Continues},
				"a mark whose stamp is dropped": {first, Forgotten},
				"another stamp":                 {Mark{last.Gen - 1, first.Stamp}, WentBack},
				"a generation still to come":    {Mark{last.Gen + 1, last.Stamp}, WentBack},
			} {
				if _, c := read(tc.seen); c != tc.want {
					t.Errorf("%s: %v, want %v", name, c, tc.want)
				}
			}
			var n int
			if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM x_stamps`).Scan(&n); err != nil || n != StampsKept {
				t.Errorf("%d stamps kept, want %d (%v)", n, StampsKept, err)
			}
			// An older build writes without a stamp (a rolling upgrade, or
			// a dump from before it restored while this build runs): the
			// store's generation cannot be told from the table's, however
			// its stamps match (the upgrade probe: an unstamped write that
			// caught up read as the same history, and a revoked key kept
			// working).
			if _, err := db.SQL.ExecContext(ctx, `UPDATE x_generation SET gen = gen + 1 WHERE id = 1`); err != nil {
				t.Fatal(err)
			}
			if now, c := read(last); now.Stamp != 0 || c != Forgotten {
				t.Errorf("after an unstamped write: %+v %v, want a reload", now, c)
			}
		})
	}
}
