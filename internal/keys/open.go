package keys

import (
	"context"

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
