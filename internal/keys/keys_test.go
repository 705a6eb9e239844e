package keys

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

func TestParseSecret(t *testing.T) {
	good := newSecret()
	cases := map[string]struct {
		in string
		ok bool
	}{
		"bare":                {good, true},
		"bearer":              {"Bearer " + good, true},
		"bearer, odd case":    {"bEaReR \t" + good + " \r\n", true},
		"empty":               {"", false},
		"bearer only":         {"Bearer ", false},
		"other token":         {"Bearer sk-proj-abc", false},
		"one short":           {good[:len(good)-1], false},
		"one long":            {good + "A", false},
		"bad digit":           {good[:len(good)-1] + "=", false},
		"prefix case":         {strings.ToUpper(good[:6]) + good[6:], false},
		"two tokens":          {"Bearer " + good + " extra", false},
		"basic scheme":        {"Basic " + good, false},
		"non-ASCII":           {good[:len(good)-2] + "é", false},
		"newline inside":      {good[:20] + "\n" + good[21:], false},
		"config-style secret": {"sk-client-key", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, ok := ParseSecret(tc.in)
			if ok != tc.ok || (ok && s != good) {
				t.Errorf("ParseSecret(%q) = %q, %v", tc.in, s, ok)
			}
		})
	}
	bearer := "Bearer " + good
	if n := testing.AllocsPerRun(100, func() { ParseSecret(bearer) }); n != 0 {
		t.Errorf("ParseSecret allocates %v", n)
	}
}

func TestSecretsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := newSecret()
		if seen[s] {
			t.Fatal("repeated secret")
		}
		seen[s] = true
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret %q does not carry 32 random bytes", s)
		}
	}
}

func TestHasher(t *testing.T) {
	if _, err := NewHasher([]byte("short")); err == nil {
		t.Error("short hash key accepted")
	}
	h1, _ := NewHasher(testHashKey)
	h2, _ := NewHasher(append([]byte("x"), testHashKey...))
	s := newSecret()
	if a, b := h1.Sum(s), h1.Sum(s); a != b || a == h2.Sum(s) {
		t.Error("digest is not a function of the key and the secret")
	}
	if n := testing.AllocsPerRun(100, func() { h1.Sum(s) }); n != 0 && !raceEnabled {
		t.Errorf("Sum allocates %v", n)
	}
}

// TestGeneratedHashKey: the embedded store's hash key is made once, mode
// 0600, and every opener (server, CLI, at once) gets the same one.
func TestGeneratedHashKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	st := config.State{Dir: dir}
	var wg sync.WaitGroup
	hashers := make([]*Hasher, 8)
	for i := range hashers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := LoadHasher(st, store.SQLite, os.Getenv)
			if err != nil {
				t.Error(err)
				return
			}
			hashers[i] = h
		}()
	}
	wg.Wait()
	s := newSecret()
	for _, h := range hashers {
		if h == nil || h.Sum(s) != hashers[0].Sum(s) {
			t.Fatal("openers disagree on the hash key")
		}
	}
	fi, err := os.Stat(filepath.Join(dir, HashKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("hash key file: %v %v", fi, err)
	}
	if _, err := LoadHasher(config.State{}, store.Postgres, os.Getenv); err == nil {
		t.Error("postgres without state.hash_key accepted")
	}
	env := func(string) string { return "0123456789abcdef0123456789abcdef" }
	if _, err := LoadHasher(config.State{HashKey: config.SecretSource{Env: "K"}}, store.Postgres, env); err != nil {
		t.Error(err)
	}
	if _, err := LoadHasher(config.State{HashKey: config.SecretSource{Env: "K"}}, store.Postgres, func(string) string { return "short" }); err == nil {
		t.Error("short configured hash key accepted")
	}
}

func TestDecodeMasterKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	for _, s := range []string{
		"00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9",
		base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), " " + base64.StdEncoding.EncodeToString(raw) + "\n",
	} {
		b, err := DecodeMasterKey(s)
		if err != nil || string(b) != string(raw) {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "short", base64.StdEncoding.EncodeToString(raw[:16])} {
		if _, err := DecodeMasterKey(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	_, err := LoadKeyring([]config.MasterKey{{ID: "mk1", Env: "MK"}}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "MK is not set") {
		t.Errorf("unset master key: %v", err)
	}
	if r, err := LoadKeyring(nil, os.Getenv); r != nil || err != nil {
		t.Errorf("no master keys: %v %v", r, err)
	}
}

func TestSpecCheckConfig(t *testing.T) {
	cfg := &config.Config{
		Workspaces: []config.Workspace{{Name: "default"}, {Name: "legal", Teams: []config.Team{{Name: "contracts"}}}},
		Providers:  []config.Provider{{Name: "p1"}},
		Models:     []config.Model{{ID: "m1", Provider: "p1"}},
		Keys:       []config.Key{{ID: "from-yaml"}},
	}
	cases := map[string]struct {
		spec  Spec
		field string
	}{
		"ok":                {Spec{Workspace: "legal", Team: "contracts", Models: []string{"m1", "provider:p1"}}, ""},
		"unknown workspace": {Spec{Workspace: "nope"}, "workspace"},
		"unknown team":      {Spec{Workspace: "legal", Team: "nope"}, "team"},
		"unknown model":     {Spec{Workspace: "legal", Models: []string{"m2"}}, "models[0]"},
		"unknown provider":  {Spec{Workspace: "legal", Models: []string{"m1", "provider:p2"}}, "models[1]"},
		"config key's id":   {Spec{ID: "from-yaml", Workspace: "legal"}, "id"},
		"bad id":            {Spec{ID: "Not An ID", Workspace: "legal"}, "id"},
		"bad user":          {Spec{Workspace: "legal", User: "a b"}, "user"},
		"metadata too big":  {Spec{Workspace: "legal", Metadata: map[string]string{"k": strings.Repeat("v", 600)}}, "metadata"},
		"negative rpm":      {Spec{Workspace: "legal", Limits: config.Limits{RateLimit: config.RateLimit{RequestsPerMinute: -1}}}, "limits.rate_limit.requests_per_minute"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.spec.CheckConfig(cfg)
			var inv *InvalidError
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.field != "" && (!errors.As(err, &inv) || inv.Field != tc.field):
				t.Errorf("want field %s, got %v", tc.field, err)
			}
		})
	}
}

// TestAuthMerge: the config's keys and the store's table answer through
// one auth.Keys; a revoked, expired or unknown store key is refused even in
// open mode, while other unknown tokens stay anonymous there.
func TestAuthMerge(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := openOn(t, db, nil)
	_, live, _ := s.Create(ctx, Spec{ID: "live", Workspace: "legal"}, "x")
	_, gone, _ := s.Create(ctx, Spec{ID: "gone", Workspace: "legal"}, "x")
	if _, err := s.Revoke(ctx, "gone", "x"); err != nil {
		t.Fatal(err)
	}
	tb := NewTable(s, nil)
	mustRefresh(t, tb)
	for _, mode := range []string{"open", "keys"} {
		cfg := &config.Config{Auth: config.Auth{Mode: mode}, Keys: []config.Key{{ID: "yaml", SHA256: auth.Hash("sk-yaml"), Workspace: "default"}}}
		k := auth.New(cfg, os.Getenv).WithSource(tb)
		if p, err := k.Authenticate("Bearer sk-yaml"); err != nil || p.KeyID != "yaml" {
			t.Errorf("%s: config key: %+v %v", mode, p, err)
		}
		if p, err := k.Authenticate("Bearer " + live); err != nil || p.KeyID != "live" || p.Workspace != "legal" {
			t.Errorf("%s: store key: %+v %v", mode, p, err)
		}
		for _, refused := range []string{gone, live[:len(live)-2] + "xx"} {
			if _, err := k.Authenticate("Bearer " + refused); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("%s: refused key admitted: %v", mode, err)
			}
		}
		_, err := k.Authenticate("Bearer sk-something-else")
		if (mode == "keys") != errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("%s: unknown non-store token: %v", mode, err)
		}
	}
}

// TestLostHashKeyRefused (the upgrade helper's restore): a state dir whose
// database holds keys but whose generated hash.key is gone is refused,
// instead of a new hash key making every key unknown without a word.
func TestLostHashKeyRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := config.State{Dir: dir}
	ks, db, err := OpenConfigured(ctx, st, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ks.Create(ctx, Spec{ID: "kept", Workspace: "w"}, "x"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.Remove(filepath.Join(dir, HashKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenConfigured(ctx, st, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "holds 1 virtual keys but") {
		t.Fatalf("a store with keys and no hash key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, HashKeyFile)); err == nil {
		t.Error("a new hash key was generated anyway")
	}
	// A new state dir still gets its key.
	if _, db, err := OpenConfigured(ctx, config.State{Dir: t.TempDir()}, func(string) string { return "" }); err != nil {
		t.Fatalf("a new store: %v", err)
	} else {
		db.Close()
	}
}
