package keys

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Key is a virtual key's record: everything but its secret.
type Key struct {
	ID string `json:"id"`
	// Prefix is the secret's first characters, to tell keys apart.
	Prefix    string            `json:"prefix"`
	Workspace string            `json:"workspace"`
	Team      string            `json:"team,omitempty"`
	User      string            `json:"user,omitempty"`
	Models    []string          `json:"models,omitempty"`
	Routes    []string          `json:"routes,omitempty"`
	ExpiresAt time.Time         `json:"expires_at,omitzero"`
	Limits    config.Limits     `json:"limits,omitzero"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	CreatedBy string            `json:"created_by"`
	RotatedAt time.Time         `json:"rotated_at,omitzero"`
	RotatedBy string            `json:"rotated_by,omitempty"`
	// GraceUntil: the secret before the last rotation works until then.
	GraceUntil time.Time `json:"previous_valid_until,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	RevokedBy  string    `json:"revoked_by,omitempty"`
}

// Key states, as Status reports them.
const (
	StatusActive  = "active"
	StatusExpired = "expired"
	StatusRevoked = "revoked"
)

// Status is active, expired or revoked at now.
func (k Key) Status(now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return StatusRevoked
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

// Spec is what a new key is made of.
type Spec struct {
	// ID names the key (lower-case letters, digits, - and _); generated
	// when empty.
	ID        string            `json:"id,omitempty"`
	Workspace string            `json:"workspace"`
	Team      string            `json:"team,omitempty"`
	User      string            `json:"user,omitempty"`
	Models    []string          `json:"models,omitempty"`
	Routes    []string          `json:"routes,omitempty"`
	ExpiresAt time.Time         `json:"expires_at,omitzero"`
	Limits    config.Limits     `json:"limits,omitzero"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Errors callers branch on; InvalidError carries the field.
var (
	ErrNotFound = errors.New("no such key")
	ErrExists   = errors.New("a key with this id exists")
	ErrRevoked  = errors.New("the key is revoked")
	ErrExpired  = errors.New("the key has expired")
	// ErrRotated is a key's secret replaced by a rotation, its grace over:
	// revoked, as far as a client is concerned.
	ErrRotated = fmt.Errorf("%w: its secret was rotated", ErrRevoked)
	// ErrUnknown is a token of the store's shape that no key has (any more).
	ErrUnknown = errors.New("unknown key")
	// ErrMalformed is a token that starts as the store's keys do and is not
	// one: a key cut short when pasted, or mistyped.
	ErrMalformed = errors.New("not a whole stellwerk key")
)

// InvalidError is a spec that cannot be stored; Field names what is wrong.
type InvalidError struct {
	Field, Msg string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

var (
	idRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:/+-]{0,127}$`) // users may be e-mail addresses
)

// Metadata bounds.
const (
	maxMetadata      = 32
	maxMetadataKey   = 64
	maxMetadataValue = 512
	maxListEntries   = 256
)

// Check validates a spec on its own; CheckConfig adds what the config knows.
func (s Spec) Check() error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case s.ID != "" && !idRE.MatchString(s.ID):
		return bad("id", "must be lower-case letters, digits, - or _ (at most 63)")
	case !idRE.MatchString(s.Workspace):
		return bad("workspace", "required: a workspace name")
	case s.Team != "" && !idRE.MatchString(s.Team):
		return bad("team", "must be a team name")
	case s.User != "" && !nameRE.MatchString(s.User):
		return bad("user", "must be letters, digits and . _ @ : / + - (at most 128)")
	case len(s.Models) > maxListEntries || len(s.Routes) > maxListEntries:
		return bad("models", "at most %d entries", maxListEntries)
	case len(s.Metadata) > maxMetadata:
		return bad("metadata", "at most %d entries", maxMetadata)
	}
	for i, m := range s.Models {
		if m == "" || len(m) > 160 || strings.ContainsAny(m, " \t\r\n\x00\"") {
			return bad(fmt.Sprintf("models[%d]", i), "not a model id or provider:<name>")
		}
	}
	for i, r := range s.Routes {
		if !nameRE.MatchString(r) {
			return bad(fmt.Sprintf("routes[%d]", i), "not a route name")
		}
	}
	for k, v := range s.Metadata {
		if k == "" || len(k) > maxMetadataKey || len(v) > maxMetadataValue || strings.ContainsAny(k, "\x00") || strings.ContainsAny(v, "\x00") {
			return bad("metadata", "keys 1–%d bytes, values at most %d bytes", maxMetadataKey, maxMetadataValue)
		}
	}
	if errs := s.Limits.Check("limits"); len(errs) > 0 {
		f, msg, _ := strings.Cut(errs[0].Error(), ": ")
		return bad(f, "%s", msg)
	}
	return nil
}

// CheckConfig validates a spec against the config in force: its workspace
// and team exist, its models are in the catalog (by id or alias), and its id is not one of
// the config's own keys.
func (s Spec) CheckConfig(c *config.Config) error {
	if err := s.Check(); err != nil {
		return err
	}
	i := slices.IndexFunc(c.Workspaces, func(w config.Workspace) bool { return w.Name == s.Workspace })
	if i < 0 {
		return &InvalidError{Field: "workspace", Msg: fmt.Sprintf("unknown workspace %q", s.Workspace)}
	}
	if s.Team != "" && !slices.ContainsFunc(c.Workspaces[i].Teams, func(t config.Team) bool { return t.Name == s.Team }) {
		return &InvalidError{Field: "team", Msg: fmt.Sprintf("workspace %q has no team %q", s.Workspace, s.Team)}
	}
	var aliases map[string]string // the config's, read at the first model id not found
	for j, m := range s.Models {
		if p, ok := strings.CutPrefix(m, "provider:"); ok {
			if !slices.ContainsFunc(c.Providers, func(pr config.Provider) bool { return pr.Name == p }) {
				return &InvalidError{Field: fmt.Sprintf("models[%d]", j), Msg: fmt.Sprintf("unknown provider %q", p)}
			}
			continue
		}
		known := slices.ContainsFunc(c.Models, func(x config.Model) bool { return x.ID == m })
		if !known {
			if aliases == nil {
				aliases = c.ModelAliases()
			}
			known = aliases[m] != ""
		}
		if !known {
			return &InvalidError{Field: fmt.Sprintf("models[%d]", j), Msg: fmt.Sprintf("unknown model %q", m)}
		}
	}
	if s.ID != "" && slices.ContainsFunc(c.Keys, func(k config.Key) bool { return k.ID == s.ID }) {
		return &InvalidError{Field: "id", Msg: fmt.Sprintf("%q is a key of stellwerk.yaml", s.ID)}
	}
	return nil
}

// Store keeps virtual keys and provider keys in a state database. Every
// write bumps one generation counter (store.Generation) in the same
// transaction, so a reader that has seen generation g has seen every
// change up to g (Table relies on this).
type Store struct {
	db     *store.DB
	hasher *Hasher
	ring   *Keyring // nil: provider keys are unavailable
	now    func() time.Time
	gen    *store.Generation
}

// Component names the keys schema in schema_migrations.
const Component = "keys"

// Migrations is the keys schema, for both dialects. Times are Unix
// milliseconds (0: never); lists and maps are JSON text.
var Migrations = []store.Migration{
	{Version: 1, Name: "virtual and provider keys", SQL: `
CREATE TABLE keys_generation (
	id  INTEGER PRIMARY KEY,
	gen BIGINT  NOT NULL
);
INSERT INTO keys_generation (id, gen) VALUES (1, 0);
CREATE TABLE virtual_keys (
	id          TEXT   PRIMARY KEY,
	digest      TEXT   NOT NULL UNIQUE,
	prev_digest TEXT   NOT NULL DEFAULT '',
	prev_until  BIGINT NOT NULL DEFAULT 0,
	prefix      TEXT   NOT NULL,
	workspace   TEXT   NOT NULL,
	team        TEXT   NOT NULL DEFAULT '',
	user_name   TEXT   NOT NULL DEFAULT '',
	models      TEXT   NOT NULL DEFAULT '[]',
	routes      TEXT   NOT NULL DEFAULT '[]',
	limits      TEXT   NOT NULL DEFAULT '{}',
	metadata    TEXT   NOT NULL DEFAULT '{}',
	expires_at  BIGINT NOT NULL DEFAULT 0,
	created_at  BIGINT NOT NULL,
	created_by  TEXT   NOT NULL,
	rotated_at  BIGINT NOT NULL DEFAULT 0,
	rotated_by  TEXT   NOT NULL DEFAULT '',
	revoked_at  BIGINT NOT NULL DEFAULT 0,
	revoked_by  TEXT   NOT NULL DEFAULT '',
	seq         BIGINT NOT NULL
);
CREATE INDEX virtual_keys_seq ON virtual_keys (seq);
CREATE INDEX virtual_keys_workspace ON virtual_keys (workspace);
CREATE TABLE provider_keys (
	workspace     TEXT   NOT NULL,
	provider      TEXT   NOT NULL,
	master_key_id TEXT   NOT NULL,
	nonce         TEXT   NOT NULL,
	ciphertext    TEXT   NOT NULL,
	created_at    BIGINT NOT NULL,
	created_by    TEXT   NOT NULL,
	updated_at    BIGINT NOT NULL,
	updated_by    TEXT   NOT NULL,
	PRIMARY KEY (workspace, provider)
)`},
	// IF NOT EXISTS, and emptied: a database rolled back by restoring a
	// dump from before this step keeps the table (pg_restore --clean drops
	// only what the dump holds), and the upgrade after failed on it; its
	// stamps are of a history the restore undid (the upgrade probe).
	{Version: 2, Name: "generation stamps, to tell a restored database", SQL: `
CREATE TABLE IF NOT EXISTS keys_stamps (
	gen   BIGINT PRIMARY KEY,
	stamp BIGINT NOT NULL
);
DELETE FROM keys_stamps`},
	// List's filters and its order by id, for pages of a store of 50,000
	// keys: each filter's index holds the id, so a page is read in order
	// from it; revoked and expiring keys, few, have partial ones (the
	// data-volume probe).
	{Version: 3, Name: "indexes for listing keys by page", SQL: `
DROP INDEX IF EXISTS virtual_keys_workspace;
CREATE INDEX IF NOT EXISTS virtual_keys_workspace_id ON virtual_keys (workspace, id);
CREATE INDEX IF NOT EXISTS virtual_keys_team_id ON virtual_keys (team, id);
CREATE INDEX IF NOT EXISTS virtual_keys_user_id ON virtual_keys (user_name, id);
CREATE INDEX IF NOT EXISTS virtual_keys_revoked ON virtual_keys (id) WHERE revoked_at <> 0;
CREATE INDEX IF NOT EXISTS virtual_keys_expiring ON virtual_keys (id) WHERE expires_at <> 0 AND revoked_at = 0`},
}

// Open migrates the keys schema and returns the store. ring may be nil.
func Open(ctx context.Context, db *store.DB, hasher *Hasher, ring *Keyring) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db, hasher: hasher, ring: ring, now: time.Now, gen: store.NewGeneration(db.SQL, "keys")}, nil
}

// DB is the state database the store writes to.
func (s *Store) DB() *store.DB { return s.db }

// Hasher is the store's hasher, for a Table.
func (s *Store) Hasher() *Hasher { return s.hasher }

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

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "key-" + hex.EncodeToString(b)
}

// Create stores a new key and returns it with its secret, which is never
// available again.
func (s *Store) Create(ctx context.Context, spec Spec, by string) (Key, string, error) {
	if err := spec.Check(); err != nil {
		return Key{}, "", err
	}
	if spec.ID == "" {
		spec.ID = newID()
	}
	secret := newSecret()
	now := s.now().UTC().Truncate(time.Millisecond)
	k := Key{ID: spec.ID, Prefix: displayPrefix(secret), Workspace: spec.Workspace, Team: spec.Team, User: spec.User,
		Models: spec.Models, Routes: spec.Routes, ExpiresAt: spec.ExpiresAt.UTC().Truncate(time.Millisecond), Limits: spec.Limits,
		Metadata: spec.Metadata, CreatedAt: now, CreatedBy: by}
	if spec.ExpiresAt.IsZero() {
		k.ExpiresAt = time.Time{}
	}
	models, _ := json.Marshal(nonNil(k.Models))
	routes, _ := json.Marshal(nonNil(k.Routes))
	limits, _ := json.Marshal(k.Limits)
	meta, _ := json.Marshal(nonNilMap(k.Metadata))
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM virtual_keys WHERE id = $1`, k.ID).Scan(&one); {
		case err == nil:
			return ErrExists
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO virtual_keys (id, digest, prefix, workspace, team, user_name, models, routes, limits,
			metadata, expires_at, created_at, created_by, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			k.ID, s.hasher.Sum(secret).hex(), k.Prefix, k.Workspace, k.Team, k.User, string(models), string(routes), string(limits),
			string(meta), ms(k.ExpiresAt), ms(now), by, gen)
		return err
	})
	if err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Filter narrows List; empty fields match everything.
type Filter struct {
	Workspace, Team, User string
	// Status, if set, is active, expired or revoked.
	Status string
}

// CheckConfig says what is wrong with a filter: a status that is none, a
// workspace or team the config does not have (a typo listed nothing and
// said nothing: the docs walkthrough). Field names the member.
func (f Filter) CheckConfig(c *config.Config) error {
	if f.Status != "" && !slices.Contains([]string{StatusActive, StatusExpired, StatusRevoked}, f.Status) {
		return &InvalidError{Field: "status", Msg: "must be active, expired or revoked"}
	}
	if f.Workspace != "" && !slices.ContainsFunc(c.Workspaces, func(w config.Workspace) bool { return w.Name == f.Workspace }) {
		return &InvalidError{Field: "workspace", Msg: fmt.Sprintf("unknown workspace %q", f.Workspace)}
	}
	if f.Team != "" && !slices.ContainsFunc(c.Workspaces, func(w config.Workspace) bool {
		return (f.Workspace == "" || w.Name == f.Workspace) && slices.ContainsFunc(w.Teams, func(t config.Team) bool { return t.Name == f.Team })
	}) {
		return &InvalidError{Field: "team", Msg: fmt.Sprintf("unknown team %q", f.Team)}
	}
	return nil
}

const keyColumns = `id, digest, prev_digest, prev_until, prefix, workspace, team, user_name, models, routes, limits, metadata,
	expires_at, created_at, created_by, rotated_at, rotated_by, revoked_at, revoked_by`

// row is a stored key with what only the table needs.
type row struct {
	Key
	digest, prev Digest
	hasPrev      bool
}

func scanRow(sc interface{ Scan(...any) error }) (row, error) {
	var r row
	var digest, prev, models, routes, limits, meta string
	var prevUntil, expires, created, rotated, revoked int64
	err := sc.Scan(&r.ID, &digest, &prev, &prevUntil, &r.Prefix, &r.Workspace, &r.Team, &r.User, &models, &routes, &limits, &meta,
		&expires, &created, &r.CreatedBy, &rotated, &r.RotatedBy, &revoked, &r.RevokedBy)
	if err != nil {
		return r, err
	}
	var ok bool
	if r.digest, ok = parseDigest(digest); !ok {
		return r, fmt.Errorf("key %s: damaged digest", r.ID)
	}
	if prev != "" {
		r.prev, r.hasPrev = parseDigest(prev)
	}
	for _, f := range []struct {
		text string
		into any
	}{{models, &r.Models}, {routes, &r.Routes}, {limits, &r.Limits}, {meta, &r.Metadata}} {
		if err := json.Unmarshal([]byte(f.text), f.into); err != nil {
			return r, fmt.Errorf("key %s: damaged record: %w", r.ID, err)
		}
	}
	if len(r.Models) == 0 {
		r.Models = nil
	}
	if len(r.Routes) == 0 {
		r.Routes = nil
	}
	if len(r.Metadata) == 0 {
		r.Metadata = nil
	}
	r.ExpiresAt, r.CreatedAt, r.RotatedAt, r.RevokedAt = fromMS(expires), fromMS(created), fromMS(rotated), fromMS(revoked)
	if r.hasPrev {
		r.GraceUntil = fromMS(prevUntil)
	}
	return r, nil
}

// List returns every key matching f, ordered by id. It holds them all in
// memory: a caller that shows keys to a person pages with ListPage.
func (s *Store) List(ctx context.Context, f Filter) ([]Key, error) {
	out := []Key{}
	after := ""
	for {
		page, more, err := s.ListPage(ctx, f, after, MaxPage)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if !more {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// MaxPage bounds a page of ListPage.
const MaxPage = 1000

// ListPage returns at most limit keys (1 to MaxPage) matching f whose id
// sorts after after ("": from the first), ordered by id, and whether more
// follow. Paging by the last id seen is stable: a key that exists from
// the first page to the last is listed once, whatever is created or
// revoked meanwhile; a key created meanwhile is listed if its id sorts
// after the page being read. Every filter, status included, is a condition
// of the query, which indexes answer (migration 3): ?status=revoked
// decoded all 50,000 keys in Go to find 3 (the data-volume probe).
func (s *Store) ListPage(ctx context.Context, f Filter, after string, limit int) ([]Key, bool, error) {
	if limit < 1 || limit > MaxPage {
		return nil, false, &InvalidError{Field: "limit", Msg: fmt.Sprintf("must be between 1 and %d", MaxPage)}
	}
	var w store.Where
	cond := w.Add
	if f.Workspace != "" {
		cond("workspace = ?", f.Workspace)
	}
	if f.Team != "" {
		cond("team = ?", f.Team)
	}
	if f.User != "" {
		cond("user_name = ?", f.User)
	}
	// The conditions are Key.Status's, written as the partial indexes'
	// own (a planner uses one only for a query that implies its WHERE).
	now := s.now().UnixMilli()
	switch f.Status {
	case "":
	case StatusRevoked:
		cond("revoked_at <> 0")
	case StatusExpired:
		cond("expires_at <> 0 AND revoked_at = 0 AND expires_at <= ?", now)
	case StatusActive:
		cond("revoked_at = 0 AND (expires_at = 0 OR expires_at > ?)", now)
	default:
		return nil, false, &InvalidError{Field: "status", Msg: "must be active, expired or revoked"}
	}
	if after != "" {
		cond("id > ?", after)
	}
	q := `SELECT ` + keyColumns + ` FROM virtual_keys` + w.SQL() + ` ORDER BY id LIMIT ` + w.Bind(limit+1)
	rows, err := s.db.SQL.QueryContext(ctx, q, w.Args...)
	if err != nil {
		return nil, false, store.Classify(err)
	}
	defer rows.Close()
	out := make([]Key, 0, min(limit, 128))
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		r, err := scanRow(rows)
		if err != nil {
			return nil, false, store.Classify(err)
		}
		out = append(out, r.Key)
	}
	return out, more, store.Classify(rows.Err())
}

// Cursor is the opaque cursor of the page after the key id: what GET
// /admin/keys answers as next_cursor.
func Cursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte("after:" + id)) }

// ParseCursor returns the key id a Cursor names; a cursor that is not one
// is an error.
func ParseCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	id, ok := strings.CutPrefix(string(b), "after:")
	if err != nil || !ok || !idRE.MatchString(id) {
		return "", &InvalidError{Field: "cursor", Msg: "is not one this API returned"}
	}
	return id, nil
}

// Get returns one key.
func (s *Store) Get(ctx context.Context, id string) (Key, error) {
	r, err := scanRow(s.db.SQL.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM virtual_keys WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrNotFound
	}
	return r.Key, store.Classify(err)
}

// MaxGrace bounds how long a rotated secret keeps working.
const MaxGrace = 7 * 24 * time.Hour

// Rotate gives a key a new secret, returned once. The old secret stops
// working at once, or after grace (at most MaxGrace) so clients can move.
// A revoked key cannot be rotated.
func (s *Store) Rotate(ctx context.Context, id string, grace time.Duration, by string) (Key, string, error) {
	if grace < 0 || grace > MaxGrace {
		return Key{}, "", &InvalidError{Field: "grace", Msg: fmt.Sprintf("must be between 0 and %s", MaxGrace)}
	}
	secret := newSecret()
	now := s.now().UTC().Truncate(time.Millisecond)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		r, err := scanRow(tx.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM virtual_keys WHERE id = $1`, id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case !r.RevokedAt.IsZero():
			return ErrRevoked
		}
		// The secret replaced is kept, its grace ended at once without
		// one: a request with it is told from an unknown key's, and
		// logged naming the key (a leaked secret rotated out and still
		// tried left no trace: the red team).
		prev, until := r.digest.hex(), ms(now.Add(grace))
		_, err = tx.ExecContext(ctx, `UPDATE virtual_keys SET digest = $1, prev_digest = $2, prev_until = $3, prefix = $4,
			rotated_at = $5, rotated_by = $6, seq = $7 WHERE id = $8`,
			s.hasher.Sum(secret).hex(), prev, until, displayPrefix(secret), ms(now), by, gen, id)
		return err
	})
	if err != nil {
		return Key{}, "", err
	}
	k, err := s.Get(ctx, id)
	return k, secret, err
}

// SetLimits replaces a key's own budgets and rate limits (every replica
// applies them within a second). What the key has spent and the requests
// in its windows stay counted: raising a budget lets it spend the
// difference now. A revoked key cannot be changed.
func (s *Store) SetLimits(ctx context.Context, id string, l config.Limits, by string) (Key, error) {
	if errs := l.Check("limits"); len(errs) > 0 {
		f, msg, _ := strings.Cut(errs[0].Error(), ": ")
		return Key{}, &InvalidError{Field: f, Msg: msg}
	}
	limits, err := json.Marshal(l)
	if err != nil {
		return Key{}, err
	}
	return s.set(ctx, id, "limits", string(limits))
}

// SetModels replaces the models a key may use (model ids and
// provider:<name>; none: what its workspace allows), checked as at its
// creation against the config in force (c; nil skips that check). A key
// restricted to a model a catalog update retired could not be repaired,
// only revoked and issued anew with a new secret (the catalog probe).
func (s *Store) SetModels(ctx context.Context, id string, models []string, c *config.Config, by string) (Key, error) {
	k, err := s.Get(ctx, id)
	if err != nil {
		return Key{}, err
	}
	spec := Spec{Workspace: k.Workspace, Team: k.Team, Models: models}
	if err := spec.Check(); err != nil {
		return Key{}, err
	}
	if c != nil {
		if err := spec.CheckConfig(c); err != nil {
			return Key{}, err
		}
	}
	list, err := json.Marshal(nonNil(models))
	if err != nil {
		return Key{}, err
	}
	return s.set(ctx, id, "models", string(list))
}

// set writes one JSON column of a key that is not revoked.
func (s *Store) set(ctx context.Context, id, column, value string) (Key, error) {
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		var revoked int64
		switch err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM virtual_keys WHERE id = $1`, id).Scan(&revoked); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case revoked != 0:
			return ErrRevoked
		}
		_, err = tx.ExecContext(ctx, `UPDATE virtual_keys SET `+column+` = $1, seq = $2 WHERE id = $3`, value, gen, id)
		return err
	})
	if err != nil {
		return Key{}, err
	}
	return s.Get(ctx, id)
}

// Revoke ends a key for good (every replica refuses it within a second).
// Revoking a revoked key changes nothing.
func (s *Store) Revoke(ctx context.Context, id, by string) (Key, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		gen, err := s.gen.Bump(ctx, tx)
		if err != nil {
			return err
		}
		// The previous secret's grace ends with it, and the secret stays
		// known: its requests are logged as the revoked key's.
		res, err := tx.ExecContext(ctx, `UPDATE virtual_keys SET revoked_at = $1, revoked_by = $2,
			prev_until = CASE WHEN prev_until > $1 THEN $1 ELSE prev_until END, seq = $3
			WHERE id = $4 AND revoked_at = 0`, ms(now), by, gen, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM virtual_keys WHERE id = $1`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
		}
		return nil
	})
	if err != nil {
		return Key{}, err
	}
	return s.Get(ctx, id)
}

// Generation is the store's change counter and its stamp, and how its
// history relates to seen (what a table loaded).
func (s *Store) Generation(ctx context.Context, seen store.Mark) (store.Mark, store.Continuity, error) {
	return s.gen.Read(ctx, seen)
}

// changedSince reads, in one snapshot of the store (store.DB.ReadTx), its
// mark, how its history relates to seen, and the keys changed after seen:
// every key when the history does not continue seen's. The rows are the
// store at that mark and nothing newer, however many writes commit while
// they are read: a table holding them under the mark holds no key a
// restore to a backup taken at the mark would undo unseen. A write never
// lands below a mark once it is read: each write's first statement takes
// the next generation under the counter's row lock (SQLite's write lock),
// so writes commit in their generations' order.
func (s *Store) changedSince(ctx context.Context, seen store.Mark) (store.Mark, store.Continuity, []row, error) {
	var at store.Mark
	var hist store.Continuity
	var out []row
	err := s.db.ReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		if at, hist, err = s.gen.ReadTx(ctx, tx, seen); err != nil || at == seen {
			return err
		}
		since := seen.Gen
		if hist != store.Continues {
			since = 0
		}
		loading()
		rows, err := tx.QueryContext(ctx, `SELECT `+keyColumns+` FROM virtual_keys WHERE seq > $1`, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRow(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return at, hist, out, err
}

// loading is a test's hook between the snapshot's reading of the store's
// mark and its reading of the rows.
var loading = func() {}

// encodeBytes is how nonces and ciphertexts are kept in TEXT columns.
func encodeBytes(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func decodeBytes(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
