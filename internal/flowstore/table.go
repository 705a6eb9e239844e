package flowstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Table is the request path's copy of the routes: every route's live flow
// compiled, and every version's document for pinned requests
// (route:support@7), in memory and swapped whole, so resolving a route
// takes no lock and never touches the database. Run keeps it current by
// polling the store's generation counter: a deploy or rollback reaches
// every replica within one interval plus one query. When the store cannot
// be reached the table keeps serving what it last loaded; a store that
// went back (restored from an older backup) is reloaded whole.
type Table struct {
	st   *Store
	log  *zap.Logger
	snap atomic.Pointer[tableSnap]

	mu     sync.Mutex // one refresh at a time
	env    *flow.Env  // under mu
	envGen int64      // bumped by SetEnv: the next refresh recompiles all
	reach  store.Reach
	// warned are the versions (by content hash) whose warnings were
	// logged: once per process, not at every recompile.
	warned sync.Map
}

type tableSnap struct {
	at     store.Mark
	stale  bool // written while it loaded: the next change reloads whole
	envGen int64
	env    *flow.Env             // what pinned versions compile against
	live   map[string]*flow.Flow // route → live flow (absent: none deployed)
	// docs are every version's document, for pinned versions; compiled
	// on first use.
	docs     map[versionKey]*pinned
	versions map[string]bool // routes that exist
	// broken are live versions that no longer compile against the
	// config in force (a model removed): the last good flow keeps serving
	// and the error is reported here.
	broken map[string]error
}

type versionKey struct {
	route   string
	version int64
}

// pinned is one version's document, compiled once when first asked for.
type pinned struct {
	v    Version
	once sync.Once
	f    *flow.Flow
	err  error
}

// NewTable returns an empty table over st that compiles against env; call
// Refresh (or Run) to fill it.
func NewTable(st *Store, env *flow.Env, log *zap.Logger) *Table {
	if log == nil {
		log = zap.NewNop()
	}
	t := &Table{st: st, env: env, log: log}
	t.snap.Store(&tableSnap{env: env, live: map[string]*flow.Flow{}, docs: map[versionKey]*pinned{}, versions: map[string]bool{}})
	return t
}

// SetEnv changes what versions compile against (a config reload changed
// the catalog or the budgets); the next Refresh recompiles every version.
func (t *Table) SetEnv(env *flow.Env) {
	t.mu.Lock()
	t.env = env
	t.envGen++
	t.mu.Unlock()
}

// ResolveError says why a route cannot serve; the edge maps it to an
// answer (docs/routes.md: 404 route_not_found, 503 route_unavailable).
type ResolveError struct {
	Route   string
	Version int64
	Err     error
}

func (e *ResolveError) Error() string {
	if e.Version != 0 {
		return fmt.Sprintf("route %s@%d: %v", e.Route, e.Version, e.Err)
	}
	return fmt.Sprintf("route %s: %v", e.Route, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Resolve returns the flow of a route's live version (version 0) or of a
// pinned version. Errors wrap ErrNoRoute, ErrNoVersion, ErrNotDeployed,
// or the version's load error when it no longer compiles.
func (t *Table) Resolve(route string, version int64) (*flow.Flow, error) {
	s := t.snap.Load()
	if version == 0 {
		if f := s.live[route]; f != nil {
			return f, nil
		}
		if e := s.broken[route]; e != nil {
			return nil, e // its live version does not load (it had said none was deployed)
		}
		if s.versions[route] {
			return nil, &ResolveError{Route: route, Err: ErrNotDeployed}
		}
		return nil, &ResolveError{Route: route, Err: ErrNoRoute}
	}
	if f := s.live[route]; f != nil && f.Version == version {
		return f, nil
	}
	p := s.docs[versionKey{route, version}]
	if p == nil {
		if !s.versions[route] {
			return nil, &ResolveError{Route: route, Version: version, Err: ErrNoRoute}
		}
		return nil, &ResolveError{Route: route, Version: version, Err: ErrNoVersion}
	}
	p.once.Do(func() { p.f, p.err = t.compile(p.v, s.env) })
	if p.err != nil {
		return nil, &ResolveError{Route: route, Version: version, Err: p.err}
	}
	return p.f, nil
}

func (t *Table) compile(v Version, env *flow.Env) (*flow.Flow, error) {
	f, err := flow.Load(fmt.Sprintf("%s@%d", v.Route, v.Version), []byte(v.Document), env)
	if err != nil {
		return nil, err
	}
	f.Version = v.Version
	if w := f.Warnings(); len(w) > 0 {
		if _, done := t.warned.LoadOrStore(f.Hash, true); !done {
			for _, e := range w {
				t.log.Warn("route version loads, but a new version like it would be refused: fix it and deploy the fix",
					zap.String("route", v.Route), zap.Int64("version", v.Version), zap.Int("line", e.Line), zap.Int("column", e.Column),
					zap.String("node", e.Node), zap.String("problem", e.Msg))
			}
		}
	}
	return f, nil
}

// Check compiles the version each route serves against env, a config not
// yet in force, and returns the load error of each that would no longer
// load (a model it names removed), which names the route and version. A reload that would break a serving
// route is refused on these: the flow compiled against the old config
// would keep sending its arms to a model no longer there (the policy
// rollout probe: 8 of 20 requests of the route answered 503).
func (t *Table) Check(env *flow.Env) []error {
	s := t.snap.Load()
	loads := Loads(env)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s.live)) {
		f := s.live[name]
		p := s.docs[versionKey{name, f.Version}]
		if p == nil {
			continue // not in the store any more: the next refresh reports it
		}
		if err := loads(p.v); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Live lists every route's live version (route → version).
func (t *Table) Live() map[string]int64 {
	s := t.snap.Load()
	out := make(map[string]int64, len(s.live))
	for name, f := range s.live {
		out[name] = f.Version
	}
	return out
}

// Broken lists live versions that no longer compile against the config in
// force (each a *ResolveError naming its version); the last good flow of
// each keeps serving, or none when none loaded since the start.
func (t *Table) Broken() map[string]error { return maps.Clone(t.snap.Load().broken) }

// BrokenVersions is Broken's route → live version that does not load.
func (t *Table) BrokenVersions() map[string]int64 {
	b := t.snap.Load().broken
	out := make(map[string]int64, len(b))
	for name, err := range b {
		var re *ResolveError
		if errors.As(err, &re) {
			out[name] = re.Version
		}
	}
	return out
}

// Generation is the store generation the table reflects.
func (t *Table) Generation() int64 { return t.snap.Load().at.Gen }

// Healthy reports whether the last refresh reached the store, and when the
// last successful one was.
func (t *Table) Healthy() (bool, time.Time) { return t.reach.Healthy() }

// Refresh loads what changed since the table's generation.
func (t *Table) Refresh(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.refresh(ctx)
	t.reach.Refreshed(err, time.Now(), t.log, "route store unreachable: serving the last loaded routes; deploys wait for it",
		"route store reachable again", t.Generation)
	return err
}

func (t *Table) refresh(ctx context.Context) error {
	cur := t.snap.Load()
	at, hist, err := t.st.Generation(ctx, cur.at)
	if err != nil {
		return err
	}
	if at == cur.at && cur.envGen == t.envGen {
		return nil
	}
	since := cur.at.Gen
	if hist != store.Continues || cur.envGen != t.envGen || cur.stale {
		since = 0 // another history, a new config, or loaded while written: start over
	}
	lives, vs, err := t.st.snapshot(ctx, since)
	if err != nil {
		return err
	}
	// Versions written while it loaded are in it under the older mark; a
	// restore to a backup taken at that mark would leave them (as the
	// red team found for keys): the next change reloads whole.
	after, _, err := t.st.Generation(ctx, at)
	if err != nil {
		return err
	}
	next := &tableSnap{at: at, stale: after.Gen != at.Gen, envGen: t.envGen, env: t.env, live: make(map[string]*flow.Flow, len(lives)), versions: map[string]bool{},
		broken: map[string]error{}}
	if since == 0 {
		next.docs = make(map[versionKey]*pinned, len(vs))
	} else {
		next.docs = maps.Clone(cur.docs)
	}
	for _, v := range vs {
		next.docs[versionKey{v.Route, v.Version}] = &pinned{v: v}
	}
	for _, r := range lives {
		next.versions[r.name] = true
		if r.live == 0 {
			continue
		}
		// The same version number is the same document only in the same
		// history: a store that went back may have made another since.
		if old := cur.live[r.name]; old != nil && old.Version == r.live && cur.envGen == t.envGen && hist == store.Continues {
			next.live[r.name] = old
			if e := cur.broken[r.name]; e != nil {
				next.broken[r.name] = e
			}
			continue
		}
		p := next.docs[versionKey{r.name, r.live}]
		if p == nil {
			return fmt.Errorf("route %s: live version %d is not in the store", r.name, r.live)
		}
		f, err := t.compile(p.v, t.env)
		if err != nil {
			// Keep the last good flow of this route, if any: a bad
			// reload never takes a route down.
			next.broken[r.name] = &ResolveError{Route: r.name, Version: r.live, Err: err}
			if old := cur.live[r.name]; old != nil {
				next.live[r.name] = old
				t.log.Error("live route version does not load; the last good one keeps serving",
					zap.String("route", r.name), zap.Int64("version", r.live), zap.Error(err))
				continue
			}
			// None loaded before (a start, a restart): the route answers
			// 503 route_unavailable until a version that loads is deployed
			// or the configuration is fixed (the day-2 probe: the log said
			// a last good one served when none did).
			t.log.Error("live route version does not load, and no version of it was loaded before: the route answers 503 route_unavailable",
				zap.String("route", r.name), zap.Int64("version", r.live), zap.Error(err))
			continue
		}
		next.live[r.name] = f
	}
	t.snap.Store(next)
	if hist == store.WentBack {
		// Deploys and rollbacks made after the backup it was restored
		// from are undone: the operator should know.
		t.log.Warn("route store went back (restored from an older backup, or another database): reloaded every route",
			zap.Int64("loaded_generation", cur.at.Gen), zap.Int64("store_generation", at.Gen))
	}
	return nil
}

// Run refreshes the table every interval until ctx ends.
func (t *Table) Run(ctx context.Context, every time.Duration) {
	store.Poll(ctx, every, t.Refresh)
}
