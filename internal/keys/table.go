package keys

import (
	"context"
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
// memory, swapped whole (copy on write, of the shards a change touches) so
// a lookup takes no lock and never touches the database. A refresh reads
// the rows changed since the table's mark, in one snapshot with the mark
// they bring it to: a change costs the rows it changed, not the table. Run keeps it current by polling the store's
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
	// loaded counts the rows refreshes read and the whole reloads among
	// them, for tests: a change costs the rows it changed.
	loaded struct{ rows, whole atomic.Int64 }
}

type snapshot struct {
	// at is the store's mark of exactly what the table holds: read in the
	// same snapshot of the store as the rows (Store.changedSince).
	at       store.Mark
	byDigest shards[Digest]
	byID     shards[string]
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
	t.snap.Store(&snapshot{byDigest: makeShards[Digest](0), byID: makeShards[string](0)})
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
	e := t.snap.Load().byDigest.get(d, digestHash(d))
	if e == nil {
		return auth.Principal{}, true, ErrUnknown
	}
	// A key refused for its state names itself (KeyID only, never
	// authenticated), for the operator's log: a leaked key revoked is
	// still tried (the incident-response probe).
	now, refused := t.now().UnixNano(), auth.Principal{KeyID: e.p.KeyID}
	switch {
	case e.revoked:
		return refused, true, ErrRevoked
	case e.expires != 0 && now >= e.expires:
		return refused, true, ErrExpired
	case d != e.digest && (!e.hasPrev || now >= e.prevUntil):
		return refused, true, ErrRotated
	case d != e.digest:
		// The rotated-out secret in its grace: the owner's clients not
		// moved yet, or whoever the rotation was for (a leak).
		p := e.p
		p.PreviousSecret = true
		return p, true, nil
	}
	return e.p, true, nil
}

// Len is the number of keys in the table, revoked ones included.
func (t *Table) Len() int { return t.snap.Load().byID.n }

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
	t.snap.Load().byID.each(func(e *entry) {
		if e.p.Limits != nil && !e.revoked {
			out = append(out, e.p)
		}
	})
	return out
}

// StaleModels names, per key (revoked ones left out), the models of its
// model list that has does not know: models a catalog update retired,
// which the key can no longer use (SetModels repairs it).
func (t *Table) StaleModels(has func(id string) bool) map[string][]string {
	out := map[string][]string{}
	t.snap.Load().byID.each(func(e *entry) {
		if e.revoked {
			return
		}
		for _, m := range e.p.Models {
			if !strings.HasPrefix(m, "provider:") && !has(m) {
				out[e.p.KeyID] = append(out[e.p.KeyID], m)
			}
		}
	})
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

func (t *Table) refresh(ctx context.Context) error {
	cur := t.snap.Load()
	at, _, err := t.st.Generation(ctx, cur.at)
	if err != nil {
		return err
	}
	if at == cur.at {
		return nil
	}
	// The rows changed after the table's mark, and the mark they are the
	// store at, from one snapshot: only what changed, however many writes
	// land meanwhile (they are the next refresh's). Read apart, a write
	// between the two could be in the table under the older mark, and the
	// table reloaded whole after it; under steady writes that was every
	// refresh, 0.6–1 s each at 50,000 keys on PostgreSQL.
	at, hist, rows, err := t.st.changedSince(ctx, cur.at)
	if err != nil {
		return err
	}
	if at == cur.at {
		return nil
	}
	whole := hist != store.Continues || cur.at.Gen == 0 // another history, or the first load
	t.loaded.rows.Add(int64(len(rows)))
	var digests *shardWriter[Digest]
	var ids *shardWriter[string]
	if whole {
		t.loaded.whole.Add(1)
		digests, ids = newShardWriter[Digest](len(rows)), newShardWriter[string](len(rows))
	} else {
		digests, ids = cur.byDigest.writer(), cur.byID.writer()
	}
	var changed []auth.Principal
	for _, r := range rows {
		h := idHash(r.ID)
		if old := ids.get(r.ID, h); old != nil {
			digests.del(old.digest, digestHash(old.digest))
			if old.hasPrev {
				digests.del(old.prev, digestHash(old.prev))
			}
		}
		e := newEntry(r)
		// Against what the table held, also on a whole reload (an
		// unstamped one included): a budget added then was never seeded
		// from the period's spend (the red team).
		if old := cur.byID.get(r.ID, h); old != nil && e.p.Limits != nil && !e.revoked && !reflect.DeepEqual(old.p.Limits, e.p.Limits) {
			changed = append(changed, e.p)
		}
		ids.set(r.ID, h, e)
		digests.set(e.digest, digestHash(e.digest), e)
		if e.hasPrev {
			digests.set(e.prev, digestHash(e.prev), e)
		}
	}
	t.snap.Store(&snapshot{at: at, byDigest: digests.done(digestHash), byID: ids.done(idHash)})
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
