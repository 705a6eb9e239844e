package store

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared keeps a multi-row statement prepared once per row count. A
// writer that built a statement of each batch's own size had SQLite parse
// and compile it again for every batch (~120 µs for 25 audit rows, when
// quiet); with one statement per size the parse is paid once, and a batch
// is still one execution (one round trip on PostgreSQL), which cutting it
// into a few fixed sizes was not (docs/benchmarks.md).
type Prepared struct {
	db    *sql.DB
	build func(rows int) string // the statement for rows rows
	max   int

	mu    sync.Mutex
	stmts map[int]*Stmt
}

// NewPrepared keeps the statements build makes, for 1 to max rows.
func NewPrepared(db *sql.DB, max int, build func(rows int) string) *Prepared {
	return &Prepared{db: db, build: build, max: max, stmts: make(map[int]*Stmt)}
}

// Max is the largest row count a statement takes: callers cut longer
// batches into statements of at most Max rows.
func (p *Prepared) Max() int { return p.max }

// Exec runs the statement for rows rows (1 ≤ rows ≤ Max) in tx. The
// statement is prepared on first use; database/sql prepares it again on
// each connection it meets and reuses it there.
func (p *Prepared) Exec(ctx context.Context, tx *sql.Tx, rows int, args ...any) (sql.Result, error) {
	p.mu.Lock()
	s := p.stmts[rows]
	if s == nil {
		s = NewStmt(p.db, p.build(rows))
		p.stmts[rows] = s
	}
	p.mu.Unlock()
	st, err := s.prepared(ctx)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// Stmt is one statement prepared on first use. The polls every replica
// runs every state.refresh_interval (a key table's and the route table's
// generation, four times a second by default) had SQLite parse their
// query again each time: a third of what an idle server spent on its
// store (docs/benchmarks.md). A statement that cannot be prepared (the
// database down) is tried again on the next call.
type Stmt struct {
	db   *sql.DB
	text string

	mu sync.Mutex
	st *sql.Stmt
}

// NewStmt keeps text, to be prepared on db when first run.
func NewStmt(db *sql.DB, text string) *Stmt { return &Stmt{db: db, text: text} }

// QueryRow runs the statement and scans its one row into dest: as
// QueryRowContext(...).Scan(dest...), sql.ErrNoRows included.
func (s *Stmt) QueryRow(ctx context.Context, args []any, dest ...any) error {
	st, err := s.prepared(ctx)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

// QueryRowTx is QueryRow in tx: what it reads is of tx's snapshot.
func (s *Stmt) QueryRowTx(ctx context.Context, tx *sql.Tx, args []any, dest ...any) error {
	st, err := s.prepared(ctx)
	if err != nil {
		return err
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...).Scan(dest...)
}

// prepared is the statement, prepared now if it was not yet.
func (s *Stmt) prepared(ctx context.Context) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		st, err := s.db.PrepareContext(ctx, s.text)
		if err != nil {
			return nil, err
		}
		s.st = st
	}
	return s.st, nil
}
