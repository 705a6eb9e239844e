// Package flowstore keeps route versions in the state store (SQLite, or
// PostgreSQL for a fleet): every change is a new immutable version, deploy
// switches a route's live version atomically, rollback deploys an earlier
// one. Table is the request path's in-memory copy, refreshed by polling a
// generation counter so every replica switches within a second. SyncDir
// turns the files of routes/ into versions (GitOps). docs/routes.md
// describes the rules.
package flowstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Version is one stored version of a route: immutable once created.
type Version struct {
	Route   string `json:"route"`
	Version int64  `json:"version"`
	// Hash is the document's content hash (flow.Hash): the same text is
	// the same version.
	Hash      string    `json:"hash"`
	Author    string    `json:"author"`
	Message   string    `json:"message,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Source says where it came from: "api", "cli", or "file:<name>".
	Source string `json:"source,omitempty"`
	// Live is set when this is the route's live version.
	Live bool `json:"live"`
	// Document is the route's text (omitted in lists).
	Document string `json:"document,omitempty"`
}

// Route is a route's state: its live and newest versions.
type Route struct {
	Name string `json:"name"`
	// Live is the deployed version (0: none yet).
	Live       int64     `json:"live"`
	Latest     int64     `json:"latest"`
	Versions   int       `json:"version_count"`
	DeployedAt time.Time `json:"deployed_at,omitzero"`
	DeployedBy string    `json:"deployed_by,omitempty"`
	// Broken lists the versions that do not load under the config in
	// force (a model or budget they name is gone), with why: requests that
	// pin one, or all of them when it is the live one, get 503
	// route_unavailable. Set by CheckLoads.
	Broken []BrokenVersion `json:"broken,omitempty"`
}

// BrokenVersion is a version that does not load, and why.
type BrokenVersion struct {
	Version int64  `json:"version"`
	Live    bool   `json:"live,omitempty"`
	Error   string `json:"error"`
}

// CheckLoads compiles every version of the routes under env and notes
// those that do not load in each route's Broken (the request path's table
// keeps serving the live version it last compiled, and says so only in
// its log).
func (s *Store) CheckLoads(ctx context.Context, env *flow.Env, routes []Route) error {
	_, vs, err := s.snapshot(ctx, 0) // every version with its document, in one query
	if err != nil {
		return err
	}
	at := make(map[string]*Route, len(routes))
	for i := range routes {
		routes[i].Broken = nil
		at[routes[i].Name] = &routes[i]
	}
	slices.SortFunc(vs, func(a, b Version) int { return cmp.Compare(a.Version, b.Version) })
	for _, v := range vs {
		r := at[v.Route]
		if r == nil {
			continue
		}
		if _, err := flow.Load(v.Route+"@"+strconv.FormatInt(v.Version, 10), []byte(v.Document), env); err != nil {
			r.Broken = append(r.Broken, BrokenVersion{Version: v.Version, Live: v.Version == r.Live, Error: err.Error()})
		}
	}
	return nil
}

// Deploy is one switch of a route's live version.
type Deploy struct {
	Route  string    `json:"route"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Action string    `json:"action"` // deploy, rollback, file
	From   int64     `json:"from"`   // 0: nothing was live
	To     int64     `json:"to"`
	// Reason says why a rollback without a version went to To (the version
	// live before the current one, or the most recent before it that
	// loads); Skipped are the versions it passed over as they do not load.
	Reason  string          `json:"reason,omitempty"`
	Skipped []BrokenVersion `json:"skipped,omitempty"`
}

// Errors callers branch on.
var (
	ErrNoRoute   = errors.New("no such route")
	ErrNoVersion = errors.New("no such route version")
	// ErrNotDeployed: the route has versions but none is live.
	ErrNotDeployed = errors.New("the route has no live version")
	// ErrNoEarlier: rollback found no version before the live one.
	ErrNoEarlier = errors.New("no earlier version to roll back to")
)

// Component names the routes schema in schema_migrations.
const Component = "routes"

// Migrations is the routes schema for both dialects. Times are Unix
// milliseconds.
var Migrations = []store.Migration{
	{Version: 1, Name: "route versions and deploys", SQL: `
CREATE TABLE routes_generation (
	id  INTEGER PRIMARY KEY,
	gen BIGINT  NOT NULL
);
INSERT INTO routes_generation (id, gen) VALUES (1, 0);
CREATE TABLE route_versions (
	route      TEXT   NOT NULL,
	version    BIGINT NOT NULL,
	hash       TEXT   NOT NULL,
	document   TEXT   NOT NULL,
	author     TEXT   NOT NULL,
	message    TEXT   NOT NULL DEFAULT '',
	source     TEXT   NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	seq        BIGINT NOT NULL,
	PRIMARY KEY (route, version),
	UNIQUE (route, hash)
);
CREATE INDEX route_versions_seq ON route_versions (seq);
CREATE TABLE routes (
	name        TEXT   PRIMARY KEY,
	live        BIGINT NOT NULL DEFAULT 0,
	latest      BIGINT NOT NULL DEFAULT 0,
	deployed_at BIGINT NOT NULL DEFAULT 0,
	deployed_by TEXT   NOT NULL DEFAULT '',
	file_hash   TEXT   NOT NULL DEFAULT '',
	seq         BIGINT NOT NULL
);
CREATE TABLE route_deploys (
	route        TEXT   NOT NULL,
	at           BIGINT NOT NULL,
	by_name      TEXT   NOT NULL,
	action       TEXT   NOT NULL,
	from_version BIGINT NOT NULL,
	to_version   BIGINT NOT NULL,
	seq          BIGINT NOT NULL
);
CREATE INDEX route_deploys_route ON route_deploys (route, seq)`},
	// IF NOT EXISTS, and emptied: a database rolled back by restoring a
	// dump from before this step keeps the table (pg_restore --clean drops
	// only what the dump holds), and the upgrade after failed on it; its
	// stamps are of a history the restore undid (the upgrade probe).
	{Version: 2, Name: "generation stamps, to tell a restored database", SQL: `
CREATE TABLE IF NOT EXISTS routes_stamps (
	gen   BIGINT PRIMARY KEY,
	stamp BIGINT NOT NULL
);
DELETE FROM routes_stamps`},
}

// Store keeps route versions in a state database. Every write bumps one
// generation counter (store.Generation) in its transaction, so a reader
// that has seen generation g has seen every change up to g.
type Store struct {
	db  *store.DB
	now func() time.Time
	gen *store.Generation
}

// Open migrates the routes schema and returns the store.
func Open(ctx context.Context, db *store.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db, now: time.Now, gen: store.NewGeneration(db.SQL, "routes")}, nil
}

// Generation is the store's change counter and its stamp, and how its
// history relates to seen (what a table loaded).
func (s *Store) Generation(ctx context.Context, seen store.Mark) (store.Mark, store.Continuity, error) {
	return s.gen.Read(ctx, seen)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Create stores a compiled route as a new version. A document whose hash
// an existing version of the route has is that version (created false):
// versions are content-addressed, so replicas and repeated syncs never
// duplicate one. The caller compiles the document first (flow.Load against
// the config in force): the store keeps only documents that loaded.
func (s *Store) Create(ctx context.Context, f *flow.Flow, author, message, source string) (Version, bool, error) {
	if !flow.NameRE.MatchString(f.Name) {
		return Version{}, false, fmt.Errorf("route name %q is not valid", f.Name)
	}
	if len(message) > 1024 {
		message = message[:1024]
	}
	var v Version
	created := false
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		var c bool
		v, c, err = s.create(ctx, tx, gen, f, author, message, source)
		created = c
		return err
	})
	return v, created, err
}

func (s *Store) create(ctx context.Context, tx *sql.Tx, gen int64, f *flow.Flow, author, message, source string) (Version, bool, error) {
	hash := f.Hash
	if hash == "" {
		hash = flow.Hash(f.Source)
	}
	v, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionColumns+`, r.live FROM route_versions v JOIN routes r ON r.name = v.route
		WHERE v.route = $1 AND v.hash = $2`, f.Name, hash), true)
	switch {
	case err == nil:
		return v, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Version{}, false, err
	}
	var latest int64
	switch err := tx.QueryRowContext(ctx, `SELECT latest FROM routes WHERE name = $1`, f.Name).Scan(&latest); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO routes (name, seq) VALUES ($1, $2)`, f.Name, gen); err != nil {
			return Version{}, false, err
		}
	case err != nil:
		return Version{}, false, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	v = Version{Route: f.Name, Version: latest + 1, Hash: hash, Author: author, Message: message, CreatedAt: now, Source: source,
		Document: string(f.Source)}
	if _, err := tx.ExecContext(ctx, `INSERT INTO route_versions (route, version, hash, document, author, message, source, created_at, seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, v.Route, v.Version, v.Hash, v.Document, author, message, source, ms(now), gen); err != nil {
		return Version{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE routes SET latest = $1, seq = $2 WHERE name = $3`, v.Version, gen, f.Name); err != nil {
		return Version{}, false, err
	}
	return v, true, nil
}

const versionColumns = `v.route, v.version, v.hash, v.author, v.message, v.source, v.created_at, v.document`

func scanVersion(sc interface{ Scan(...any) error }, withLive bool) (Version, error) {
	var v Version
	var created, live int64
	dest := []any{&v.Route, &v.Version, &v.Hash, &v.Author, &v.Message, &v.Source, &created, &v.Document}
	if withLive {
		dest = append(dest, &live)
	}
	if err := sc.Scan(dest...); err != nil {
		return v, err
	}
	v.CreatedAt = fromMS(created)
	v.Live = withLive && live == v.Version
	return v, nil
}

// Get returns one version with its document; version 0 is the live one.
func (s *Store) Get(ctx context.Context, route string, version int64) (Version, error) {
	r, err := s.Route(ctx, route)
	if err != nil {
		return Version{}, err
	}
	if version == 0 {
		if r.Live == 0 {
			return Version{}, ErrNotDeployed
		}
		version = r.Live
	}
	v, err := scanVersion(s.db.SQL.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM route_versions v WHERE v.route = $1 AND v.version = $2`,
		route, version), false)
	if errors.Is(err, sql.ErrNoRows) {
		return Version{}, ErrNoVersion
	}
	v.Live = v.Version == r.Live
	return v, store.Classify(err)
}

// Versions lists a route's versions, newest first, without documents.
func (s *Store) Versions(ctx context.Context, route string) ([]Version, error) {
	r, err := s.Route(ctx, route)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+versionColumns+` FROM route_versions v WHERE v.route = $1 ORDER BY v.version DESC`, route)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	out := []Version{}
	for rows.Next() {
		v, err := scanVersion(rows, false)
		if err != nil {
			return nil, store.Classify(err)
		}
		v.Live, v.Document = v.Version == r.Live, ""
		out = append(out, v)
	}
	return out, store.Classify(rows.Err())
}

// Route returns one route's state.
func (s *Store) Route(ctx context.Context, name string) (Route, error) {
	r, err := scanRoute(s.db.SQL.QueryRowContext(ctx, `SELECT `+routeColumns+` FROM routes r WHERE r.name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Route{}, ErrNoRoute
	}
	return r, store.Classify(err)
}

const routeColumns = `r.name, r.live, r.latest, r.deployed_at, r.deployed_by,
	(SELECT COUNT(*) FROM route_versions v WHERE v.route = r.name)`

func scanRoute(sc interface{ Scan(...any) error }) (Route, error) {
	var r Route
	var at int64
	err := sc.Scan(&r.Name, &r.Live, &r.Latest, &at, &r.DeployedBy, &r.Versions)
	r.DeployedAt = fromMS(at)
	return r, err
}

// Routes lists every route, by name.
func (s *Store) Routes(ctx context.Context) ([]Route, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+routeColumns+` FROM routes r ORDER BY r.name`)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	out := []Route{}
	for rows.Next() {
		r, err := scanRoute(rows)
		if err != nil {
			return nil, store.Classify(err)
		}
		out = append(out, r)
	}
	return out, store.Classify(rows.Err())
}

// Deploy makes a version live, atomically: every replica's Table switches
// on its next refresh (within a second). Deploying the live version again
// changes nothing and records nothing.
func (s *Store) Deploy(ctx context.Context, route string, version int64, by string) (Deploy, error) {
	return s.switchTo(ctx, route, version, by, "deploy")
}

// Rollback goes back: to version to, which must be older than the live
// one, or when to is 0 to the version live before the current one, from
// the deploy history: the From of the deploy that made the live version
// live, else (when that one does not load) the one live before it, and so
// on back (rollbackTarget). loads says whether a version loads under the
// config in force (Loads); nil takes every version as loading. The answer
// says which version was chosen and why (Reason) and which were skipped.
// The target is chosen in the transaction that switches to it, so a deploy
// made meanwhile by another replica cannot make it stale.
func (s *Store) Rollback(ctx context.Context, route string, to int64, by string, loads func(Version) error) (Deploy, error) {
	d := Deploy{Route: route, By: by, Action: "rollback", To: to}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		var live int64
		switch err := tx.QueryRowContext(ctx, `SELECT live FROM routes WHERE name = $1`, route).Scan(&live); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNoRoute
		case err != nil:
			return err
		}
		if live == 0 {
			return ErrNotDeployed
		}
		var reason string
		var skipped []BrokenVersion
		if to == 0 {
			if to, reason, skipped, err = rollbackTarget(ctx, tx, route, live, loads); err != nil {
				return err
			}
		} else if to >= live {
			return fmt.Errorf("%w: %d is not before the live version %d (deploy it instead)", ErrNoEarlier, to, live)
		}
		d, err = s.switchTx(ctx, tx, gen, route, to, by, "rollback")
		d.Reason, d.Skipped = reason, skipped
		return err
	})
	return d, err
}

// Loads is the loads argument of Rollback: whether a version compiles
// under env (the config in force).
func Loads(env *flow.Env) func(Version) error {
	return func(v Version) error {
		_, err := flow.Load(v.Route+"@"+strconv.FormatInt(v.Version, 10), []byte(v.Document), env)
		return err
	}
}

// NoneLoadsError is a rollback without a version whose every candidate (the
// versions live before the current one) does not load under the config in
// force; nothing changed.
type NoneLoadsError struct {
	Route   string
	Live    int64
	Skipped []BrokenVersion
}

func (e *NoneLoadsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no version live before %s@%d loads under the config in force (name one with its number)", e.Route, e.Live)
	for _, v := range e.Skipped {
		fmt.Fprintf(&b, "\n%s@%d: %s", e.Route, v.Version, v.Error)
	}
	return b.String()
}

// rollbackTarget is where a rollback without a version goes: the versions
// that were live before the current one, most recent first (each deploy's
// From, newest deploy first), the first that loads. ErrNoEarlier when
// nothing was live before; *NoneLoadsError when none of them loads.
func rollbackTarget(ctx context.Context, tx *sql.Tx, route string, live int64, loads func(Version) error) (int64, string, []BrokenVersion, error) {
	rows, err := tx.QueryContext(ctx, `SELECT from_version FROM route_deploys WHERE route = $1 ORDER BY seq DESC, at DESC`, route)
	if err != nil {
		return 0, "", nil, err
	}
	var earlier []int64
	for rows.Next() {
		var from int64
		if err := rows.Scan(&from); err != nil {
			rows.Close()
			return 0, "", nil, err
		}
		if from != 0 && from != live && !slices.Contains(earlier, from) {
			earlier = append(earlier, from)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, "", nil, err
	}
	if len(earlier) == 0 {
		return 0, "", nil, fmt.Errorf("%w: nothing was live before %s@%d (name a version by its number)", ErrNoEarlier, route, live)
	}
	var skipped []BrokenVersion
	for _, n := range earlier {
		v, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM route_versions v WHERE v.route = $1 AND v.version = $2`, route, n), false)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // a restore took it away; it was never in this store's history
		case err != nil:
			return 0, "", nil, err
		}
		if loads != nil {
			if err := loads(v); err != nil {
				skipped = append(skipped, BrokenVersion{Version: n, Error: err.Error()})
				continue
			}
		}
		reason := fmt.Sprintf("%s@%d was live before %s@%d", route, n, route, live)
		if len(skipped) > 0 {
			names := make([]string, len(skipped))
			for i, b := range skipped {
				names[i] = route + "@" + strconv.FormatInt(b.Version, 10)
			}
			reason = fmt.Sprintf("%s@%d is the most recent version live before %s@%d that loads (skipped %s: does not load)",
				route, n, route, live, strings.Join(names, ", "))
		}
		return n, reason, skipped, nil
	}
	if len(skipped) == 0 {
		return 0, "", nil, fmt.Errorf("%w: the versions live before %s@%d are no longer stored", ErrNoEarlier, route, live)
	}
	return 0, "", nil, &NoneLoadsError{Route: route, Live: live, Skipped: skipped}
}

func (s *Store) switchTo(ctx context.Context, route string, version int64, by, action string) (Deploy, error) {
	d := Deploy{Route: route, By: by, Action: action, To: version}
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		var dd Deploy
		dd, err = s.switchTx(ctx, tx, gen, route, version, by, action)
		d = dd
		return err
	})
	return d, err
}

// switchTx is deploy, rollback and a file's deploy inside a transaction
// that has bumped the generation to gen.
func (s *Store) switchTx(ctx context.Context, tx *sql.Tx, gen int64, route string, version int64, by, action string) (Deploy, error) {
	d := Deploy{Route: route, By: by, Action: action, To: version}
	var live int64
	switch err := tx.QueryRowContext(ctx, `SELECT live FROM routes WHERE name = $1`, route).Scan(&live); {
	case errors.Is(err, sql.ErrNoRows):
		return d, ErrNoRoute
	case err != nil:
		return d, err
	}
	d.From = live
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM route_versions WHERE route = $1 AND version = $2`, route, version).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return d, ErrNoVersion
	case err != nil:
		return d, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	d.At = now
	if version == live {
		return d, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE routes SET live = $1, deployed_at = $2, deployed_by = $3, seq = $4 WHERE name = $5`,
		version, ms(now), by, gen, route); err != nil {
		return d, err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO route_deploys (route, at, by_name, action, from_version, to_version, seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, route, ms(now), by, action, live, version, gen)
	return d, err
}

// History lists a route's deploys, newest first.
func (s *Store) History(ctx context.Context, route string) ([]Deploy, error) {
	if _, err := s.Route(ctx, route); err != nil {
		return nil, err
	}
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT route, at, by_name, action, from_version, to_version FROM route_deploys
		WHERE route = $1 ORDER BY seq DESC`, route)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	out := []Deploy{}
	for rows.Next() {
		var d Deploy
		var at int64
		if err := rows.Scan(&d.Route, &at, &d.By, &d.Action, &d.From, &d.To); err != nil {
			return nil, store.Classify(err)
		}
		d.At = fromMS(at)
		out = append(out, d)
	}
	return out, store.Classify(rows.Err())
}

// SyncFile records a route file's content: unless it is the content last
// synced from the file (file_hash), the document becomes a version (found
// by hash or created) and, with deploy, the live one. A rollback made
// through the API therefore holds until the file changes again. Replicas
// syncing the same file at once produce one version and one deploy.
//
// modified is the file's modification time (zero: unknown). A file whose
// content is already a version, and which is older than the version last
// synced from the file, is a replica's old copy (a pod restarted before its
// ConfigMap caught up), not a change: it is left alone (stale), where it
// rolled the whole fleet back. Reverting the file on purpose gives it a
// new modification time, and deploys.
//
// from is the version that was live before the file's was deployed (0:
// none was, or nothing was deployed), for the audit record's before.
func (s *Store) SyncFile(ctx context.Context, f *flow.Flow, source string, modified time.Time, deploy bool) (v Version, from int64, changed, stale bool, err error) {
	hash := f.Hash
	if hash == "" {
		hash = flow.Hash(f.Source)
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var fileHash string
		switch err := tx.QueryRowContext(ctx, `SELECT file_hash FROM routes WHERE name = $1`, f.Name).Scan(&fileHash); {
		case err == nil && fileHash == hash:
			return nil // nothing new in the file: no generation bump either
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		// Re-read under the generation's row lock: another replica may
		// have synced the same content meanwhile.
		if err := tx.QueryRowContext(ctx, `SELECT file_hash FROM routes WHERE name = $1`, f.Name).Scan(&fileHash); err == nil && fileHash == hash {
			return nil
		}
		if stale, err = s.staleCopy(ctx, tx, f.Name, hash, fileHash, modified); err != nil || stale {
			return err
		}
		v, _, err = s.create(ctx, tx, gen, f, source, "from "+source, "file:"+source)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE routes SET file_hash = $1, seq = $2 WHERE name = $3`, hash, gen, f.Name); err != nil {
			return err
		}
		changed = true
		if deploy {
			d, err := s.switchTx(ctx, tx, gen, f.Name, v.Version, source, "file")
			if err != nil {
				return err
			}
			v.Live, from = true, d.From
		}
		return nil
	})
	return v, from, changed, stale, err
}

// staleCopy: a file of content hash, modified then, is older than the
// version of content fileHash last synced from the file, and its content
// is a version already.
func (s *Store) staleCopy(ctx context.Context, tx *sql.Tx, route, hash, fileHash string, modified time.Time) (bool, error) {
	if modified.IsZero() || fileHash == "" {
		return false, nil
	}
	var synced int64
	switch err := tx.QueryRowContext(ctx, `SELECT created_at FROM route_versions WHERE route = $1 AND hash = $2`, route, fileHash).Scan(&synced); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	if !modified.Before(fromMS(synced)) {
		return false, nil
	}
	var known int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM route_versions WHERE route = $1 AND hash = $2`, route, hash).Scan(&known); err != nil {
		return false, err
	}
	return known > 0, nil
}

// liveRow is what the table reads of every route.
type liveRow struct {
	name string
	live int64
}

// snapshot reads every route's live version and the documents of versions
// created after generation since.
func (s *Store) snapshot(ctx context.Context, since int64) ([]liveRow, []Version, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT name, live FROM routes`)
	if err != nil {
		return nil, nil, store.Classify(err)
	}
	var lives []liveRow
	for rows.Next() {
		var r liveRow
		if err := rows.Scan(&r.name, &r.live); err != nil {
			rows.Close()
			return nil, nil, store.Classify(err)
		}
		lives = append(lives, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, store.Classify(err)
	}
	vrows, err := s.db.SQL.QueryContext(ctx, `SELECT `+versionColumns+` FROM route_versions v WHERE v.seq > $1`, since)
	if err != nil {
		return nil, nil, store.Classify(err)
	}
	defer vrows.Close()
	var vs []Version
	for vrows.Next() {
		v, err := scanVersion(vrows, false)
		if err != nil {
			return nil, nil, store.Classify(err)
		}
		vs = append(vs, v)
	}
	return lives, vs, store.Classify(vrows.Err())
}
