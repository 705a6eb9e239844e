package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }

var testHashKey = []byte("0123456789abcdef0123456789abcdef-test")

func testRing(t testing.TB, ids ...string) *Keyring {
	t.Helper()
	var ks [][]byte
	for _, id := range ids {
		k := sha256.Sum256([]byte("master " + id))
		ks = append(ks, k[:])
	}
	r, err := NewKeyring(ids, ks)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// backend opens a fresh database of one dialect; open(ring) opens another
// Store on the same database, as a second replica (or the CLI) would.
type backend struct {
	name string
	open func(t *testing.T, ring *Keyring) *Store
}

func backends(t *testing.T) []backend {
	dir := filepath.Join(t.TempDir(), "state")
	var dsn string
	return []backend{
		{"sqlite", func(t *testing.T, ring *Keyring) *Store {
			db, err := store.OpenSQLite(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return openOn(t, db, ring)
		}},
		{"postgres", func(t *testing.T, ring *Keyring) *Store {
			if dsn == "" {
				dsn = testsrv.PostgresDSN(t)
			}
			db, err := store.OpenPostgres(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return openOn(t, db, ring)
		}},
	}
}

func openOn(t *testing.T, db *store.DB, ring *Keyring) *Store {
	t.Helper()
	t.Cleanup(func() { db.Close() })
	h, err := NewHasher(testHashKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), db, h, ring)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// conform runs f against every backend.
func conform(t *testing.T, f func(t *testing.T, open func(t *testing.T, ring *Keyring) *Store)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { f(t, b.open) })
	}
}

func mustRefresh(t *testing.T, tb *Table) {
	t.Helper()
	if err := tb.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCreateShowList(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Millisecond)
		spec := Spec{ID: "support-bot", Workspace: "support", Team: "tier1", User: "ana@example.com",
			Models: []string{"gpt-4o-mini", "provider:mistral"}, Routes: []string{"support"}, ExpiresAt: exp,
			Limits:   config.Limits{Budgets: []config.Budget{{AmountEUR: 50, Period: "month"}}, RateLimit: config.RateLimit{RequestsPerMinute: 60}},
			Metadata: map[string]string{"ticket": "OPS-1"}}
		k, secret, err := s.Create(ctx, spec, "admin:root")
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := ParseSecret(secret); !ok || p != secret || len(secret) < len(SecretPrefix)+43 {
			t.Fatalf("secret %q is not of the documented shape", secret)
		}
		if k.Prefix != secret[:DisplayPrefixLen] || k.CreatedBy != "admin:root" || k.CreatedAt.IsZero() {
			t.Errorf("record %+v", k)
		}
		got, err := s.Get(ctx, "support-bot")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, k) {
			t.Errorf("show differs from create:\n%+v\n%+v", got, k)
		}
		if got.Status(time.Now()) != StatusActive || got.Status(exp) != StatusExpired {
			t.Errorf("status")
		}
		if _, _, err := s.Create(ctx, spec, "x"); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate id: %v", err)
		}
		var inv *InvalidError
		if _, _, err := s.Create(ctx, Spec{Workspace: "Bad Name"}, "x"); !errors.As(err, &inv) || inv.Field != "workspace" {
			t.Errorf("invalid workspace: %v", err)
		}
		if _, _, err := s.Create(ctx, Spec{Workspace: "w", Limits: config.Limits{Budgets: []config.Budget{{AmountEUR: 1, Period: "year"}}}}, "x"); !errors.As(err, &inv) || inv.Field != "limits.budgets[0].period" {
			t.Errorf("invalid budget: %v", err)
		}
		k2, _, err := s.Create(ctx, Spec{Workspace: "legal"}, "cli")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k2.ID, "key-") {
			t.Errorf("generated id %q", k2.ID)
		}
		all, err := s.List(ctx, Filter{})
		if err != nil || len(all) != 2 {
			t.Fatalf("list: %d %v", len(all), err)
		}
		ws, _ := s.List(ctx, Filter{Workspace: "legal"})
		if len(ws) != 1 || ws[0].ID != k2.ID {
			t.Errorf("list by workspace: %+v", ws)
		}
		if _, err := s.Revoke(ctx, k2.ID, "x"); err != nil {
			t.Fatal(err)
		}
		act, _ := s.List(ctx, Filter{Status: StatusActive})
		rev, _ := s.List(ctx, Filter{Status: StatusRevoked})
		if len(act) != 1 || act[0].ID != "support-bot" || len(rev) != 1 || rev[0].ID != k2.ID {
			t.Errorf("list by status: %v %v", act, rev)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("get unknown: %v", err)
		}
		if _, err := s.Revoke(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown: %v", err)
		}
		if _, _, err := s.Rotate(ctx, "nope", 0, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rotate unknown: %v", err)
		}
		if _, _, err := s.Rotate(ctx, k2.ID, 0, "x"); !errors.Is(err, ErrRevoked) {
			t.Errorf("rotate revoked: %v", err)
		}
	})
}

// TestSecretNotStored: the database holds the key's HMAC under the hash
// key, never the secret, nor its plain SHA-256.
func TestSecretNotStored(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		_, secret, err := s.Create(ctx, Spec{ID: "k", Workspace: "w"}, "x")
		if err != nil {
			t.Fatal(err)
		}
		var digest string
		if err := s.db.SQL.QueryRowContext(ctx, `SELECT digest FROM virtual_keys WHERE id = 'k'`).Scan(&digest); err != nil {
			t.Fatal(err)
		}
		plain := sha256.Sum256([]byte(secret))
		if digest == hex.EncodeToString(plain[:]) || digest != s.hasher.Sum(secret).hex() {
			t.Errorf("stored digest is not the keyed hash")
		}
		if dumpContains(t, s, secret[DisplayPrefixLen:]) {
			t.Errorf("the secret is in the database")
		}
	})
}

// dumpContains reports whether any text column of the keys tables holds s.
func dumpContains(t *testing.T, s *Store, needle string) bool {
	t.Helper()
	for _, table := range []string{"virtual_keys", "provider_keys"} {
		rows, err := s.db.SQL.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if strings.Contains(fmt.Sprint(v), needle) {
					rows.Close()
					return true
				}
				if b, ok := v.([]byte); ok && bytes.Contains(b, []byte(needle)) {
					rows.Close()
					return true
				}
			}
		}
		rows.Close()
	}
	return false
}

// OnLimits is told of keys whose own limits a refresh changed (their
// budgets are seeded then), not of new keys, rotations or revocations.
func TestTableOnLimits(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		tb := NewTable(s, zap.NewNop())
		var told [][]string
		tb.OnLimits(func(ps []auth.Principal) {
			var ids []string
			for _, p := range ps {
				ids = append(ids, p.KeyID+":"+p.Limits.Budgets[0].Period)
			}
			told = append(told, ids)
		})
		day := config.Limits{Budgets: []config.Budget{{AmountEUR: 1, Period: "day"}}}
		for _, id := range []string{"a", "b"} {
			if _, _, err := s.Create(ctx, Spec{ID: id, Workspace: "w", Limits: day}, "x"); err != nil {
				t.Fatal(err)
			}
		}
		mustRefresh(t, tb)
		week := config.Limits{Budgets: []config.Budget{{AmountEUR: 1, Period: "week"}}}
		if _, err := s.SetLimits(ctx, "b", week, "x"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Rotate(ctx, "a", 0, "x"); err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		if _, err := s.SetLimits(ctx, "a", day, "x"); err != nil { // the same limits again
			t.Fatal(err)
		}
		if _, err := s.Revoke(ctx, "b", "x"); err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		if want := [][]string{{"b:week"}}; !reflect.DeepEqual(told, want) {
			t.Errorf("told %v, want %v", told, want)
		}
		if ps := tb.WithLimits(); len(ps) != 1 || ps[0].KeyID != "a" {
			t.Errorf("keys with limits: %+v", ps)
		}
	})
}

func TestTableLookup(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		tb := NewTable(s, zap.NewNop())
		now := time.Now()
		tb.now = func() time.Time { return now }
		lim := config.Limits{RateLimit: config.RateLimit{TokensPerMinute: 1000}}
		k, secret, err := s.Create(ctx, Spec{ID: "a", Workspace: "w", Team: "t", User: "u", Models: []string{"m1"},
			ExpiresAt: now.Add(time.Hour), Limits: lim}, "x")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tb.Lookup(secret); !errors.Is(err, ErrUnknown) {
			t.Fatalf("before refresh: %v", err)
		}
		mustRefresh(t, tb)
		for _, cred := range []string{secret, "Bearer " + secret, "bearer  " + secret + " "} {
			p, ok, err := tb.Lookup(cred)
			if !ok || err != nil || p.KeyID != "a" || p.Workspace != "w" || p.Team != "t" || p.User != "u" || !p.Authenticated ||
				!reflect.DeepEqual(p.Models, []string{"m1"}) || p.Limits == nil || p.Limits.RateLimit.TokensPerMinute != 1000 {
				t.Errorf("%q: %+v %v %v", cred, p, ok, err)
			}
		}
		// Not the store's shape: not ours to judge.
		for _, other := range []string{"", "sk-other", strings.ToUpper(secret), "sk-s"} {
			if _, ok, err := tb.Lookup(other); ok || err != nil {
				t.Errorf("%q matched: %v", other, err)
			}
		}
		// Meant as a store key and not one (cut short when pasted, an extra
		// character, mistyped): refused, never anonymous.
		for _, cut := range []string{secret[:len(secret)-1], secret + "x", "sk-sw-bogus", "Bearer sk-sw-", secret[:20] + "!" + secret[21:]} {
			if _, ok, err := tb.Lookup(cut); !ok || !errors.Is(err, ErrMalformed) {
				t.Errorf("%q: %v %v, want refused as malformed", cut, ok, err)
			}
		}
		// The store's shape but no such key: refused.
		if _, ok, err := tb.Lookup(secret[:len(secret)-1] + "x"); !ok || !errors.Is(err, ErrUnknown) {
			t.Errorf("unknown store-shaped key: %v %v", ok, err)
		}
		// Expiry is checked at lookup time, with no refresh.
		now = k.ExpiresAt
		if _, ok, err := tb.Lookup(secret); !ok || !errors.Is(err, ErrExpired) {
			t.Errorf("expired: %v %v", ok, err)
		}
		now = time.Now()

		// Rotation without grace: the old secret stops at the next refresh,
		// refused as the key's (named, for the log), not as unknown.
		_, secret2, err := s.Rotate(ctx, "a", 0, "x")
		if err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		if p, _, err := tb.Lookup(secret); !errors.Is(err, ErrRotated) || p.KeyID != "a" || p.Authenticated {
			t.Errorf("old secret after rotation: %v %+v", err, p)
		}
		if p, ok, err := tb.Lookup(secret2); !ok || err != nil || p.KeyID != "a" {
			t.Errorf("new secret: %v %v", ok, err)
		}
		// With grace: both work until it ends.
		k3, secret3, err := s.Rotate(ctx, "a", time.Minute, "x")
		if err != nil {
			t.Fatal(err)
		}
		if k3.GraceUntil.IsZero() || k3.RotatedBy != "x" {
			t.Errorf("rotated record %+v", k3)
		}
		mustRefresh(t, tb)
		for sec, previous := range map[string]bool{secret2: true, secret3: false} {
			// The audit record tells the two secrets' requests apart.
			if p, ok, err := tb.Lookup(sec); !ok || err != nil || p.PreviousSecret != previous {
				t.Errorf("during grace: %v %v, previous secret %v", ok, err, p.PreviousSecret)
			}
		}
		now = now.Add(time.Minute + time.Second)
		if _, _, err := tb.Lookup(secret2); !errors.Is(err, ErrRevoked) {
			t.Errorf("after grace: %v", err)
		}
		if _, ok, err := tb.Lookup(secret3); !ok || err != nil {
			t.Errorf("new secret after grace: %v %v", ok, err)
		}
		now = time.Now()
		// Revocation ends both at once, grace or not.
		_, secret4, err := s.Rotate(ctx, "a", time.Hour, "x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Revoke(ctx, "a", "x"); err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		if _, ok, err := tb.Lookup(secret4); !ok || !errors.Is(err, ErrRevoked) {
			t.Errorf("revoked: %v %v", ok, err)
		}
		if p, _, err := tb.Lookup(secret3); !errors.Is(err, ErrRevoked) || p.KeyID != "a" {
			t.Errorf("the secret in its grace period after the revocation: %v %+v", err, p)
		}
		if tb.Len() != 1 {
			t.Errorf("table has %d entries", tb.Len())
		}
	})
}

// TestCrossReplicaRevocation: two stores on one database, as two
// replicas; a key revoked through one is refused by the other's table
// within a second.
func TestCrossReplicaRevocation(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx, a, tb := twoReplicas(t, open)
		_, secret, err := a.Create(ctx, Spec{ID: "shared", Workspace: "w"}, "x")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, "the other replica to accept the new key", func() bool {
			_, ok, err := tb.Lookup(secret)
			return ok && err == nil
		})
		revoked := time.Now()
		if _, err := a.Revoke(ctx, "shared", "x"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, "the other replica to refuse the revoked key", func() bool {
			_, _, err := tb.Lookup(secret)
			return errors.Is(err, ErrRevoked)
		})
		t.Logf("refused by the other replica %s after the revocation", time.Since(revoked).Round(time.Millisecond))
	})
}

// TestSetLimitsAcrossReplicas: a key's own limits replaced on one replica
// reach the other's table within a second; bad limits, an unknown key and
// a revoked one are refused.
func TestSetLimitsAcrossReplicas(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx, a, tb := twoReplicas(t, open)
		_, secret, err := a.Create(ctx, Spec{ID: "capped", Workspace: "w", Limits: config.Limits{RateLimit: config.RateLimit{RequestsPerMinute: 2}}}, "x")
		if err != nil {
			t.Fatal(err)
		}
		raised := config.Limits{Budgets: []config.Budget{{AmountEUR: 5, Period: "day"}}, RateLimit: config.RateLimit{RequestsPerMinute: 20}}
		k, err := a.SetLimits(ctx, "capped", raised, "x")
		if err != nil || k.Limits.RateLimit.RequestsPerMinute != 20 || len(k.Limits.Budgets) != 1 {
			t.Fatalf("set: %+v %v", k.Limits, err)
		}
		waitFor(t, time.Second, "the other replica to see the new limits", func() bool {
			p, ok, err := tb.Lookup(secret)
			return ok && err == nil && p.Limits != nil && p.Limits.RateLimit.RequestsPerMinute == 20
		})
		var inv *InvalidError
		if _, err := a.SetLimits(ctx, "capped", config.Limits{Budgets: []config.Budget{{AmountEUR: 4e-7, Period: "day"}}}, "x"); !errors.As(err, &inv) || inv.Field != "limits.budgets[0].amount_eur" {
			t.Errorf("a budget under a micro-euro: %v", err)
		}
		if _, err := a.SetLimits(ctx, "nope", raised, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown key: %v", err)
		}
		if _, err := a.Revoke(ctx, "capped", "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetLimits(ctx, "capped", raised, "x"); !errors.Is(err, ErrRevoked) {
			t.Errorf("revoked key: %v", err)
		}
	})
}

// twoReplicas opens two stores on one database, as two replicas, and a
// table following the second; they stop with the test.
func twoReplicas(t *testing.T, open func(*testing.T, *Keyring) *Store) (context.Context, *Store, *Table) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, b := open(t, nil), open(t, nil)
	tb := NewTable(b, zap.NewNop())
	mustRefresh(t, tb)
	go tb.Run(ctx, config.DefaultRefreshInterval)
	return ctx, a, tb
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentWriters: writers on two handles at once; every key gets a
// distinct generation, and a table following along ends with all of them.
func TestConcurrentWriters(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a, b := open(t, nil), open(t, nil)
		tb := NewTable(a, zap.NewNop())
		go tb.Run(ctx, 20*time.Millisecond)
		const n = 40
		secrets := make([]string, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if i%2 == 1 {
					s = b
				}
				_, sec, err := s.Create(ctx, Spec{ID: fmt.Sprintf("k%02d", i), Workspace: "w"}, "x")
				secrets[i] = sec
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if at, _, err := a.Generation(ctx, store.Mark{}); err != nil || at.Gen != n {
			t.Errorf("generation %d, want %d (%v)", at.Gen, n, err)
		}
		waitFor(t, 2*time.Second, "the table to hold every key", func() bool { return tb.Len() == n })
		for i, sec := range secrets {
			if p, ok, err := tb.Lookup(sec); !ok || err != nil || p.KeyID != fmt.Sprintf("k%02d", i) {
				t.Errorf("key %d: %v %v", i, ok, err)
			}
		}
	})
}

func TestProviderKeys(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, testRing(t, "mk1"))
		if err := s.SetProviderKey(ctx, "legal", "openai", []byte("sk-openai-legal-secret"), "admin:root"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetProviderKey(ctx, "support", "openai", []byte("sk-openai-support-secret"), "admin:root"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetProviderKey(ctx, "legal", "openai", []byte("sk-openai-legal-v2"), "admin:ops"); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListProviderKeys(ctx, "")
		if err != nil || len(list) != 2 || list[0].Workspace != "legal" || list[0].UpdatedBy != "admin:ops" || list[0].MasterKeyID != "mk1" {
			t.Fatalf("list %+v %v", list, err)
		}
		for _, secret := range []string{"sk-openai-legal", "sk-openai-support", "openai-legal-v2"} {
			if dumpContains(t, s, secret) {
				t.Errorf("%s is stored in clear", secret)
			}
		}
		got := secrets(t, s)
		if got["legal/openai"] != "sk-openai-legal-v2" || got["support/openai"] != "sk-openai-support-secret" {
			t.Errorf("decrypted %v", got)
		}

		// A second replica without master keys cannot read them, and
		// says so: its Envoy would send the shared credential instead.
		if err := open(t, nil).EachProviderSecret(ctx, func(ProviderSecret) error { return nil }); !errors.Is(err, ErrMasterKeyMissing) {
			t.Errorf("no keyring: %v", err)
		}
		// Rotation: mk2 first, mk1 kept to read; rotate-master moves all.
		s2 := open(t, testRing(t, "mk2", "mk1"))
		if got := secrets(t, s2); len(got) != 2 {
			t.Errorf("old records unreadable under the new ring: %v", got)
		}
		n, err := s2.RotateMaster(ctx, "admin:root")
		if err != nil || n != 2 {
			t.Fatalf("rotate-master: %d %v", n, err)
		}
		if n, _ := s2.RotateMaster(ctx, "admin:root"); n != 0 {
			t.Errorf("second rotation re-encrypted %d", n)
		}
		s3 := open(t, testRing(t, "mk2")) // mk1 removed
		if got := secrets(t, s3); got["legal/openai"] != "sk-openai-legal-v2" {
			t.Errorf("after rotation: %v", got)
		}
		if err := s.EachProviderSecret(ctx, func(ProviderSecret) error { return nil }); !errors.Is(err, ErrMasterKeyMissing) ||
			!strings.Contains(err.Error(), "mk2") {
			t.Errorf("old ring after rotation: %v", err)
		}
		// A ciphertext moved to another record does not decrypt.
		if _, err := s.db.SQL.ExecContext(ctx, `UPDATE provider_keys SET nonce = (SELECT nonce FROM provider_keys WHERE workspace = 'support'),
			ciphertext = (SELECT ciphertext FROM provider_keys WHERE workspace = 'support') WHERE workspace = 'legal'`); err != nil {
			t.Fatal(err)
		}
		err = s3.EachProviderSecret(ctx, func(ProviderSecret) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "legal/openai") || strings.Contains(err.Error(), "sk-openai") {
			t.Errorf("swapped record: %v", err)
		}
		if err := s3.DeleteProviderKey(ctx, "legal", "openai"); err != nil {
			t.Fatal(err)
		}
		if err := s3.DeleteProviderKey(ctx, "legal", "openai"); !errors.Is(err, ErrNoProviderKey) {
			t.Errorf("delete twice: %v", err)
		}
		var inv *InvalidError
		if err := s3.SetProviderKey(ctx, "legal", "openai", nil, "x"); !errors.As(err, &inv) {
			t.Errorf("empty secret: %v", err)
		}
	})
}

func secrets(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.EachProviderSecret(context.Background(), func(p ProviderSecret) error {
		out[p.Workspace+"/"+p.Provider] = string(p.Secret)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTableFollowsARestore: a database restored from an older backup and
// written to again before a replica's next poll, up to or past the
// generation the replica had loaded (it was cut off during the restore,
// or the operator revoked keys anew at once), is reloaded whole. Before,
// the replica took the same generation for the same keys: a key created
// after the backup, gone from the store, and a key revoked after the
// restore kept working on it until it restarted.
func TestTableFollowsARestore(t *testing.T) {
	for name, more := range map[string]int{"catching up with the replica": 0, "passing it": 2} {
		t.Run(name, func(t *testing.T) {
			conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
				ctx := context.Background()
				s := open(t, nil)
				core, logs := observer.New(zap.WarnLevel)
				tb := NewTable(open(t, nil), zap.New(core))
				secrets := map[string]string{}
				create := func(id string) {
					t.Helper()
					_, sec, err := s.Create(ctx, Spec{ID: id, Workspace: "w"}, "x")
					if err != nil {
						t.Fatal(err)
					}
					secrets[id] = sec
				}
				revoke := func(id string) {
					t.Helper()
					if _, err := s.Revoke(ctx, id, "x"); err != nil {
						t.Fatal(err)
					}
				}
				create("kept")
				create("revived")
				tables, err := s.DB().Tables(ctx)
				if err != nil {
					t.Fatal(err)
				}
				restore := testsrv.Backup(t, s.DB().SQL, tables...)
				revoke("revived")
				create("vanished")
				mustRefresh(t, tb)
				loaded := tb.Generation()

				restore() // the replica does not poll until the store is past it again
				revoke("revived")
				revoke("kept")
				for i := range more {
					create(fmt.Sprintf("later-%d", i))
				}
				mustRefresh(t, tb)
				for id, want := range map[string]error{"kept": ErrRevoked, "revived": ErrRevoked, "vanished": ErrUnknown} {
					if _, _, err := tb.Lookup(secrets[id]); !errors.Is(err, want) {
						t.Errorf("%s: %v, want %v", id, err, want)
					}
				}
				if tb.Generation() != loaded+int64(more) || tb.Len() != 2+more {
					t.Errorf("table at generation %d with %d keys, want %d with %d", tb.Generation(), tb.Len(), loaded+int64(more), 2+more)
				}
				// Said once, and followed as usual from then on.
				create("after")
				mustRefresh(t, tb)
				if _, _, err := tb.Lookup(secrets["after"]); err != nil {
					t.Errorf("a key created after the reload: %v", err)
				}
				if n := logs.FilterMessageSnippet("key store went back").Len(); n != 1 {
					t.Errorf("%d warnings that the store went back, want 1: %v", n, logs.All())
				}
			})
		})
	}
}

// TestUpgradeAfterARollback: a database rolled back to before the stamps
// (a dump from before the upgrade restored, which leaves the stamps table
// the upgrade made) upgrades again: the step that failed on the table
// ("keys_stamps already exists", the upgrade probe) takes it, emptied of
// the stamps of the history the restore undid, and a table on it loads
// whole, since an older build's writes carry no stamp.
func TestUpgradeAfterARollback(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		_, secret, err := s.Create(ctx, Spec{ID: "a", Workspace: "w"}, "x")
		if err != nil {
			t.Fatal(err)
		}
		// What the restore and the older build leave: the step unrecorded,
		// the stamps table full, a write without a stamp.
		for _, q := range []string{`DELETE FROM schema_migrations WHERE component = 'keys' AND version >= 2`,
			`UPDATE keys_generation SET gen = gen + 1 WHERE id = 1`} {
			if _, err := s.DB().SQL.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		again := open(t, nil)
		var n int
		if err := again.DB().SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM keys_stamps`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d stamps left after the upgrade (%v), want none", n, err)
		}
		tb := NewTable(again, zap.NewNop())
		mustRefresh(t, tb)
		if _, _, err := tb.Lookup(secret); err != nil || tb.Generation() != 2 {
			t.Errorf("the table after the upgrade: %v at generation %d", err, tb.Generation())
		}
	})
}

// TestTableWrittenWhileLoading: a key created while the table reads the
// rows changed since its mark is not in it under the older mark (it was,
// and after a restore to a backup taken at that mark the store read as the
// same history at the next poll, so the key, gone from the store, stayed
// live: the red team); it is the next refresh's, read alone, or gone with
// a restore. No refresh reloads whole for it (every refresh did under
// steady writes, 0.6–1 s each at 50,000 keys on PostgreSQL).
func TestTableWrittenWhileLoading(t *testing.T) {
	for _, restored := range []bool{false, true} {
		t.Run(fmt.Sprintf("restored=%v", restored), func(t *testing.T) {
			conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
				ctx := context.Background()
				s := open(t, nil)
				tb := NewTable(open(t, nil), zap.NewNop())
				if _, _, err := s.Create(ctx, Spec{ID: "kept", Workspace: "w"}, "x"); err != nil {
					t.Fatal(err)
				}
				tables, err := s.DB().Tables(ctx)
				if err != nil {
					t.Fatal(err)
				}
				restore := testsrv.Backup(t, s.DB().SQL, tables...) // at the mark the poll below reads
				var vanished string
				loading = func() {
					loading = func() {}
					_, sec, err := s.Create(ctx, Spec{ID: "vanished", Workspace: "w"}, "x")
					if err != nil {
						t.Error(err)
					}
					vanished = sec
				}
				t.Cleanup(func() { loading = func() {} })
				mustRefresh(t, tb)
				if _, _, err := tb.Lookup(vanished); !errors.Is(err, ErrUnknown) || tb.Generation() != 1 {
					t.Fatalf("the key created while the table loaded: %v, the table at generation %d, want unknown at 1", err, tb.Generation())
				}
				if restored {
					restore()
				}
				_, after, err := s.Create(ctx, Spec{ID: "after", Workspace: "w"}, "x")
				if err != nil {
					t.Fatal(err)
				}
				mustRefresh(t, tb)
				want := error(nil)
				if restored {
					want = ErrUnknown
				}
				if _, _, err := tb.Lookup(vanished); !errors.Is(err, want) {
					t.Errorf("the key created while the table loaded: %v, want %v", err, want)
				}
				if _, _, err := tb.Lookup(after); err != nil {
					t.Errorf("a key created after: %v", err)
				}
				if w, r := tb.loaded.whole.Load(), tb.loaded.rows.Load(); w != 1 || r != 3-int64(b2i(restored)) {
					t.Errorf("%d whole reloads and %d rows read, want 1 and %d", w, r, 3-b2i(restored))
				}
			})
		})
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestRefreshReadsOnlyChanges: with many keys and writers creating and
// revoking keys at once, on another replica, each refresh reads only the
// rows changed since the table's mark: every row once, one whole load (the
// first). Before, a write landing between a refresh's reading of the
// generation and of the rows had the next one reload every key, and under
// steady writes that was every refresh (the data-volume probe: 1.5
// creates/s at 4 writers with 53,000 keys on PostgreSQL). The table ends
// holding the store: the created keys work, the revoked ones are refused.
func TestRefreshReadsOnlyChanges(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, other := open(t, nil), open(t, nil)
		const n, writers, each = 2000, 4, 25
		seedKeys(t, s, n)
		tb := NewTable(other, zap.NewNop())
		mustRefresh(t, tb)
		go tb.Run(ctx, time.Millisecond)
		var wg sync.WaitGroup
		secrets := make([][]string, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, sec, err := s.Create(ctx, Spec{ID: fmt.Sprintf("new-%d-%d", w, i), Workspace: "w"}, "x")
					if err != nil {
						t.Error(err)
						return
					}
					secrets[w] = append(secrets[w], sec)
					if _, err := s.Revoke(ctx, fmt.Sprintf("seed-%06d", w*each+i), "x"); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		at, _, err := s.Generation(ctx, store.Mark{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the table to reach the store", func() bool { return tb.Generation() == at.Gen })
		cancel()
		if w, r, want := tb.loaded.whole.Load(), tb.loaded.rows.Load(), int64(n+2*writers*each); w != 1 || r != want {
			t.Errorf("%d whole reloads and %d rows read, want 1 and %d", w, r, want)
		}
		for w := range writers {
			for i, sec := range secrets[w] {
				if _, _, err := tb.Lookup(sec); err != nil {
					t.Errorf("created key %d-%d: %v", w, i, err)
				}
			}
		}
		for i := range writers * each {
			k, err := s.Get(context.Background(), fmt.Sprintf("seed-%06d", i))
			if err != nil || k.RevokedAt.IsZero() {
				t.Fatalf("seed key %d: %v, revoked %v", i, err, k.RevokedAt)
			}
		}
		if tb.Len() != n+writers*each {
			t.Errorf("%d keys in the table, want %d", tb.Len(), n+writers*each)
		}
	})
}

// TestTableFollowsARestoreToEmpty: a store put back to before its first
// write (a dump of an empty store, a new database) holds no key: the
// table's keys go with it. They stayed live until the next write (the red
// team).
func TestTableFollowsARestoreToEmpty(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		tb := NewTable(open(t, nil), zap.NewNop())
		tables, err := s.DB().Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		restore := testsrv.Backup(t, s.DB().SQL, tables...) // generation 0
		_, sec, err := s.Create(ctx, Spec{ID: "gone", Workspace: "w"}, "x")
		if err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		restore()
		mustRefresh(t, tb)
		if _, _, err := tb.Lookup(sec); !errors.Is(err, ErrUnknown) || tb.Len() != 0 {
			t.Errorf("after a restore to the empty store: %v, %d keys", err, tb.Len())
		}
	})
}

// TestLimitsChangedInAWholeReload: a key's limits changed while the table
// reloads whole (after a write it cannot place: an older build's) are reported (OnLimits),
// so its new budget is seeded from what the key spent in the period; they
// were compared with the empty new table and never were (the red team).
func TestLimitsChangedInAWholeReload(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		tb := NewTable(open(t, nil), zap.NewNop())
		var changed []string
		tb.OnLimits(func(ps []auth.Principal) {
			for _, p := range ps {
				changed = append(changed, p.KeyID)
			}
		})
		month := func(eur float64) config.Limits {
			return config.Limits{Budgets: []config.Budget{{AmountEUR: eur, Period: "month"}}}
		}
		if _, _, err := s.Create(ctx, Spec{ID: "a", Workspace: "w", Limits: month(50)}, "x"); err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		if _, err := s.SetLimits(ctx, "a", month(5), "x"); err != nil {
			t.Fatal(err)
		}
		// A write of an older build (no stamp; a rolling upgrade): the
		// table cannot tell the history, and reloads whole.
		if _, err := s.DB().SQL.ExecContext(ctx, `UPDATE keys_generation SET gen = gen + 1 WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		mustRefresh(t, tb)
		if w := tb.loaded.whole.Load(); w != 2 {
			t.Errorf("%d whole reloads, want 2", w)
		}
		if len(changed) != 1 || changed[0] != "a" {
			t.Errorf("keys reported with new limits: %v, want [a]", changed)
		}
	})
}

// TestListPage: a store's keys are listed by pages in the order of their
// ids; paging by the last id lists a key that exists throughout once,
// whatever is created meanwhile; filters (status too, which the query
// derives from revoked_at and expires_at) apply before a page is cut.
func TestListPage(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx := context.Background()
		s := open(t, nil)
		now := time.Now()
		s.now = func() time.Time { return now }
		for i := range 50 {
			spec := Spec{ID: fmt.Sprintf("k%02d", i), Workspace: "w" + strconv.Itoa(i%2), Team: "t" + strconv.Itoa(i%3)}
			if i%10 == 9 {
				spec.ExpiresAt = now.Add(time.Hour)
			}
			if _, _, err := s.Create(ctx, spec, "x"); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"k04", "k19", "k33"} {
			if _, err := s.Revoke(ctx, id, "x"); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(ks []Key) string {
			var out []string
			for _, k := range ks {
				out = append(out, k.ID)
			}
			return strings.Join(out, ",")
		}
		// All, by pages of 7, with keys created between the pages: one
		// before the cursor (not listed), one after it (listed).
		var got []string
		after := ""
		for n := 0; ; n++ {
			page, more, err := s.ListPage(ctx, Filter{}, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 7 || (more && len(page) != 7) {
				t.Fatalf("page %d: %d keys, more %v", n, len(page), more)
			}
			got = append(got, ids(page))
			if !more {
				break
			}
			after = page[len(page)-1].ID
			if n == 2 {
				for _, id := range []string{"k00a", "k40a"} {
					if _, _, err := s.Create(ctx, Spec{ID: id, Workspace: "w0"}, "x"); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		var want []string
		for i := range 50 {
			want = append(want, fmt.Sprintf("k%02d", i))
			if i == 40 {
				want = append(want, "k40a")
			}
		}
		if g := strings.Join(got, ","); g != strings.Join(want, ",") {
			t.Errorf("pages of 7:\n got %s\nwant %s", g, strings.Join(want, ","))
		}

		// Filters with paging: a time past the expiry makes k09, k29,
		// k39, k49 expired (k19 is revoked).
		for name, tc := range map[string]struct {
			f     Filter
			after string
			limit int
			want  string
			more  bool
		}{
			"revoked":                    {Filter{Status: StatusRevoked}, "", 2, "k04,k19", true},
			"revoked, after the first 2": {Filter{Status: StatusRevoked}, "k19", 2, "k33", false},
			"expired":                    {Filter{Status: StatusExpired}, "", 10, "k09,k29,k39,k49", false},
			"active in w1, team t0":      {Filter{Workspace: "w1", Team: "t0", Status: StatusActive}, "", 3, "k03,k15,k21", true},
			"active in w1, team t0, on":  {Filter{Workspace: "w1", Team: "t0", Status: StatusActive}, "k21", 3, "k27,k45", false},
			"team t2 after k40":          {Filter{Team: "t2"}, "k40", 100, "k41,k44,k47", false},
			"nothing after the last":     {Filter{}, "k49", 5, "", false},
		} {
			s.now = func() time.Time { return now.Add(2 * time.Hour) }
			page, more, err := s.ListPage(ctx, tc.f, tc.after, tc.limit)
			if err != nil || ids(page) != tc.want || more != tc.more {
				t.Errorf("%s: %s more %v (%v), want %s more %v", name, ids(page), more, err, tc.want, tc.more)
			}
		}
		var inv *InvalidError
		for _, n := range []int{0, -1, MaxPage + 1} {
			if _, _, err := s.ListPage(ctx, Filter{}, "", n); !errors.As(err, &inv) || inv.Field != "limit" {
				t.Errorf("limit %d: %v", n, err)
			}
		}
		if all, err := s.List(ctx, Filter{Status: StatusActive}); err != nil || len(all) != 52-3-4 {
			t.Errorf("List active: %d keys, %v", len(all), err)
		}
	})
}

// TestListPageCursor: a cursor names the id it continues after; anything
// else is refused.
func TestListPageCursor(t *testing.T) {
	if id, err := ParseCursor(Cursor("k-07_x")); err != nil || id != "k-07_x" {
		t.Errorf("round trip: %q %v", id, err)
	}
	for _, c := range []string{"", "k07", Cursor("Bad Id"), "!!!", Cursor("")} {
		if _, err := ParseCursor(c); err == nil {
			t.Errorf("cursor %q accepted", c)
		}
	}
}

// TestSetModelsAcrossReplicas: a key's models replaced on one replica
// reach the other's table within a second, and its table names the ones
// a catalog no longer has; a model the config does not have, an unknown
// key and a revoked one are refused.
func TestSetModelsAcrossReplicas(t *testing.T) {
	conform(t, func(t *testing.T, open func(*testing.T, *Keyring) *Store) {
		ctx, a, tb := twoReplicas(t, open)
		_, secret, err := a.Create(ctx, Spec{ID: "pinned", Workspace: "w", Models: []string{"old"}}, "x")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, "the other replica to see the key", func() bool {
			_, ok, err := tb.Lookup(secret)
			return ok && err == nil
		})
		if stale := tb.StaleModels(func(m string) bool { return m == "new" }); len(stale["pinned"]) != 1 || stale["pinned"][0] != "old" {
			t.Errorf("stale models %v, want pinned: [old]", stale)
		}
		c := &config.Config{Workspaces: []config.Workspace{{Name: "w"}}, Models: []config.Model{{ID: "new"}}}
		var inv *InvalidError
		if _, err := a.SetModels(ctx, "pinned", []string{"old"}, c, "x"); !errors.As(err, &inv) || inv.Field != "models[0]" {
			t.Errorf("a model the config does not have: %v", err)
		}
		k, err := a.SetModels(ctx, "pinned", []string{"new"}, c, "x")
		if err != nil || len(k.Models) != 1 || k.Models[0] != "new" {
			t.Fatalf("set: %+v %v", k.Models, err)
		}
		waitFor(t, time.Second, "the other replica to see the new models", func() bool {
			p, ok, err := tb.Lookup(secret)
			return ok && err == nil && len(p.Models) == 1 && p.Models[0] == "new"
		})
		if _, err := a.SetModels(ctx, "nope", nil, c, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown key: %v", err)
		}
		if _, err := a.Revoke(ctx, "pinned", "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetModels(ctx, "pinned", nil, c, "x"); !errors.Is(err, ErrRevoked) {
			t.Errorf("revoked key: %v", err)
		}
	})
}
