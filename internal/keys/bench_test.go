package keys

import (
	"context"
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
