package keys

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// BenchmarkAuthenticate measures what every request pays for its key: the
// Authorization value through auth.Keys (the config's keys first, then the
// store's table) with 10,000 keys in the table, as extproc calls it.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	h, _ := NewHasher(testHashKey)
	s, err := Open(ctx, db, h, nil)
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	var secret string
	for i := range n {
		_, sec, err := s.Create(ctx, Spec{ID: fmt.Sprintf("k%05d", i), Workspace: "w", Models: []string{"m1"}}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if i == n/2 {
			secret = sec
		}
	}
	tb := NewTable(s, nil)
	if err := tb.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	cfg := &config.Config{Auth: config.Auth{Mode: "keys"}, Keys: []config.Key{{ID: "yaml", SHA256: auth.Hash("sk-yaml"), Workspace: "w"}}}
	k := auth.New(cfg, os.Getenv).WithSource(tb)
	for name, cred := range map[string]string{
		"store_key":     "Bearer " + secret,
		"config_key":    "Bearer sk-yaml",
		"unknown_other": "Bearer sk-not-a-store-key",
		"unknown_store": "Bearer " + secret[:len(secret)-1] + "x",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = k.Authenticate(cred)
			}
		})
	}
}

// seedKeys writes n keys in one transaction, each a write of its own
// generation as Create makes it (creating 50,000 one by one takes
// minutes), and returns the last one's secret.
func seedKeys(tb testing.TB, s *Store, n int) string {
	tb.Helper()
	ctx := context.Background()
	var secret string
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		for i := range n {
			gen, err := s.gen.Bump(ctx, tx)
			if err != nil {
				return err
			}
			secret = newSecret()
			if _, err := tx.ExecContext(ctx, `INSERT INTO virtual_keys (id, digest, prefix, workspace, created_at, created_by, seq)
				VALUES ($1, $2, $3, 'w', 1, 'seed', $4)`, fmt.Sprintf("seed-%06d", i), s.hasher.Sum(secret).hex(), displayPrefix(secret), gen); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return secret
}

// BenchmarkRefreshAfterOneChange measures what one key created costs each
// replica's table with 50,000 keys in it: the refresh that loads it (the
// store's SQLite read and the table's new snapshot), as Run does after a
// POST /admin/keys. The create itself is not timed.
func BenchmarkRefreshAfterOneChange(b *testing.B) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	h, _ := NewHasher(testHashKey)
	s, err := Open(ctx, db, h, nil)
	if err != nil {
		b.Fatal(err)
	}
	seedKeys(b, s, 50000)
	tb := NewTable(s, nil)
	if err := tb.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		if _, _, err := s.Create(ctx, Spec{ID: fmt.Sprintf("new-%d", i), Workspace: "w"}, "bench"); err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()
		if err := tb.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if tb.Len() != 50000+i {
		b.Fatalf("%d keys in the table, want %d", tb.Len(), 50000+i)
	}
}
