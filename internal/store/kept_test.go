package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateKept (the storage probe): a database missing or emptied beside
// the files a server leaves (hash.key, the audit signing key) is a failed
// restore, not a new directory: opening it is refused, and no empty
// database is made. A directory without them starts empty, as always.
func TestStateKept(t *testing.T) {
	ctx := context.Background()
	for name, setup := range map[string]func(dir string){
		"missing": func(dir string) {},
		"empty":   func(dir string) { write(t, filepath.Join(dir, SQLiteFile), "") },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			setup(dir)
			write(t, filepath.Join(dir, "hash.key"), "k")
			db, err := OpenSQLite(ctx, dir)
			if err == nil {
				db.Close()
				t.Fatal("opened an empty database beside hash.key")
			}
			if !strings.Contains(err.Error(), "restore the database") {
				t.Errorf("error %q does not say what to do", err)
			}
			if fi, err := os.Stat(filepath.Join(dir, SQLiteFile)); err == nil && fi.Size() > 0 {
				t.Error("a new database was made")
			}
		})
	}
	db, err := OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("a new directory: %v", err)
	}
	db.Close()
	// The audit log's signing key alone is no sign: a server on
	// PostgreSQL makes it in state.dir too (the red-team probe).
	dir := t.TempDir()
	write(t, filepath.Join(dir, "audit-signing.key"), "k")
	if db, err = OpenSQLite(ctx, dir); err != nil {
		t.Fatalf("a directory with audit-signing.key alone: %v", err)
	}
	db.Close()
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
