// Package feedback keeps thumbs up/down on routed answers in the state store (SQLite, or
// PostgreSQL for a fleet), one vote per decision and voter (the latest counts), so that
// `stellwerk router train --feedback-store` can train the quality predictor on the traffic
// stellwerk actually routed. A vote carries the prompt only when the caller sends it: the
// audit log keeps no prompt text, and the predictor cannot learn from a vote without it.
package feedback

import (
	"context"
	"errors"
	"time"

	"github.com/stellwerk/stellwerk/internal/store"
)

// Entry is one vote on one decision's answer.
type Entry struct {
	DecisionID string    `json:"decision_id"`
	Model      string    `json:"model"`
	Good       bool      `json:"good"`
	Prompt     string    `json:"prompt,omitempty"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
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
}

// ErrInvalid marks a vote that lacks a decision id, a model or a voter.
var ErrInvalid = errors.New("feedback needs a decision id, a model and who votes")

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
	_, err := s.db.SQL.ExecContext(ctx, `INSERT INTO feedback (decision_id, by_name, model, good, prompt, at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (decision_id, by_name) DO UPDATE SET model = excluded.model, good = excluded.good, prompt = excluded.prompt, at = excluded.at`,
		e.DecisionID, e.By, e.Model, good, e.Prompt, e.At.UnixMilli())
	return e, store.Classify(err)
}

// List returns every vote, oldest first.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	rows, err := s.db.SQL.QueryContext(ctx, `SELECT decision_id, by_name, model, good, prompt, at FROM feedback ORDER BY at, decision_id, by_name`)
	if err != nil {
		return nil, store.Classify(err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var good int
		var at int64
		if err := rows.Scan(&e.DecisionID, &e.By, &e.Model, &good, &e.Prompt, &at); err != nil {
			return nil, store.Classify(err)
		}
		e.Good, e.At = good == 1, time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, store.Classify(rows.Err())
}
