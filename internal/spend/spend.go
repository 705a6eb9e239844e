// Package spend is the spend ledger: one row per decided chat request (who
// asked, which model and provider served, the tokens and what they cost),
// kept in the state store (internal/store: SQLite embedded, or PostgreSQL)
// for chargeback, and the table of budget totals that lets the in-memory
// budget backend survive a restart (Totals, a ledger.Persister).
//
// The request path never waits for the database: the edge hands each row
// to a Recorder, whose Writer buffers rows in memory and inserts them in
// batches from one goroutine (writer.go). Reports group the rows by any of
// key, user, team, workspace, route, model, provider, status, end user,
// tag and day (query.go). docs/budgets.md ("Spend ledger") is this package's contract.
package spend

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/store"
)

// Status is how a decided request ended.
type Status string

const (
	// Served: a provider answered; the row carries its usage (or an
	// estimate, flagged, when it reported none).
	Served Status = "served"
	// Failed: no provider answered successfully (every attempt failed, a
	// provider error, or the request could not be sent): nothing charged.
	Failed Status = "failed"
	// Interrupted: the answer started but did not end normally (the client
	// went away, or the provider broke off a stream): charged what was
	// generated, usually an estimate.
	Interrupted Status = "interrupted"
)

// Row is one request's line in the spend ledger.
type Row struct {
	// Time is when the request left for its provider (when it was decided,
	// for one that never left).
	Time time.Time
	// DecisionID identifies the request; a second row with the same id is
	// ignored.
	DecisionID string
	KeyID      string
	User       string
	Team       string
	Workspace  string
	Route      string // the named route, "" for none
	Model      string // the model that served, or the last one tried
	Provider   string
	TokensIn   int64
	TokensOut  int64
	// TokensCached is the part of TokensIn the provider served from its
	// prompt cache (0 when unknown).
	TokensCached int64
	Cost         ledger.MicroEUR
	// Estimated is set when the usage is stellwerk's estimate, not the
	// provider's report.
	Estimated bool
	Status    Status
	// EndUser is the end user the request named (chat's, the Responses
	// API's and embeddings' `user`, the Messages API's metadata.user_id)
	// and Tag the value of the request metadata's member spend.tag names:
	// both the client's, bounded by Label, "" when absent. They attribute
	// spend and are trusted for nothing else.
	EndUser string
	Tag     string
}

// Recorder takes a row off the request path. Record never blocks and
// never fails: a recorder that cannot keep a row counts and logs the loss.
type Recorder interface {
	Record(Row)
}

// Component names the spend ledger's schema in schema_migrations.
const Component = "spend"

// Migrations is the spend ledger's schema, for both dialects. Times are
// Unix milliseconds, money integer micro-euros, flags 0 or 1.
var Migrations = []store.Migration{
	{Version: 1, Name: "spend rows and budget totals", SQL: `
CREATE TABLE spend_requests (
	decision_id    TEXT    NOT NULL PRIMARY KEY,
	ts             BIGINT  NOT NULL,
	key_id         TEXT    NOT NULL,
	user_name      TEXT    NOT NULL,
	team           TEXT    NOT NULL,
	workspace      TEXT    NOT NULL,
	route          TEXT    NOT NULL,
	model          TEXT    NOT NULL,
	provider       TEXT    NOT NULL,
	tokens_in      BIGINT  NOT NULL,
	tokens_out     BIGINT  NOT NULL,
	tokens_cached  BIGINT  NOT NULL,
	cost_micro_eur BIGINT  NOT NULL,
	estimated      INTEGER NOT NULL,
	status         TEXT    NOT NULL
);
CREATE INDEX spend_requests_ts ON spend_requests (ts);
CREATE TABLE budget_totals (
	budget         TEXT   NOT NULL,
	period         TEXT   NOT NULL,
	subject        TEXT   NOT NULL,
	start_ms       BIGINT NOT NULL,
	expires_ms     BIGINT NOT NULL,
	used_micro_eur BIGINT NOT NULL,
	PRIMARY KEY (budget, period, subject, start_ms)
);`},
	{Version: 2, Name: "budget notices told", SQL: `
CREATE TABLE budget_notices (
	notice   TEXT   NOT NULL PRIMARY KEY,
	until_ms BIGINT NOT NULL
);`},
	// Rows written before it read "" for both: no end user, no tag.
	{Version: 3, Name: "spend rows' end user and tag", SQL: `
ALTER TABLE spend_requests ADD COLUMN end_user TEXT NOT NULL DEFAULT '';
ALTER TABLE spend_requests ADD COLUMN tag TEXT NOT NULL DEFAULT '';`},
}

// Store is the spend ledger in a state database.
type Store struct {
	db      *store.DB
	inserts *store.Prepared
}

// Open migrates the spend ledger's tables in db and returns the store.
func Open(ctx context.Context, db *store.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	d := db.Dialect
	return &Store{db: db, inserts: store.NewPrepared(db.SQL, maxInsertRows, func(n int) string { return insertSQL(d, n) })}, nil
}

// DB is the database the store lives in.
func (s *Store) DB() *store.DB { return s.db }

// rowColumns are spend_requests' columns in Insert's order.
const rowColumns = "decision_id, ts, key_id, user_name, team, workspace, route, model, provider, " +
	"tokens_in, tokens_out, tokens_cached, cost_micro_eur, estimated, status, end_user, tag"

const colsPerRow = 17

// maxInsertRows bounds one INSERT statement (17 parameters a row stays far
// below SQLite's and PostgreSQL's limits); each row count's statement is
// prepared once per store (store.Prepared).
const maxInsertRows = 64

// Insert writes rows in one transaction; a row whose decision id is already
// there is skipped. It returns how many rows were new. Errors of the
// database's reachability wrap store.ErrUnavailable.
func (s *Store) Insert(ctx context.Context, rows []Row) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	added := 0
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		added = 0
		most := s.inserts.Max()
		args := make([]any, 0, min(len(rows), most)*colsPerRow)
		for start := 0; start < len(rows); start += most {
			chunk := rows[start:min(start+most, len(rows))]
			args = args[:0]
			for i := range chunk {
				r := &chunk[i]
				est := 0
				if r.Estimated {
					est = 1
				}
				args = append(args, r.DecisionID, r.Time.UnixMilli(), r.KeyID, r.User, r.Team, r.Workspace, r.Route,
					r.Model, r.Provider, r.TokensIn, r.TokensOut, r.TokensCached, int64(r.Cost), est, string(r.Status), r.EndUser, r.Tag)
			}
			res, err := s.inserts.Exec(ctx, tx, len(chunk), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			added += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("spend ledger: %w", err)
	}
	return added, nil
}

// insertSQL is a multi-row INSERT of n rows that skips known decision ids.
// SQLite gets anonymous ? parameters: it looks each $N up by name, which
// costs quadratic time over a statement of thousands of them.
func insertSQL(d store.Dialect, n int) string {
	var b strings.Builder
	b.Grow(len(rowColumns) + 100 + n*colsPerRow*6)
	b.WriteString(d.Insert() + "spend_requests (" + rowColumns + ") VALUES ")
	p := 1
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < colsPerRow; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			if d == store.SQLite {
				b.WriteByte('?')
				continue
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(p))
			p++
		}
		b.WriteByte(')')
	}
	b.WriteString(" ON CONFLICT (decision_id) DO NOTHING")
	return b.String()
}
