// Package feedback keeps thumbs up/down on routed answers in the state store (SQLite, or
// PostgreSQL for a fleet), one vote per decision and voter (the latest counts), so that
// `stellwerk router train --feedback-store` can train the quality predictor on the traffic
// stellwerk actually routed. A vote carries the prompt only when the caller sends it: the
// audit log keeps no prompt text, and the predictor cannot learn from a vote without it.
package feedback

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
)

// Entry is one vote on one decision's answer. Workspace, Route, Version and Arm are the
// decision's, copied from it when the vote was checked against it (Cast), so that an export
// groups votes by arm without reading the audit log again; votes kept before that read "".
type Entry struct {
	DecisionID string    `json:"decision_id"`
	Model      string    `json:"model"`
	Good       bool      `json:"good"`
	Prompt     string    `json:"prompt,omitempty"`
	Metric     string    `json:"metric,omitempty"`
	Value      *float64  `json:"value,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
	Workspace  string    `json:"workspace,omitempty"`
	Route      string    `json:"route,omitempty"`
	Version    int64     `json:"route_version,omitempty"`
	Arm        string    `json:"arm,omitempty"`
}

// Component names the feedback schema in schema_migrations.
const Component = "feedback"

// Migrations is the feedback schema for both dialects. Times are Unix milliseconds.
var Migrations = []store.Migration{
	{Version: 1, Name: "feedback votes", SQL: `
CREATE TABLE feedback (
	decision_id TEXT    NOT NULL,
	by_name     TEXT    NOT NULL,
	model       TEXT    NOT NULL,
	good        INTEGER NOT NULL,
	prompt      TEXT    NOT NULL DEFAULT '',
	at          BIGINT  NOT NULL,
	PRIMARY KEY (decision_id, by_name)
);
CREATE INDEX feedback_at ON feedback (at)`},
	// Votes kept before it read "" and no value: they were not checked
	// against their decision.
	{Version: 2, Name: "feedback metric, comment and the decision's route", SQL: `
ALTER TABLE feedback ADD COLUMN metric TEXT NOT NULL DEFAULT '';
ALTER TABLE feedback ADD COLUMN metric_value DOUBLE PRECISION;
ALTER TABLE feedback ADD COLUMN comment TEXT NOT NULL DEFAULT '';
ALTER TABLE feedback ADD COLUMN workspace TEXT NOT NULL DEFAULT '';
ALTER TABLE feedback ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE feedback ADD COLUMN route_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE feedback ADD COLUMN arm TEXT NOT NULL DEFAULT '';`},
}

// ErrInvalid marks a vote that is malformed, or lacks a decision id, a
// model or a voter.
var ErrInvalid = errors.New("invalid vote")

// Store keeps votes in a state database.
type Store struct {
	db  *store.DB
	now func() time.Time
}

// Open migrates the feedback schema and returns the store.
func Open(ctx context.Context, db *store.DB) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, err
	}
	return &Store{db: db, now: time.Now}, nil
}

// Record stores a vote; a voter's later vote on the same decision replaces the earlier one.
func (s *Store) Record(ctx context.Context, e Entry) (Entry, error) {
	if e.DecisionID == "" || e.Model == "" || e.By == "" {
		return e, ErrInvalid
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	good := 0
	if e.Good {
		good = 1
	}
	var value sql.NullFloat64
	if e.Value != nil {
		value = sql.NullFloat64{Float64: *e.Value, Valid: true}
	}
	_, err := s.db.SQL.ExecContext(ctx, `INSERT INTO feedback (decision_id, by_name, model, good, prompt, at,
	metric, metric_value, comment, workspace, route, route_version, arm) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (decision_id, by_name) DO UPDATE SET model = excluded.model, good = excluded.good, prompt = excluded.prompt, at = excluded.at,
	metric = excluded.metric, metric_value = excluded.metric_value, comment = excluded.comment, workspace = excluded.workspace,
	route = excluded.route, route_version = excluded.route_version, arm = excluded.arm`,
		e.DecisionID, e.By, e.Model, good, e.Prompt, e.At.UnixMilli(), e.Metric, value, e.Comment, e.Workspace, e.Route, e.Version, e.Arm)
	return e, store.Classify(err)
}

// List returns every vote, oldest first.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	return s.Since(ctx, time.Time{}, "")
}

// Since returns the votes cast at or after since (zero: all), of one route's decisions
// when route is not "", oldest first.
func (s *Store) Since(ctx context.Context, since time.Time, route string) ([]Entry, error) {
	q := `SELECT decision_id, by_name, model, good, prompt, at, metric, metric_value, comment, workspace, route, route_version, arm
FROM feedback WHERE at >= $1`
	args := []any{int64(0)}
	if !since.IsZero() {
		args[0] = since.UnixMilli()
	}
	if route != "" {
		q += ` AND route = $2`
		args = append(args, route)
	}
	rows, err := s.db.SQL.QueryContext(ctx, q+` ORDER BY at, decision_id, by_name`, args...)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var good int
		var at int64
		var value sql.NullFloat64
		if err := rows.Scan(&e.DecisionID, &e.By, &e.Model, &good, &e.Prompt, &at, &e.Metric, &value, &e.Comment,
			&e.Workspace, &e.Route, &e.Version, &e.Arm); err != nil {
			return nil, store.Classify(err)
		}
		e.Good, e.At = good == 1, time.UnixMilli(at).UTC()
		if value.Valid {
			v := value.Float64
			e.Value = &v
		}
		out = append(out, e)
	}
	return out, store.Classify(rows.Err())
}
