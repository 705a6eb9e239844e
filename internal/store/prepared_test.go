package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestPrepared: a statement per row count, prepared once and run in
// transactions on both engines; a failed one rolls back with its
// transaction, and the same statement serves the next.
func TestPrepared(t *testing.T) {
	for dialect, db := range backends(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE rows_p (id TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			built := map[int]int{}
			p := NewPrepared(db.SQL, 4, func(rows int) string {
				built[rows]++
				vals := make([]string, rows)
				for i := range vals {
					vals[i] = fmt.Sprintf("($%d, $%d)", 2*i+1, 2*i+2)
				}
				return `INSERT INTO rows_p (id, n) VALUES ` + strings.Join(vals, ",")
			})
			insert := func(ids ...string) error {
				args := make([]any, 0, 2*len(ids))
				for i, id := range ids {
					args = append(args, id, i)
				}
				return db.Tx(ctx, func(tx *sql.Tx) error {
					_, err := p.Exec(ctx, tx, len(ids), args...)
					return err
				})
			}
			for _, batch := range [][]string{{"a", "b", "c"}, {"d"}, {"e", "f", "g"}, {"h", "i", "j", "k"}} {
				if err := insert(batch...); err != nil {
					t.Fatal(err)
				}
			}
			if err := insert("l", "a", "m"); err == nil { // "a" is there: the whole statement fails
				t.Fatal("duplicate key inserted")
			}
			if err := insert("l", "m", "n"); err != nil {
				t.Fatalf("after a failed transaction: %v", err)
			}
			var n int
			if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM rows_p`).Scan(&n); err != nil || n != 14 {
				t.Fatalf("%d rows (%v), want 14", n, err)
			}
			if built[3] != 1 || built[1] != 1 || built[4] != 1 || p.Max() != 4 {
				t.Errorf("statements built %v", built)
			}
		})
	}
}

// TestStmt: a statement prepared once and run again on both engines,
// with its arguments; a statement that cannot be prepared yet (its table
// not there) fails, and is prepared when it can be; no row is
// sql.ErrNoRows, as from QueryRowContext.
func TestStmt(t *testing.T) {
	for dialect, db := range backends(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			s := NewStmt(db.SQL, `SELECT n FROM rows_s WHERE id = $1`)
			var n int64
			if err := s.QueryRow(ctx, []any{"a"}, &n); err == nil {
				t.Fatal("a query of a missing table ran")
			}
			if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE rows_s (id TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			if err := s.QueryRow(ctx, []any{"a"}, &n); !errors.Is(err, sql.ErrNoRows) {
				t.Fatalf("no row: %v, want sql.ErrNoRows", err)
			}
			prepared := s.st
			for i := range int64(3) {
				if _, err := db.SQL.ExecContext(ctx, `INSERT INTO rows_s (id, n) VALUES ($1, $2)`, fmt.Sprint(i), 10*i); err != nil {
					t.Fatal(err)
				}
				if err := s.QueryRow(ctx, []any{fmt.Sprint(i)}, &n); err != nil || n != 10*i {
					t.Fatalf("row %d: %d, %v", i, n, err)
				}
			}
			if prepared == nil || s.st != prepared {
				t.Error("the statement was prepared again")
			}
		})
	}
}
