package store

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// Migration is one schema step of a component. Versions start at 1 and
// follow each other without gaps; a released migration is never edited,
// only followed by a new one.
type Migration struct {
	Version int
	Name    string
	// SQL is the statements for both dialects, separated by ";\n";
	// Postgres, if set, replaces it for PostgreSQL.
	SQL      string
	Postgres string
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	applied_at BIGINT  NOT NULL,
	PRIMARY KEY (component, version)
)`

// Migrate brings a component's tables to its latest version, each step in
// its own transaction. Replicas starting together serialize on a lock
// (PostgreSQL advisory lock; SQLite's write lock), so each step runs once.
// A database newer than the binary is refused: an old binary must not write
// to a schema it does not know.
func (db *DB) Migrate(ctx context.Context, component string, ms []Migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("store: %s migration %q has version %d, want %d", component, m.Name, m.Version, i+1)
		}
	}
	if _, err := db.SQL.ExecContext(ctx, migrationsTable); err != nil {
		return fmt.Errorf("store: %w", Classify(err))
	}
	existed := -1 // the component's version before this call; -1 until read
	for _, m := range ms {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if db.Dialect == Postgres {
				h := fnv.New64a()
				h.Write([]byte("stellwerk-migrate:" + component))
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
					return err
				}
			}
			var latest int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1`,
				component).Scan(&latest); err != nil {
				return err
			}
			if existed < 0 {
				existed = latest
			}
			if latest > len(ms) {
				return fmt.Errorf("the %s schema is at version %d but this stellwerk knows only %d: upgrade stellwerk", component, latest, len(ms))
			}
			if latest >= m.Version {
				return nil
			}
			text := m.SQL
			if db.Dialect == Postgres && m.Postgres != "" {
				text = m.Postgres
			}
			for _, stmt := range splitStatements(text) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ($1, $2, $3, $4)`,
				component, m.Version, m.Name, time.Now().UnixMilli())
			if err == nil && existed > 0 {
				db.mu.Lock()
				db.migrated = append(db.migrated, fmt.Sprintf("%s %d (%s)", component, m.Version, m.Name))
				db.mu.Unlock()
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("store: %s: %w", component, err)
		}
	}
	return nil
}

// Version is a component's schema version (0: none).
func (db *DB) Version(ctx context.Context, component string) (int, error) {
	var v int
	err := db.SQL.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1`, component).Scan(&v)
	return v, Classify(err)
}

// splitStatements splits on ";" at the end of a line; migrations hold no
// such text inside a literal.
func splitStatements(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ';' && (i+1 == len(s) || s[i+1] == '\n') {
			if stmt := trimSpace(s[start:i]); stmt != "" {
				out = append(out, stmt)
			}
			start = i + 1
		}
	}
	if stmt := trimSpace(s[start:]); stmt != "" {
		out = append(out, stmt)
	}
	return out
}

func trimSpace(s string) string { return strings.TrimSpace(s) }
