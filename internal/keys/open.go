package keys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// OpenConfigured opens the state store a config names and the key store in
// it: the server and the CLI share this, so both hash and encrypt alike.
// The caller closes the returned DB.
func OpenConfigured(ctx context.Context, st config.State, getenv func(string) string) (*Store, *store.DB, error) {
	db, err := store.Open(ctx, st, getenv)
	if err != nil {
		return nil, nil, err
	}
	if err := hashKeyKept(ctx, st, db); err != nil {
		db.Close()
		return nil, nil, err
	}
	hasher, err := LoadHasher(st, db.Dialect, getenv)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	ring, err := LoadKeyring(st.MasterKeys, getenv)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	ks, err := Open(ctx, db, hasher, ring)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return ks, db, nil
}

// hashKeyKept refuses an embedded store that holds keys but has lost the
// generated hash key it was written with (a database restored without
// hash.key beside it): a new key would make every stored key unknown, each
// answering 401, without a word (the upgrade helper's restore).
func hashKeyKept(ctx context.Context, st config.State, db *store.DB) error {
	if db.Dialect != store.SQLite || st.HashKey.IsSet() {
		return nil
	}
	path := filepath.Join(st.Dir, HashKeyFile)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var n int
	if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM virtual_keys`).Scan(&n); err != nil || n == 0 {
		return nil // a new store (no table yet), or one without keys
	}
	return fmt.Errorf("state: %s holds %d virtual keys but %s is missing: restore the hash.key that was backed up with the database "+
		"(docs/deploy.md, backups); a new one would make every stored key unknown", st.Dir, n, path)
}
