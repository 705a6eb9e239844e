package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

// backends opens one empty database of each dialect.
func backends(t *testing.T) map[Dialect]*DB {
	t.Helper()
	ctx := context.Background()
	lite, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out := map[Dialect]*DB{SQLite: lite}
	pg, err := OpenPostgres(ctx, testsrv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	out[Postgres] = pg
	return out
}

var testMigrations = []Migration{
	{Version: 1, Name: "things", SQL: "CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL);\nCREATE INDEX things_n ON things (n);"},
	{Version: 2, Name: "things.note", SQL: "ALTER TABLE things ADD COLUMN note TEXT NOT NULL DEFAULT ''",
		Postgres: "ALTER TABLE things ADD COLUMN note TEXT NOT NULL DEFAULT 'pg'"},
}

func TestMigrate(t *testing.T) {
	for dialect, db := range backends(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			if err := db.Migrate(ctx, "test", testMigrations[:1]); err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL.ExecContext(ctx, `INSERT INTO things (id, n) VALUES ($1, $2)`, "a", 1); err != nil {
				t.Fatal(err)
			}
			if m := db.Migrated(); len(m) != 0 {
				t.Errorf("creating tables counted as a migration: %v", m)
			}
			// Twice: the second run applies only the new step.
			for range 2 {
				if err := db.Migrate(ctx, "test", testMigrations); err != nil {
					t.Fatal(err)
				}
			}
			// What serve logs after an upgrade (silent before, the
			// upgrade helper's finding).
			if m := db.Migrated(); len(m) != 1 || !strings.HasPrefix(m[0], "test 2 (") {
				t.Errorf("migrated %v, want the one step on existing tables", m)
			}
			var note string
			if err := db.SQL.QueryRowContext(ctx, `SELECT note FROM things WHERE id = $1`, "a").Scan(&note); err != nil {
				t.Fatal(err)
			}
			if want := map[Dialect]string{SQLite: "", Postgres: "pg"}[dialect]; note != want {
				t.Errorf("note %q, want %q (dialect override)", note, want)
			}
			if v, err := db.Version(ctx, "test"); err != nil || v != 2 {
				t.Errorf("version %d, %v", v, err)
			}
			if v, _ := db.Version(ctx, "other"); v != 0 {
				t.Errorf("other component at %d", v)
			}
			// An older binary (knowing one migration) refuses the newer schema.
			err := db.Migrate(ctx, "test", testMigrations[:1])
			if err == nil || !strings.Contains(err.Error(), "upgrade stellwerk") {
				t.Errorf("older binary: %v", err)
			}
			// A failing step rolls back and is not recorded.
			bad := append(testMigrations[:2:2], Migration{Version: 3, Name: "bad", SQL: "CREATE TABLE ok3 (x TEXT);\nNOT SQL"})
			if err := db.Migrate(ctx, "test", bad); err == nil {
				t.Fatal("bad migration applied")
			}
			if v, _ := db.Version(ctx, "test"); v != 2 {
				t.Errorf("failed step recorded: version %d", v)
			}
			if _, err := db.SQL.ExecContext(ctx, `SELECT * FROM ok3`); err == nil && dialect == Postgres {
				t.Errorf("failed step left its table behind")
			}
		})
	}
}

func TestMigrationsNumbered(t *testing.T) {
	db, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Migrate(context.Background(), "x", []Migration{{Version: 2, Name: "gap", SQL: "SELECT 1"}})
	if err == nil || !strings.Contains(err.Error(), "want 1") {
		t.Errorf("gap accepted: %v", err)
	}
}

func TestSQLiteFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db, err := Open(context.Background(), config.State{Dir: dir}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(context.Background(), "test", testMigrations); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, SQLiteFile): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", path, st.Mode().Perm(), want)
		}
	}
}

func TestSQLitePageSize(t *testing.T) {
	ctx := context.Background()
	pragmas := func(t *testing.T, db *DB) (int, string) {
		t.Helper()
		var size int
		var mode string
		if err := db.SQL.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
			t.Fatal(err)
		}
		if err := db.SQL.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		return size, mode
	}
	t.Run("new file", func(t *testing.T) {
		db, err := OpenSQLite(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if size, mode := pragmas(t, db); size != sqlitePageSize || mode != "wal" {
			t.Errorf("page size %d, journal %q: want %d and wal", size, mode, sqlitePageSize)
		}
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("existing file keeps its pages", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SQLiteFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CreateSQLite(ctx, filepath.Join(dir, SQLiteFile), 4096); err != nil { // as files were made before
			t.Fatal(err)
		}
		old, err := OpenSQLite(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		old.Close()
		db, err := OpenSQLite(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if size, mode := pragmas(t, db); size != 4096 || mode != "wal" {
			t.Errorf("page size %d, journal %q: want the file's 4096 and wal", size, mode)
		}
		var n int
		if err := db.SQL.QueryRowContext(ctx, "SELECT count(*) FROM things").Scan(&n); err != nil {
			t.Errorf("the file's tables after reopening: %v", err)
		}
	})
}

func TestOpenPostgresErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1: unavailable, and the password is not shown.
	_, err := Open(ctx, config.State{Postgres: &config.StatePostgres{DSNEnv: "DSN"}}, func(string) string {
		return "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"
	})
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err %v", err)
	}
	// An @ in the password not written as %40: said so, and no part of the
	// password shows (pgx read its tail as the host name, and the lookup
	// error named it).
	for _, dsn := range []string{"postgres://u:Sec@retTail99@127.0.0.1:1/db?sslmode=disable", "postgresql://u@x:pw@127.0.0.1:1/db"} {
		_, err = Open(ctx, config.State{Postgres: &config.StatePostgres{DSNEnv: "DSN"}}, func(string) string { return dsn })
		if err == nil || !strings.Contains(err.Error(), "%40") || strings.Contains(err.Error(), "retTail99") || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: %v", dsn, err)
		}
	}
	_, err = Open(ctx, config.State{Postgres: &config.StatePostgres{DSNEnv: "UNSET"}}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "UNSET is not set") {
		t.Errorf("err %v", err)
	}
	_, err = Open(ctx, config.State{Postgres: &config.StatePostgres{DSNFile: "/nonexistent/dsn"}}, os.Getenv)
	if err == nil || !strings.Contains(err.Error(), "cannot read /nonexistent/dsn") {
		t.Errorf("err %v", err)
	}
}

// TestOpenPostgresThatNeverAnswers: a server that takes the connection
// and says nothing (a pooler without a backend) fails the open within
// PingBound, as unavailable, naming what to check.
func TestOpenPostgresThatNeverAnswers(t *testing.T) {
	addr, _ := testsrv.Silent(t)
	defer func(b time.Duration) { PingBound = b }(PingBound)
	PingBound = 300 * time.Millisecond
	_, err := OpenPostgres(context.Background(), "postgres://u:hunter2@"+addr+"/db?sslmode=disable")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no answer within 300ms") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err %v", err)
	}
}

// TestReadOnlyIsUnavailable: a PostgreSQL that refuses writes for now (a
// primary demoted in a failover, before its address moves) is unavailable,
// so the writers keep their rows and try again, rather than an error that
// drops them.
func TestReadOnlyIsUnavailable(t *testing.T) {
	ctx := context.Background()
	pg := backends(t)[Postgres]
	if _, err := pg.SQL.ExecContext(ctx, "CREATE TABLE ro (n BIGINT)"); err != nil {
		t.Fatal(err)
	}
	err := pg.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO ro VALUES (1)")
		return err
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write refused as read-only: %v, want ErrUnavailable", err)
	}
}

// TestSQLiteFullIsUnavailable: SQLite that cannot write for now (a full
// disk, here a database at its page limit; a read-only file; an I/O
// error) is unavailable too, as PostgreSQL's insufficient resources are:
// the spend ledger's writer dropped its rows for good on a full disk (the
// operator probe: 31 rows lost, none back when the disk had room again).
func TestSQLiteFullIsUnavailable(t *testing.T) {
	ctx := context.Background()
	db, err := OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL.ExecContext(ctx, "CREATE TABLE big (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	var pages int64
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages+2)); err != nil {
		t.Fatal(err)
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO big VALUES (zeroblob(1000000))")
		return err
	})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "full") {
		t.Errorf("a write to a full database: %v, want ErrUnavailable", err)
	}
	// A mistake of the statement's is not the store's absence.
	if err := db.Tx(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, "SELECT * FROM nowhere"); return err }); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("a bad statement: %v", err)
	}
	if _, err := db.SQL.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO big VALUES (x'00')")
		return err
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("a write to a read-only database: %v, want ErrUnavailable", err)
	}
}

// TestLockDir: one process holds state.dir; a second lock is refused,
// naming the holder, until the first is released.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	release, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDir(dir); !errors.Is(err, ErrDirInUse) || !strings.Contains(err.Error(), "pid ") {
		t.Errorf("a second lock: %v, want ErrDirInUse naming the pid", err)
	}
	release()
	again, err := LockDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}
