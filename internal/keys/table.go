package keys

import (
	"context"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Table is the request path's copy of the key store: digest → principal, in
// memory, swapped whole (copy on write) so a lookup takes no lock and never
// touches the database. Run keeps it current by polling the store's
// generation counter; a revocation reaches it within one interval plus one
// query. When the store cannot be reached the table keeps serving what it
// last loaded (revocations made meanwhile wait for the store to come back).
// A store that went back (restored from an older backup) is reloaded
// whole, however far it has counted since (store.Generation).
type Table struct {
	st     *Store
	hasher *Hasher
	log    *zap.Logger
	snap   atomic.Pointer[snapshot]
	now    func() time.Time

	mu    sync.Mutex // one refresh at a time
	reach store.Reach
	// onLimits, if set, is told of keys whose own limits a refresh
	// changed (OnLimits).
	onLimits atomic.Pointer[func([]auth.Principal)]
}

type snapshot struct {
	at store.Mark
	// stale: the store was written while the table loaded, so rows newer
	// than at may be in it, of a history a restore could undo without at
	// showing it: the next change reloads everything.
	stale    bool
	byDigest map[Digest]*entry
	byID     map[string]*entry
}

type entry struct {
	p      auth.Principal
	digest Digest
	// prev is the secret before a rotation, valid until prevUntil.
	prev      Digest
	hasPrev   bool
	prevUntil int64 // unix nanos
	expires   int64 // unix nanos, 0: never
	revoked   bool
}

// NewTable returns an empty table over st; call Refresh (or Run) to fill it.
func NewTable(st *Store, log *zap.Logger) *Table {
	t := &Table{st: st, hasher: st.hasher, log: log, now: time.Now}
	t.snap.Store(&snapshot{byDigest: map[Digest]*entry{}, byID: map[string]*entry{}})
	return t
}

var _ auth.Source = (*Table)(nil)

// Lookup resolves a bearer token to its key's principal (auth.Source). A
// token that is not of the store's shape returns at once (not ours: the
// config's keys and the auth mode decide). One of the store's shape is
// ours: unknown (never issued, or rotated out), revoked or expired, it is
// refused in every auth mode rather than served as anonymous. Its HMAC is
// computed and looked up by digest. The map lookup's timing depends
// on the digest, never directly on the secret: an attacker cannot choose
// digests, so it teaches nothing about a secret.
func (t *Table) Lookup(token string) (auth.Principal, bool, error) {
	secret, ok := ParseSecret(token)
	if !ok {
		if strings.HasPrefix(trimBearer(token), SecretPrefix) {
			// A store key cut short or mistyped: meant as one, so refused,
			// never the anonymous principal.
			return auth.Principal{}, true, ErrMalformed
		}
		return auth.Principal{}, false, nil
	}
	d := t.hasher.Sum(secret)
	e := t.snap.Load().byDigest[d]
	if e == nil {
		return auth.Principal{}, true, ErrUnknown
	}
	now := t.now().UnixNano()
	switch {
	case e.revoked:
		return auth.Principal{}, true, ErrRevoked
	case e.expires != 0 && now >= e.expires:
		return auth.Principal{}, true, ErrExpired
	case d != e.digest && (!e.hasPrev || now >= e.prevUntil):
		return auth.Principal{}, true, ErrRevoked // rotated, grace over
	}
	return e.p, true, nil
}

// Len is the number of keys in the table, revoked ones included.
func (t *Table) Len() int { return len(t.snap.Load().byID) }

// Generation is the store generation the table reflects.
func (t *Table) Generation() int64 { return t.snap.Load().at.Gen }

// Loaded is the store generation and stamp the table reflects. The control
// plane re-reads provider keys (Store.EachProviderSecret) when it changes:
// also when a store that went back reaches the same generation again.
func (t *Table) Loaded() store.Mark { return t.snap.Load().at }

// Healthy reports whether the last refresh reached the store, and when the
// last successful one was.
func (t *Table) Healthy() (bool, time.Time) { return t.reach.Healthy() }

// WithLimits returns the principals of the keys with limits of their own,
// revoked ones left out.
func (t *Table) WithLimits() []auth.Principal {
	var out []auth.Principal
	for _, e := range t.snap.Load().byID {
		if e.p.Limits != nil && !e.revoked {
			out = append(out, e.p)
		}
	}
	return out
}

// OnLimits has f told, after each refresh that loaded them, of the keys
// whose own limits changed (a key's limits replaced; not new keys, nor
// the first load): a budget added to a key mid-period is seeded from
// what the key spent in it. f must not block the refresh for long.
func (t *Table) OnLimits(f func([]auth.Principal)) { t.onLimits.Store(&f) }

// Refresh loads what changed since the table's generation.
func (t *Table) Refresh(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.refresh(ctx)
	t.reach.Refreshed(err, t.now(), t.log, "key store unreachable: serving the last loaded keys; key changes wait for it",
		"key store reachable again", t.Generation)
	return err
}

// loading is a test's hook between reading the store's mark and loading
// the rows.
var loading = func() {}

func (t *Table) refresh(ctx context.Context) error {
	cur := t.snap.Load()
	at, hist, err := t.st.Generation(ctx, cur.at)
	if err != nil {
		return err
	}
	if at == cur.at {
		return nil
	}
	since := cur.at.Gen
	if hist != store.Continues || cur.stale {
		since = 0
	}
	loading()
	rows, err := t.st.changes(ctx, since)
	if err != nil {
		return err
	}
	// Rows newer than at (written since the generation was read) are
	// loaded again by the next refresh; the table's mark stays one the
	// store stamped. A restore to a backup taken at at would leave them
	// in the table (the red team): the next change reloads whole.
	after, _, err := t.st.Generation(ctx, at)
	if err != nil {
		return err
	}
	next := &snapshot{at: at, stale: after.Gen != at.Gen}
	if since == 0 {
		next.byDigest, next.byID = make(map[Digest]*entry, len(rows)), make(map[string]*entry, len(rows))
	} else {
		next.byDigest, next.byID = maps.Clone(cur.byDigest), maps.Clone(cur.byID)
	}
	var changed []auth.Principal
	for _, r := range rows {
		if old := next.byID[r.ID]; old != nil {
			delete(next.byDigest, old.digest)
			if old.hasPrev {
				delete(next.byDigest, old.prev)
			}
		}
		e := newEntry(r)
		// Against what the table held, also on a whole reload (a stale or
		// unstamped one included): a budget added then was never seeded
		// from the period's spend (the red team).
		if old := cur.byID[r.ID]; old != nil && e.p.Limits != nil && !e.revoked && !reflect.DeepEqual(old.p.Limits, e.p.Limits) {
			changed = append(changed, e.p)
		}
		next.byID[r.ID] = e
		next.byDigest[e.digest] = e
		if e.hasPrev {
			next.byDigest[e.prev] = e
		}
	}
	t.snap.Store(next)
	if hist == store.WentBack {
		// Keys revoked after the backup it was restored from are live in
		// it again, and keys created since are gone: the operator should
		// know, and revoke them anew (docs/deploy.md).
		t.log.Warn("key store went back (restored from an older backup, or another database): reloaded every key",
			zap.Int64("loaded_generation", cur.at.Gen), zap.Int64("store_generation", at.Gen))
	}
	if f := t.onLimits.Load(); f != nil && len(changed) > 0 {
		(*f)(changed)
	}
	return nil
}

func newEntry(r row) *entry {
	e := &entry{digest: r.digest, prev: r.prev, hasPrev: r.hasPrev && !r.GraceUntil.IsZero(), revoked: !r.RevokedAt.IsZero()}
	if !r.ExpiresAt.IsZero() {
		e.expires = r.ExpiresAt.UnixNano()
	}
	if e.hasPrev {
		e.prevUntil = r.GraceUntil.UnixNano()
	}
	e.p = auth.Principal{Authenticated: true, KeyID: r.ID, Workspace: r.Workspace, Team: r.Team, User: r.User,
		Roles: []string{}, Models: r.Models, Routes: r.Routes}
	if !r.Limits.IsZero() {
		l := r.Limits
		e.p.Limits = &l
	}
	return e
}

// Run refreshes the table every interval until ctx ends. Errors are
// logged by Refresh (once per outage) and otherwise ignored: the table
// keeps serving.
func (t *Table) Run(ctx context.Context, every time.Duration) {
	store.Poll(ctx, every, t.Refresh)
}
