package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/store"
)

// Store keeps the chain in a state database (SQLite or PostgreSQL). Rows
// are only ever inserted, except by Prune (retention). Writers never
// contend: each writes only its own (writer, seq) keys.
type Store struct {
	db    *store.DB
	dicts dicts

	inserts *store.Prepared
	// collided counts records whose place (writer, seq) held another
	// record already, firstCollision names the first: someone wrote into
	// this writer's chain (Collisions).
	collided       atomic.Int64
	firstCollision atomic.Pointer[string]
}

// Collisions is how many records found another record at their place
// (writer, seq), which the insert keeps (records are never replaced), and
// where the first was. A batch written again finds its own rows there,
// which is no collision.
func (s *Store) Collisions() (int64, string) {
	first := ""
	if p := s.firstCollision.Load(); p != nil {
		first = *p
	}
	return s.collided.Load(), first
}

// Component names the audit schema in schema_migrations.
const Component = "audit"

// Migrations is the audit schema, for both dialects. A record's bytes are
// body_s2 (the exact bytes hashed, S2-compressed: see putBody) or, in rows
// written before version 3, body (TEXT: PostgreSQL's JSONB would
// re-serialise them); both are NULL once retention removed the record.
// Times are Unix microseconds.
var Migrations = []store.Migration{
	{Version: 1, Name: "hash-chained entries and signed checkpoints", SQL: `
CREATE TABLE audit_entries (
	writer      TEXT   NOT NULL,
	seq         BIGINT NOT NULL,
	time_us     BIGINT NOT NULL,
	kind        TEXT   NOT NULL,
	workspace   TEXT   NOT NULL,
	decision_id TEXT   NOT NULL,
	prev        TEXT   NOT NULL,
	body_sha256 TEXT   NOT NULL,
	hash        TEXT   NOT NULL,
	body        TEXT,
	PRIMARY KEY (writer, seq)
);
CREATE INDEX audit_entries_time ON audit_entries (time_us, writer, seq);
CREATE INDEX audit_entries_workspace ON audit_entries (workspace, time_us);
CREATE INDEX audit_entries_decision ON audit_entries (decision_id);
CREATE TABLE audit_checkpoints (
	writer    TEXT   NOT NULL,
	seq       BIGINT NOT NULL,
	hash      TEXT   NOT NULL,
	prev      TEXT   NOT NULL,
	time_us   BIGINT NOT NULL,
	reason    TEXT   NOT NULL,
	key_id    TEXT   NOT NULL,
	signature TEXT   NOT NULL,
	digest    TEXT   NOT NULL,
	PRIMARY KEY (writer, seq)
);
CREATE INDEX audit_checkpoints_time ON audit_checkpoints (time_us);
CREATE TABLE audit_keys (
	key_id     TEXT   PRIMARY KEY,
	public_key TEXT   NOT NULL,
	first_seen BIGINT NOT NULL
)`},
	{Version: 2, Name: "content-addressed policy, config and catalog versions, for replay", SQL: `
CREATE TABLE audit_versions (
	hash       TEXT   PRIMARY KEY,
	kind       TEXT   NOT NULL,
	body       TEXT   NOT NULL,
	first_seen BIGINT NOT NULL
)`},
	{Version: 3, Name: "record bodies stored S2-compressed",
		SQL:      `ALTER TABLE audit_entries ADD COLUMN body_s2 BLOB`,
		Postgres: `ALTER TABLE audit_entries ADD COLUMN body_s2 BYTEA`},
	{Version: 4, Name: "record bodies compressed against a dictionary", SQL: `
CREATE TABLE audit_dictionaries (
	id         TEXT   PRIMARY KEY,
	body       BLOB   NOT NULL,
	first_seen BIGINT NOT NULL
);
ALTER TABLE audit_entries ADD COLUMN body_dict TEXT`, Postgres: `
CREATE TABLE audit_dictionaries (
	id         TEXT   PRIMARY KEY,
	body       BYTEA  NOT NULL,
	first_seen BIGINT NOT NULL
);
ALTER TABLE audit_entries ADD COLUMN body_dict TEXT`},
	// Query's kind and writer filters read these in time order (Query
	// orders by time_us, writer, seq); without them a rare kind read the
	// whole time index, and a writer's records in a time range were all
	// sorted by time. Decisions, nearly every record, are left out of the
	// kind index: their filter finds them on the time index at once, and
	// they do not pay for an index they never need.
	{Version: 5, Name: "indexes for the audit API's kind and writer filters", SQL: `
CREATE INDEX audit_entries_kind ON audit_entries (kind, time_us, writer, seq) WHERE kind <> '` + KindDecision + `';
CREATE INDEX audit_entries_writer ON audit_entries (writer, time_us, seq)`},
	// Query's key filter (a leaked key's every record) reads this in time
	// order. key_id is the record's principal.key_id, read from its bytes
	// when the row is inserted ('' for none); it is an index, not part of
	// the leaf: the record's hash covers the key, the column only finds it.
	// Rows of earlier versions get it from their record at the next start
	// (fillKeys); NULL is a row not read yet.
	{Version: 6, Name: "the record's key id, for the audit API's key filter", SQL: `
ALTER TABLE audit_entries ADD COLUMN key_id TEXT;
CREATE INDEX audit_entries_key ON audit_entries (key_id, time_us, writer, seq)`},
}

// A record is stored S2-compressed (github.com/klauspost/compress/s2, block
// format): a decision's record on the shipped catalog is ~18–21 KB of JSON,
// most of it 71 candidate lines that differ in a few values, and SQLite
// wrote it as five or six pages (twice: into the WAL, then the checkpoint),
// the writer's largest cost. S2 takes it to ~4 KB in ~12 µs, which took the
// store's time per record from ~160 to ~65 µs (docs/audit.md). The hash
// covers the uncompressed bytes, so verification, export and replay see
// exactly what was hashed; compression is the store's business alone.

// maxBody bounds a stored record's decompressed size: a damaged or forged
// body_s2 must not make a reader allocate without bound.
const maxBody = 64 << 20

// hasBody is the SQL condition "the row still has its record".
const hasBody = `(body_s2 IS NOT NULL OR body IS NOT NULL)`

// putBody is a record's stored form.
func putBody(b []byte) []byte { return s2.Encode(nil, b) }

// bodyArenas hold the compressed bodies of one insert: S2 wants room for
// its worst case (a little more than the record) per record, which was
// the writer's largest garbage, and the bodies are only read until the
// insert's statement has run (the drivers copy or send them).
var bodyArenas = sync.Pool{New: func() any { return new([]byte) }}

// compressInto writes each kept record's stored form into one arena from
// bodyArenas (grown to the batch's worst case), compressed against d when
// d is not nil, and returns the forms, nil for pruned rows, and whether
// each was compressed against d; release gives the arena back once they
// are no longer read.
func compressInto(es []Entry, d *s2.Dict) (bodies [][]byte, withDict []bool, release func()) {
	need := 0
	for i := range es {
		if !es[i].Pruned {
			need += s2.MaxEncodedLen(len(es[i].Body))
		}
	}
	arena := bodyArenas.Get().(*[]byte)
	if cap(*arena) < need {
		*arena = make([]byte, 0, need)
	}
	a := (*arena)[:0]
	bodies, withDict = make([][]byte, len(es)), make([]bool, len(es))
	for i := range es {
		if es[i].Pruned {
			continue
		}
		room := s2.MaxEncodedLen(len(es[i].Body))
		if room < 0 { // beyond S2's block limit (never for a record): on its own
			bodies[i] = putBody(es[i].Body)
			continue
		}
		var z []byte
		if d != nil {
			z, withDict[i] = d.Encode(a[len(a):len(a)+room], es[i].Body), true
		} else {
			z = s2.Encode(a[len(a):len(a)+room], es[i].Body)
		}
		bodies[i] = z
		a = a[:len(a)+len(z)]
	}
	return bodies, withDict, func() { bodyArenas.Put(arena) }
}

// getBody is the record of a row: body_s2 decompressed (against the
// dictionary body_dict names, if it names one), else body. A body_s2 that
// does not decompress within maxBody, or whose dictionary the store does
// not have, yields nil, which no body_sha256 matches, so verification
// reports the record as modified. Only a failure to read the dictionary
// is an error.
func (s *Store) getBody(ctx context.Context, text sql.NullString, z []byte, dict sql.NullString) ([]byte, error) {
	if z == nil {
		return []byte(text.String), nil
	}
	if n, err := s2.DecodedLen(z); err != nil || n > maxBody {
		return nil, nil
	}
	var b []byte
	var err error
	if dict.Valid {
		d, derr := s.dicts.get(ctx, s.db.SQL, dict.String)
		if derr != nil || d == nil {
			return nil, derr
		}
		b, err = d.Decode(nil, z)
	} else {
		b, err = s2.Decode(nil, z)
	}
	if err != nil {
		return nil, nil
	}
	return b, nil
}

// Version kinds: what a kept version's body is.
const (
	VersionPolicy  = "policy"  // a policy bundle (policy.Engine.Bundle)
	VersionConfig  = "config"  // the config as GET /config renders it, secrets redacted
	VersionCatalog = "catalog" // the merged providers and models
	// VersionPredictor is a quality predictor file as it was read
	// (routing.quality_predictor).
	VersionPredictor = "predictor"
)

// ErrNoVersion: the store keeps no version with that hash.
var ErrNoVersion = errors.New("no such version kept")

// PutVersion keeps a version's body under its hash (a record's Versions
// names it), once: keeping the same hash again changes nothing.
func (s *Store) PutVersion(ctx context.Context, kind, hash string, body []byte) error {
	_, err := s.db.SQL.ExecContext(ctx, `INSERT INTO audit_versions (hash, kind, body, first_seen) VALUES ($1, $2, $3, $4)
		ON CONFLICT (hash) DO NOTHING`, hash, kind, string(body), TimeUS(time.Now()))
	return err
}

// Version returns a kept version's kind and body, ErrNoVersion when none
// has the hash.
func (s *Store) Version(ctx context.Context, hash string) (kind string, body []byte, err error) {
	var b string
	err = s.db.SQL.QueryRowContext(ctx, `SELECT kind, body FROM audit_versions WHERE hash = $1`, hash).Scan(&kind, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, fmt.Errorf("%w: %s", ErrNoVersion, hash)
	}
	return kind, []byte(b), err
}

// OpenStore migrates the audit schema and returns the store.
func OpenStore(ctx context.Context, db *store.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	d := db.Dialect
	s := &Store{db: db, inserts: store.NewPrepared(db.SQL, maxInsertRows, func(n int) string { return insertSQL(d, n) })}
	if err := s.fillKeys(ctx); err != nil {
		return nil, fmt.Errorf("audit: reading the key ids of earlier records: %w", err)
	}
	return s, nil
}

// RecordKey is a record's principal.key_id, read from its bytes ("" for
// none, or for bytes that are not a record): what Query's key filter and
// Export's match.
func RecordKey(body []byte) string {
	return gjson.GetBytes(body, "principal.key_id").String()
}

// fillKeys sets key_id on rows written before schema version 6, from their
// records (a pruned row has none: the empty string). It runs at every open and finds
// nothing to do after the first; the key index finds the NULLs.
func (s *Store) fillKeys(ctx context.Context) error {
	if _, err := s.db.SQL.ExecContext(ctx, `UPDATE audit_entries SET key_id = '' WHERE key_id IS NULL AND NOT `+hasBody); err != nil {
		return store.Classify(err)
	}
	const page = 1000
	for {
		rows, err := s.db.SQL.QueryContext(ctx, `SELECT writer, seq, body, body_s2, body_dict FROM audit_entries
			WHERE key_id IS NULL LIMIT `+strconv.Itoa(page))
		if err != nil {
			return store.Classify(err)
		}
		type row struct {
			writer string
			seq    int64
			key    string
		}
		var todo []row
		for rows.Next() {
			var r row
			var body, dict sql.NullString
			var z []byte
			if err := rows.Scan(&r.writer, &r.seq, &body, &z, &dict); err != nil {
				rows.Close()
				return store.Classify(err)
			}
			b, err := s.getBody(ctx, body, z, dict)
			if err != nil {
				rows.Close()
				return store.Classify(err)
			}
			r.key = RecordKey(b)
			todo = append(todo, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return store.Classify(err)
		}
		if len(todo) == 0 {
			return nil
		}
		err = s.db.Tx(ctx, func(tx *sql.Tx) error {
			for _, r := range todo {
				if _, err := tx.ExecContext(ctx, `UPDATE audit_entries SET key_id = $1 WHERE writer = $2 AND seq = $3`, r.key, r.writer, r.seq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return store.Classify(err)
		}
		if len(todo) < page {
			return nil
		}
	}
}

// DB is the state database.
func (s *Store) DB() *store.DB { return s.db }

const entryColumns = `writer, seq, time_us, kind, workspace, decision_id, prev, body_sha256, hash, body, body_s2, body_dict`

// insertColumns are entryColumns and the record's key id, which only
// Query's filter reads.
const insertColumns = entryColumns + `, key_id`

// entryParams is the number of insertColumns.
const entryParams = 13

// Append writes entries and checkpoints in one transaction: a batch is
// committed whole or not at all.
func (s *Store) Append(ctx context.Context, entries []Entry, cps []Checkpoint) error {
	if len(entries) == 0 && len(cps) == 0 {
		return nil
	}
	dict := s.dicts.forAppend(entries)
	var dictRow bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if dict != nil && s.dicts.needsRow(dict) {
			dictRow = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_dictionaries (id, body, first_seen) VALUES ($1, $2, $3)
				ON CONFLICT (id) DO NOTHING`, dict.id, dict.stored, TimeUS(dict.made)); err != nil {
				return err
			}
		}
		for len(entries) > 0 {
			n := min(len(entries), s.inserts.Max())
			if err := s.insertEntries(ctx, tx, entries[:n], dict); err != nil {
				return err
			}
			entries = entries[n:]
		}
		for i := range cps {
			c := &cps[i]
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (writer, seq, hash, prev, time_us, reason, key_id, signature, digest)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (writer, seq) DO `+onCheckpointConflict, c.Writer, int64(c.Seq), c.Hash, c.Prev, TimeUS(c.Time), c.Reason, c.KeyID,
				base64.StdEncoding.EncodeToString(c.Signature), c.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && dictRow {
		s.dicts.wrote(dict)
	}
	return err
}

// onCheckpointConflict is what a checkpoint at a seq that has one does:
// nothing (a batch written again after a commit whose answer was lost, a
// spool replayed), except that a shutdown checkpoint replaces the one
// before it when no record came between them (Log.checkpoint links it to
// what that one linked to), unless another writer's opening checkpoint
// links to it: a second process with the same audit.writer opened after it
// (an overlapping restart), and replacing it broke that link — verify
// reported the whole writer's log deleted (the compliance probe). Then
// the chain ends with the interval checkpoint. Checkpoints are the only
// rows ever replaced; records are only inserted.
const onCheckpointConflict = `UPDATE SET hash = excluded.hash, prev = excluded.prev, time_us = excluded.time_us, reason = excluded.reason,
	key_id = excluded.key_id, signature = excluded.signature, digest = excluded.digest
	WHERE excluded.reason = '` + ReasonShutdown + `' AND audit_checkpoints.reason <> '` + ReasonShutdown + `'
	AND NOT EXISTS (SELECT 1 FROM audit_checkpoints o WHERE o.prev = audit_checkpoints.digest AND o.writer <> audit_checkpoints.writer)`

// maxInsertRows bounds one multi-row INSERT: a batch is written in
// statements of at most this many rows, each prepared once per store
// (store.Prepared).
const maxInsertRows = 64

// insertSQL is the INSERT of n rows. SQLite gets "?" placeholders: it
// resolves each "$n" by a linear search over the statement's names, which
// made a large insert quadratic. A retried batch (its commit's answer
// lost) finds its rows there.
func insertSQL(dialect store.Dialect, n int) string {
	var b strings.Builder
	b.WriteString(dialect.Insert() + `audit_entries (` + insertColumns + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := 1; j <= entryParams; j++ {
			if j > 1 {
				b.WriteByte(',')
			}
			if dialect == store.SQLite {
				b.WriteByte('?')
			} else {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(i*entryParams + j))
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(` ON CONFLICT (writer, seq) DO NOTHING`)
	return b.String()
}

// insertEntries writes rows with the prepared insert of their number
// (at most s.inserts.Max()).
func (s *Store) insertEntries(ctx context.Context, tx *sql.Tx, es []Entry, dict *dictionary) error {
	args := make([]any, 0, len(es)*entryParams)
	var d *s2.Dict
	if dict != nil {
		d = dict.d
	}
	bodies, withDict, release := compressInto(es, d)
	defer release()
	for i := range es {
		e := &es[i]
		var text, z, dictID any
		if withDict[i] {
			dictID = dict.id
		}
		key := e.key
		if !e.Pruned {
			if !e.keyed {
				key = RecordKey(e.Body)
			}
			// body holds an empty marker: a replica from before schema
			// version 3 (a rolling upgrade) then sees a record, not a pruned
			// row its retention could compact away; its verify reports the
			// record as modified until it is upgraded too (docs/audit.md).
			text, z = "", bodies[i]
		}
		args = append(args, e.Writer, int64(e.Seq), TimeUS(e.Time), e.Kind, e.Workspace, e.ID, e.Prev, e.BodySHA256, e.Hash, text, z, dictID, key)
	}
	res, err := s.inserts.Exec(ctx, tx, len(es), args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n < int64(len(es)) {
		return s.checkCollisions(ctx, tx, es)
	}
	return nil
}

// checkCollisions compares the rows an insert did not write (their place
// was taken) with what is there: the same hash is a batch written again;
// another is a record someone else put at this writer's next place (the
// audit probe inserted one with a recomputed chain, and the genuine record
// was dropped without a word).
func (s *Store) checkCollisions(ctx context.Context, tx *sql.Tx, es []Entry) error {
	for i := 0; i < len(es); {
		j := i
		for j < len(es) && es[j].Writer == es[i].Writer {
			j++
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, hash FROM audit_entries WHERE writer = $1 AND seq >= $2 AND seq <= $3`,
			es[i].Writer, int64(es[i].Seq), int64(es[j-1].Seq))
		if err != nil {
			return err
		}
		there := map[uint64]string{}
		for rows.Next() {
			var seq int64
			var h string
			if err := rows.Scan(&seq, &h); err != nil {
				rows.Close()
				return err
			}
			there[uint64(seq)] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for k := i; k < j; k++ {
			if h, ok := there[es[k].Seq]; ok && h != es[k].Hash {
				if s.collided.Add(1) == 1 || s.firstCollision.Load() == nil {
					where := fmt.Sprintf("writer %s seq %d", es[k].Writer, es[k].Seq)
					s.firstCollision.CompareAndSwap(nil, &where)
				}
			}
		}
		i = j
	}
	return nil
}

// RegisterKey notes a signing key's public half (informational: Verify
// trusts only the keys its caller gives it, never this table).
func (s *Store) RegisterKey(ctx context.Context, k PublicKey) error {
	_, err := s.db.SQL.ExecContext(ctx, `INSERT INTO audit_keys (key_id, public_key, first_seen) VALUES ($1, $2, $3)
		ON CONFLICT (key_id) DO NOTHING`, k.ID, base64.StdEncoding.EncodeToString(k.Key), time.Now().UnixMicro())
	return store.Classify(err)
}

// LastCheckpoint is the newest checkpoint of any writer of a replica
// (writers named "<replica>/…"); ok is false when there is none.
func (s *Store) LastCheckpoint(ctx context.Context, replica string) (Checkpoint, bool, error) {
	like := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(replica) + "/%"
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints WHERE writer LIKE $1 ESCAPE '\'
		ORDER BY time_us DESC, seq DESC LIMIT 1`, like)
	if err != nil {
		return Checkpoint{}, false, store.Classify(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return Checkpoint{}, false, store.Classify(rows.Err())
	}
	c, err := scanCheckpoint(rows)
	return c, err == nil, store.Classify(err)
}

const checkpointColumns = `writer, seq, hash, prev, time_us, reason, key_id, signature, digest`

func scanCheckpoint(sc interface{ Scan(...any) error }) (Checkpoint, error) {
	var c Checkpoint
	var seq, t int64
	var sig string
	if err := sc.Scan(&c.Writer, &seq, &c.Hash, &c.Prev, &t, &c.Reason, &c.KeyID, &sig, &c.Digest); err != nil {
		return c, err
	}
	c.Seq, c.Time = uint64(seq), FromUS(t)
	c.Signature, _ = base64.StdEncoding.DecodeString(sig) // a damaged one fails verification
	return c, nil
}

// Checkpoints returns the checkpoints of one writer ("" for all), ordered
// by writer and seq.
func (s *Store) Checkpoints(ctx context.Context, writer string) ([]Checkpoint, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints
		WHERE ($1 = '' OR writer = $1) ORDER BY writer, seq`, writer)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, store.Classify(err)
		}
		out = append(out, c)
	}
	return out, store.Classify(rows.Err())
}

// scanEntry reads a row of entryColumns. A row compressed against a
// dictionary the store has not read yet reads it (a second connection:
// rows stays open).
func (s *Store) scanEntry(ctx context.Context, rows *sql.Rows) (Entry, error) {
	var e Entry
	var seq, t int64
	var body, dict sql.NullString
	var z []byte
	if err := rows.Scan(&e.Writer, &seq, &t, &e.Kind, &e.Workspace, &e.ID, &e.Prev, &e.BodySHA256, &e.Hash, &body, &z, &dict); err != nil {
		return e, err
	}
	e.Seq, e.Time = uint64(seq), FromUS(t)
	if body.Valid || z != nil {
		var err error
		if e.Body, err = s.getBody(ctx, body, z, dict); err != nil {
			return e, err
		}
		if e.Body == nil && z != nil && dict.Valid {
			if d, _ := s.dicts.get(ctx, s.db.SQL, dict.String); d == nil {
				e.NoDict = dict.String
			}
		}
	} else {
		e.Pruned = true
	}
	return e, nil
}

// WriterSpan is what the store holds of one writer's chain.
type WriterSpan struct {
	Writer   string `json:"writer"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Entries  int64  `json:"entries"`
}

// Writers lists the writers with entries, with the seq span of those whose
// time is in [from, to) (zero times: unbounded).
func (s *Store) Writers(ctx context.Context, from, to time.Time) ([]WriterSpan, error) {
	lo, hi := timeBounds(from, to)
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT writer, MIN(seq), MAX(seq), COUNT(*) FROM audit_entries
		WHERE time_us >= $1 AND time_us < $2 GROUP BY writer ORDER BY writer`, lo, hi)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	var out []WriterSpan
	for rows.Next() {
		var w WriterSpan
		var a, b int64
		if err := rows.Scan(&w.Writer, &a, &b, &w.Entries); err != nil {
			return nil, store.Classify(err)
		}
		w.FirstSeq, w.LastSeq = uint64(a), uint64(b)
		out = append(out, w)
	}
	return out, store.Classify(rows.Err())
}

func timeBounds(from, to time.Time) (int64, int64) {
	lo, hi := int64(-1<<62), int64(1<<62)
	if !from.IsZero() {
		lo = TimeUS(from)
	}
	if !to.IsZero() {
		hi = TimeUS(to)
	}
	return lo, hi
}

// EachEntry calls fn with a writer's entries with seq in [first, last], in
// seq order, streaming (the whole chain is never in memory).
func (s *Store) EachEntry(ctx context.Context, writer string, first, last uint64, fn func(*Entry) error) error {
	const page = 2000
	next := int64(first)
	for {
		rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+entryColumns+` FROM audit_entries
			WHERE writer = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT `+strconv.Itoa(page), writer, next, int64(last))
		if err != nil {
			return store.Classify(err)
		}
		n := 0
		for rows.Next() {
			e, err := s.scanEntry(ctx, rows)
			if err != nil {
				rows.Close()
				return store.Classify(err)
			}
			n++
			next = int64(e.Seq) + 1
			if err := fn(&e); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return store.Classify(err)
		}
		if n < page {
			return nil
		}
	}
}

// Filter selects records for Query. Empty fields match everything.
type Filter struct {
	From, To  time.Time // [From, To)
	Workspace string
	ID        string // decision id
	Kind      string
	Writer    string
	// Key is the record's principal.key_id.
	Key string
}

// Cursor is where a page of Query ends; its String is opaque to clients.
type Cursor struct {
	TimeUS int64
	Writer string
	Seq    uint64
}

func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d/%d/%s", c.TimeUS, c.Seq, c.Writer))
}

// ParseCursor reads a Cursor's String.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, errors.New("not a cursor of this API")
	}
	parts := strings.SplitN(string(b), "/", 3)
	if len(parts) != 3 {
		return Cursor{}, errors.New("not a cursor of this API")
	}
	t, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return Cursor{}, errors.New("not a cursor of this API")
	}
	return Cursor{TimeUS: t, Seq: seq, Writer: parts[2]}, nil
}

// Query returns up to limit entries matching f after the cursor (nil:
// from the start), ordered by time, writer and seq, and the cursor of the
// next page (nil when this is the last).
func (s *Store) Query(ctx context.Context, f Filter, after *Cursor, limit int) ([]Entry, *Cursor, error) {
	where, args := queryWhere(s.db.Dialect, f, after)
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT `+entryColumns+` FROM audit_entries`+where+`
		ORDER BY time_us, writer, seq LIMIT `+strconv.Itoa(limit+1), args...)
	if err != nil {
		return nil, nil, store.Classify(err)
	}
	defer rows.Close()
	out := make([]Entry, 0, min(limit, 256))
	for rows.Next() {
		e, err := s.scanEntry(ctx, rows)
		if err != nil {
			return nil, nil, store.Classify(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, store.Classify(err)
	}
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &Cursor{TimeUS: TimeUS(last.Time), Writer: last.Writer, Seq: last.Seq}, nil
}

// queryWhere is Query's WHERE clause with only the conditions f and the
// cursor set, and their arguments. A condition written for every filter,
// true when its parameter is empty, kept SQLite's planner from the
// decision_id, workspace and kind indexes (a bound parameter may be
// empty): it read the whole time index, and one decision's record took
// 0.14 s in a log of 200,000 (docs/audit.md). Values are always bound.
//
// A decision id names one record or a few, so on SQLite, which keeps no
// statistics to know that, the other columns are written as +column:
// not indexable, they leave it the decision_id index (given a writer and
// a time range too, it chose the writer's index).
func queryWhere(d store.Dialect, f Filter, after *Cursor) (string, []any) {
	var w store.Where
	col := func(c string) string { return c }
	if f.ID != "" {
		w.Add("decision_id = ?", f.ID)
		if d == store.SQLite {
			col = func(c string) string { return "+" + c }
		}
	}
	for _, c := range [...]struct{ col, v string }{{"workspace", f.Workspace}, {"kind", f.Kind}, {"writer", f.Writer}, {"key_id", f.Key}} {
		if c.v != "" {
			w.Add(col(c.col)+" = ?", c.v)
		}
	}
	if f.Kind != "" && f.Kind != KindDecision && f.ID == "" {
		// What the planners need to see to read the kind index (it has no
		// decisions).
		w.Add("kind <> '" + KindDecision + "'")
	}
	lo, hasLo := int64(0), false
	if !f.From.IsZero() {
		lo, hasLo = TimeUS(f.From), true
	}
	if after != nil && (!hasLo || after.TimeUS > lo) {
		lo, hasLo = after.TimeUS, true
	}
	if hasLo {
		w.Add(col("time_us")+" >= ?", lo)
		if after != nil {
			w.Add("(time_us > ? OR writer > ? OR (writer = ? AND seq > ?))", lo, after.Writer, after.Writer, int64(after.Seq))
		}
	}
	if !f.To.IsZero() {
		w.Add(col("time_us")+" < ?", TimeUS(f.To))
	}
	return w.SQL(), w.Args
}

// Retention says how long records are kept: Workspaces overrides Default
// (0: forever).
type Retention struct {
	Default    time.Duration
	Workspaces map[string]time.Duration
}

// For is how long a workspace's records are kept (0: forever).
func (r *Retention) For(workspace string) time.Duration {
	if d, ok := r.Workspaces[workspace]; ok {
		return d
	}
	return r.Default
}

// Shortest is the shortest time any records are kept (0: all forever).
func (r *Retention) Shortest() time.Duration {
	short := r.Default
	for _, d := range r.Workspaces {
		if d > 0 && (short == 0 || d < short) {
			short = d
		}
	}
	return short
}

// keptFor says how long retention keeps a record of time t of workspace
// ws, for verify's report of a body removed early.
func keptFor(t time.Time, keep time.Duration, ws string) string {
	if keep == 0 {
		return fmt.Sprintf("keeps workspace %q's records forever", ws)
	}
	return fmt.Sprintf("(%s for workspace %q) would keep it until %s", keep, ws, t.Add(keep).UTC().Format(time.RFC3339))
}

// PruneResult is what one Prune removed.
type PruneResult struct {
	// Pruned records lost their body (their chain fields stay).
	Pruned int64 `json:"pruned"`
	// Compacted chain rows were removed whole: every row of a writer up to
	// a checkpoint was already pruned, and the checkpoint anchors the rest.
	Compacted int64 `json:"compacted"`
}

// Prune applies retention at now in two steps. First the body of every
// expired record is removed; its row stays, with the columns and body hash
// its leaf is computed from, so the chain through it still verifies.
// Then, per writer, the rows up to the newest checkpoint before its first
// unexpired record are deleted: that signed checkpoint anchors what
// remains (Verify reports the chain as starting there).
func (s *Store) Prune(ctx context.Context, r Retention, now time.Time) (PruneResult, error) {
	var res PruneResult
	exec := func(q string, args ...any) error {
		out, err := s.db.SQL.ExecContext(ctx, q, args...)
		if err != nil {
			return store.Classify(err)
		}
		n, _ := out.RowsAffected()
		res.Pruned += n
		return nil
	}
	listed := make([]any, 0, len(r.Workspaces))
	for ws, d := range r.Workspaces {
		listed = append(listed, ws)
		if d > 0 {
			if err := exec(`UPDATE audit_entries SET body = NULL, body_s2 = NULL, body_dict = NULL, key_id = '' WHERE `+hasBody+` AND workspace = $1 AND time_us < $2`,
				ws, TimeUS(now.Add(-d))); err != nil {
				return res, err
			}
		}
	}
	if r.Default > 0 {
		q := `UPDATE audit_entries SET body = NULL, body_s2 = NULL, body_dict = NULL, key_id = '' WHERE ` + hasBody + ` AND time_us < $1`
		args := []any{TimeUS(now.Add(-r.Default))}
		if len(listed) > 0 {
			ph := make([]string, len(listed))
			for i := range listed {
				ph[i] = "$" + strconv.Itoa(i+2)
			}
			q += ` AND workspace NOT IN (` + strings.Join(ph, ",") + `)`
			args = append(args, listed...)
		}
		if err := exec(q, args...); err != nil {
			return res, err
		}
	}
	// Compaction: per writer, the newest checkpoint (seq ≥ 1) below the
	// first row that still has a body, or below the last row: a writer's
	// last row always stays, so its chain never looks cut off at the end.
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT w.writer, MAX(c.seq) FROM
		(SELECT writer, COALESCE(MIN(CASE WHEN `+hasBody+` THEN seq END), MAX(seq)) - 1 AS bound
		 FROM audit_entries GROUP BY writer) w
		JOIN audit_checkpoints c ON c.writer = w.writer AND c.seq >= 1 AND c.seq <= w.bound
		GROUP BY w.writer`)
	if err != nil {
		return res, store.Classify(err)
	}
	type cut struct {
		writer string
		seq    int64
	}
	var cuts []cut
	for rows.Next() {
		var c cut
		if err := rows.Scan(&c.writer, &c.seq); err != nil {
			rows.Close()
			return res, store.Classify(err)
		}
		cuts = append(cuts, c)
	}
	rows.Close()
	for _, c := range cuts {
		out, err := s.db.SQL.ExecContext(ctx, `DELETE FROM audit_entries WHERE writer = $1 AND seq <= $2 AND NOT `+hasBody, c.writer, c.seq)
		if err != nil {
			return res, store.Classify(err)
		}
		n, _ := out.RowsAffected()
		res.Compacted += n
	}
	if res.Pruned+res.Compacted > 0 {
		// The bodies blanked are zeroed in the file (secure_delete); the
		// log's copies of the pages go too, unless a reader holds it (the
		// log's next rounds overwrite them).
		if err := s.db.Checkpoint(ctx); err != nil && !errors.Is(err, store.ErrCheckpointBusy) {
			return res, err
		}
	}
	return res, nil
}
