package keys

import (
	"context"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/store"
)

// FuzzParseSecret: whatever a client sends as Authorization, parsing never
// panics, accepts only the documented shape, and is idempotent; a table
// lookup of it never panics and never admits a token it did not issue.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"", "Bearer ", "bearer sk-sw-", "Bearer " + newSecret(), newSecret() + "\r\n", "sk-sw-" + strings.Repeat("A", 43),
		"Bearer\tsk-sw-" + strings.Repeat("_", 43), "Basic dXNlcjpwYXNz", "sk-sw-" + strings.Repeat("é", 22)} {
		f.Add(s)
	}
	db, err := store.OpenSQLite(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	h, _ := NewHasher(testHashKey)
	st, err := Open(context.Background(), db, h, nil)
	if err != nil {
		f.Fatal(err)
	}
	_, issued, err := st.Create(context.Background(), Spec{ID: "k", Workspace: "w"}, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	tb := NewTable(st, nil)
	if err := tb.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, ok := ParseSecret(in)
		if ok {
			if len(s) != secretLen || !strings.HasPrefix(s, SecretPrefix) || !strings.Contains(in, s) {
				t.Fatalf("accepted %q as %q", in, s)
			}
			if again, ok2 := ParseSecret(s); !ok2 || again != s {
				t.Fatalf("not idempotent: %q", s)
			}
		}
		p, found, err := tb.Lookup(in)
		if found && err == nil && (s != issued || p.KeyID != "k") {
			t.Fatalf("%q admitted as %+v", in, p)
		}
	})
}
