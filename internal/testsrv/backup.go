package testsrv

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
)

// Backup takes the rows of tables from db (SQLite or PostgreSQL) and
// returns what restores them: every row written since is gone and every
// row changed since is as it was, counters included, as pg_restore of a
// dump taken now (or an SQLite backup put back) does.
func Backup(t testing.TB, db *sql.DB, tables ...string) (restore func()) {
	t.Helper()
	ctx := context.Background()
	saved := map[string][][]any{}
	cols := map[string][]string{}
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatalf("backup %s: %v", table, err)
		}
		cols[table], _ = rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols[table]))
			ptrs := make([]any, len(vals))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("backup %s: %v", table, err)
			}
			saved[table] = append(saved[table], vals)
		}
		if err := rows.Close(); err != nil {
			t.Fatalf("backup %s: %v", table, err)
		}
	}
	return func() {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		defer tx.Rollback() //nolint:errcheck // committed below
		for _, table := range tables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				t.Fatalf("restore %s: %v", table, err)
			}
			marks := make([]string, len(cols[table]))
			for i := range marks {
				marks[i] = "$" + strconv.Itoa(i+1)
			}
			insert := `INSERT INTO ` + table + ` (` + strings.Join(cols[table], ", ") + `) VALUES (` + strings.Join(marks, ", ") + `)`
			for _, vals := range saved[table] {
				if _, err := tx.ExecContext(ctx, insert, vals...); err != nil {
					t.Fatalf("restore %s: %v", table, err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("restore: %v", err)
		}
	}
}
