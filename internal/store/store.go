// Package store is the shared base of stellwerk's persistent state: one
// database handle, its dialect, and versioned schema migrations per
// component. The default is an embedded SQLite file (pure Go, no server to
// start); a fleet of replicas shares PostgreSQL. Each component (keys, the
// spend ledger, and later the audit log and route versions) owns its tables and
// its migrations, and builds its own queries on DB; this package knows
// nothing of them.
//
// Queries use PostgreSQL's $1, $2 … placeholders, which SQLite accepts as
// well, so most statements are the same text for both dialects.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Dialect is the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Insert is how a batch's multi-row INSERT starts in the dialect. On
// SQLite it is INSERT OR FAIL: a statement that can write several rows
// and might abort keeps a statement journal, a copy of every page it
// changes, so that it alone can be undone while its transaction goes on.
// Nothing here goes on after a failed statement (Tx rolls the whole
// transaction back), so the copy was work for nothing: about a seventh of
// the audit store's time in the bench's stack (docs/benchmarks.md). OR
// FAIL keeps the rows before a failing one instead of undoing them, which
// the rollback then does; an ON CONFLICT … DO NOTHING clause still
// applies to its constraint. PostgreSQL keeps no such journal.
func (d Dialect) Insert() string {
	if d == SQLite {
		return "INSERT OR FAIL INTO "
	}
	return "INSERT INTO "
}

// DB is an open state database.
type DB struct {
	SQL     *sql.DB
	Dialect Dialect
	// Dir is the state directory (SQLite), "" with PostgreSQL.
	Dir string

	mu       sync.Mutex
	migrated []string // migrations this process ran on existing tables, "component N (name)"
}

// Migrated names the schema migrations this process ran on a component
// that had tables already, in order, so that serve can say what an
// upgrade changed (after which an older stellwerk refuses the database).
// Creating a new component's tables is not among them.
func (db *DB) Migrated() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]string(nil), db.migrated...)
}

// ErrUnavailable marks an operation that failed because the database could
// not be reached (PostgreSQL down, the SQLite file locked too long). Callers
// answer 503 and keep serving from what they hold in memory.
var ErrUnavailable = errors.New("state store unavailable")

// SQLiteFile is the database file's name in the state directory.
const SQLiteFile = "stellwerk.db"

// Open opens the state store a config names: PostgreSQL when
// state.postgres is set, else the SQLite file in state.dir (created with
// mode 0700 for the directory and 0600 for the file).
func Open(ctx context.Context, st config.State, getenv func(string) string) (*DB, error) {
	if st.Postgres != nil {
		dsn, err := ReadSecret(config.SecretSource{Env: st.Postgres.DSNEnv, File: st.Postgres.DSNFile}, getenv)
		if err != nil {
			return nil, fmt.Errorf("state.postgres: %w", err)
		}
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, st.Dir)
}

// StateFiles are the files a state directory holds beside its database
// once a server has run on it: the generated hash key of virtual keys
// (keys.HashKeyFile), made for an embedded store only. The audit log's
// signing key is no sign: a server on PostgreSQL makes it in state.dir
// too, and one moving to the embedded store was refused (the red-team
// probe).
var StateFiles = []string{"hash.key"}

// stateKept refuses to make a new, empty database in a directory whose
// other files show it held one: the database missing or empty beside them
// is a failed restore or copy (a full disk), and a new one started a
// server without its keys, spend, route versions and audit history, every
// key answering 401 and audit verify saying ok on the new chain (the
// storage probe).
func stateKept(dir, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 || err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil // there, or not for us to judge (the open says why)
	}
	var held []string
	for _, name := range StateFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			held = append(held, name)
		}
	}
	if len(held) == 0 {
		return nil
	}
	return fmt.Errorf("state: %s is missing or empty, but %s beside it shows that %s held state: restore the database from its backup "+
		"(docs/deploy.md, backups), or move %s out of the directory to start with an empty one", path, strings.Join(held, " and "), dir,
		strings.Join(held, " and "))
}

// OpenSQLite opens (creating if needed) the SQLite state in dir.
func OpenSQLite(ctx context.Context, dir string) (*DB, error) {
	if dir == "" {
		return nil, errors.New("state.dir: empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state.dir: %w", err)
	}
	path := filepath.Join(dir, SQLiteFile)
	if err := stateKept(dir, path); err != nil {
		return nil, err
	}
	// Create the file ourselves so it is 0600 from its first byte.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if fi.Size() == 0 {
		if err := CreateSQLite(ctx, path, sqlitePageSize); err != nil {
			return nil, fmt.Errorf("state %s: %w", path, err)
		}
	}
	// WAL lets the CLI write while a server reads; busy_timeout waits for a
	// writer instead of failing; immediate transactions take the write lock
	// at BEGIN, so two writers never deadlock upgrading a read lock.
	// secure_delete overwrites what a delete or update removes with zeros:
	// an audit record's body that retention blanked stayed readable in the
	// file's free space (the data-protection probe; Checkpoint clears the
	// WAL's copies).
	dsn := "file:" + path + "?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	// WAL and its shared-memory file inherit the process umask: keep them
	// private as well.
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = os.Chmod(path+suffix, 0o600)
	}
	return &DB{SQL: db, Dialect: SQLite, Dir: dir}, nil
}

// Checkpoint moves SQLite's write-ahead log into the file and empties it,
// so that the page images it held (what a delete removed among them) are
// gone from the disk; nothing on PostgreSQL, whose VACUUM does that
// (docs/audit.md). A reader in the middle of a read keeps the log: the
// error says so, and the next checkpoint (SQLite's own, every 1,000
// pages) overwrites it.
func (db *DB) Checkpoint(ctx context.Context) error {
	if db.Dialect != SQLite {
		return nil
	}
	var busy, frames, done int
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done); err != nil {
		return Classify(err)
	}
	if busy != 0 {
		return ErrCheckpointBusy
	}
	return nil
}

// ErrCheckpointBusy: a reader kept the write-ahead log from being emptied.
var ErrCheckpointBusy = errors.New("state: the write-ahead log was not emptied: a reader held it")

// sqlitePageSize is the page size of a new SQLite state file. An audit
// record of a decision on the shipped catalog is stored in ~2.1 KB
// (compressed), so SQLite's default 4 KB page held one record and was 40 %
// empty; 8 KB pages hold three (docs/audit.md). A file keeps the page size
// it was created with: in WAL mode SQLite cannot change it.
var sqlitePageSize = 8192

// CreateSQLite gives a new, empty SQLite file its page size and WAL mode
// (OpenSQLite does, with sqlitePageSize; benchmarks compare sizes with it).
// The page size must be set before the first page is written, and the
// driver applies a DSN's journal_mode before its other pragmas, so this is
// one connection of its own, before the store's.
func CreateSQLite(ctx context.Context, path string, pageSize int) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = db.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d; PRAGMA journal_mode = WAL", pageSize))
	return err
}

// CheckPostgresDSN reports whether a DSN parses, without connecting: what
// `stellwerk config check` can say of state.postgres (it said ok of one
// serve then refused: the CLI probe). The error never holds the DSN.
func CheckPostgresDSN(dsn string) error {
	if err := unescapedAt(dsn); err != nil {
		return err
	}
	if _, err := pgx.ParseConfig(dsn); err != nil { // the driver parses it only when it connects
		return errors.New("state.postgres: the DSN does not parse") // its error may quote the password
	}
	return nil
}

// unescapedAt refuses a URL DSN whose user name or password holds an @:
// the password would be read as part of the host name, and the error that
// names the host would show it.
func unescapedAt(dsn string) error {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		rest, ok := strings.CutPrefix(dsn, scheme)
		if authority, _, _ := strings.Cut(rest, "/"); ok && strings.Count(authority, "@") > 1 {
			return errors.New("state.postgres: the DSN's user name or password has an @ that is not escaped: write it as %40")
		}
	}
	return nil
}

// OpenPostgres connects to PostgreSQL. The DSN is never part of an error.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	if err := unescapedAt(dsn); err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, errors.New("state.postgres: the DSN does not parse") // the DSN may carry a password
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	// A server that takes the connection and never answers (a pooler
	// without a backend, a proxy to nowhere) held a start for ever, with
	// no word in the log and no probe served (the container probe).
	pctx, cancel := context.WithTimeout(ctx, PingBound)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		if ctx.Err() == nil && pctx.Err() != nil {
			return nil, fmt.Errorf("state.postgres: %w: no answer within %s (is the server, or a pooler or proxy in front of it, up?)", ErrUnavailable, PingBound)
		}
		return nil, fmt.Errorf("state.postgres: %w", Classify(err))
	}
	return &DB{SQL: db, Dialect: Postgres}, nil
}

// PingBound is how long opening PostgreSQL waits for its first answer.
var PingBound = 30 * time.Second

// Close closes the handle.
func (db *DB) Close() error { return db.SQL.Close() }

// Tx runs fn in a transaction, committing if it returns nil. Errors of the
// database's reachability come back wrapping ErrUnavailable.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return db.tx(ctx, nil, fn)
}

func (db *DB) tx(ctx context.Context, opts *sql.TxOptions, fn func(*sql.Tx) error) error {
	tx, err := db.SQL.BeginTx(ctx, opts)
	if err != nil {
		return Classify(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return Classify(err)
	}
	return Classify(tx.Commit())
}

// ReadTx runs fn in a read-only transaction whose statements all read one
// snapshot of the database, however many writes commit meanwhile:
// PostgreSQL's repeatable read, SQLite's read transaction (in WAL mode it
// takes no lock a writer waits for). A table reading a generation and the
// rows changed up to it reads them so: the rows are the store at that
// generation and nothing newer.
func (db *DB) ReadTx(ctx context.Context, fn func(*sql.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return db.tx(ctx, opts, fn)
}

// SQLite's primary result codes that mean "not now" (sqlite.org/rescode.html).
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// Classify wraps an error that means "the database is not there" (or
// cannot take a write now: a full disk) with ErrUnavailable; others pass
// unchanged.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	var ne net.Error
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &pe):
		// 08: connection exception; 57P: operator intervention (shutdown);
		// 53: insufficient resources; 25006: a read-only transaction (a
		// primary demoted in a failover, before the address moves); 40001,
		// 40P01: serialization failure, deadlock (try again).
		if strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "53") ||
			pe.Code == "25006" || pe.Code == "40001" || pe.Code == "40P01" {
			return fmt.Errorf("%w: %s", ErrUnavailable, pe.Message)
		}
		return err
	case errors.As(err, &ce), errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var le interface{ Code() int } // modernc.org/sqlite's *sqlite.Error
	if errors.As(err, &le) {
		// The primary result code (the low byte of an extended one): BUSY,
		// LOCKED, READONLY, IOERR, FULL (a full disk) and CANTOPEN pass;
		// the data is kept and written when they do.
		switch le.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	msg := err.Error()
	for _, s := range []string{"database is locked", "SQLITE_BUSY", "unexpected EOF", "conn closed", "connection refused", "broken pipe"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return err
}

// ReadSecret reads a secret from the environment variable or the file a
// source names, trimmed of surrounding white space. Neither the value nor
// (for files) its content ever appears in an error.
func ReadSecret(src config.SecretSource, getenv func(string) string) (string, error) {
	switch {
	case src.Env != "":
		v := strings.TrimSpace(getenv(src.Env))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set", src.Env)
		}
		return v, nil
	case src.File != "":
		b, err := os.ReadFile(src.File)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %w", src.File, errors.Unwrap(err))
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s is empty", src.File)
		}
		return v, nil
	}
	return "", errors.New("no env or file given")
}
