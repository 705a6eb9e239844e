package feedback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/classify"
)

// Decision is what a vote is checked against and grouped by: who the decision was made
// for, and what served it.
type Decision struct {
	ID        string
	Workspace string
	KeyID     string
	Route     string
	Version   int64
	Arm       string
	// Model is the model that served the answer (the last one tried when none did).
	Model string
}

// Decisions finds a decision by its id (the audit log's record, in SQLite or PostgreSQL).
type Decisions interface {
	// Decision returns ErrUnknownDecision when no decision has the id.
	Decision(ctx context.Context, id string) (Decision, error)
}

var (
	// ErrUnknownDecision: no decision has the id, or the voter may not see it.
	ErrUnknownDecision = errors.New("no such decision")
	// ErrWrongModel: the vote names another model than the one that answered. It was
	// kept, and `router train --feedback-store` trained that model on an answer it never
	// gave (the experimentation probe).
	ErrWrongModel = errors.New("the vote names another model than the one that answered")
)

// Limits of what a vote carries beside its thumbs.
const (
	MaxMetric  = 64
	MaxComment = 1000
	MaxPrompt  = 64 << 10
)

// Ballot is a vote as a client sends it.
type Ballot struct {
	DecisionID string   `json:"decision_id"`
	Model      string   `json:"model,omitempty"`
	Good       *bool    `json:"good"`
	Prompt     string   `json:"prompt,omitempty"`
	Metric     string   `json:"metric,omitempty"`
	Value      *float64 `json:"value,omitempty"`
	Comment    string   `json:"comment,omitempty"`
}

// Voter is who votes: an operator (Scoped false) may vote on any decision; an
// application's virtual key only on decisions made for its own key or workspace.
type Voter struct {
	By        string
	Scoped    bool
	KeyID     string
	Workspace string
}

// may reports whether v may see and vote on d.
func (v Voter) may(d Decision) bool {
	if !v.Scoped {
		return true
	}
	if v.KeyID != "" && d.KeyID == v.KeyID {
		return true
	}
	return v.Workspace != "" && d.Workspace == v.Workspace
}

// DecodeBallot reads a vote as a client sends it, strictly (an unknown
// member is an error); the error wraps ErrInvalid and names the member,
// not Go's types.
func DecodeBallot(body []byte) (Ballot, error) {
	var b Ballot
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&b)
	var ute *json.UnmarshalTypeError
	switch {
	case err == nil:
		return b, nil
	case errors.As(err, &ute) && ute.Field != "":
		return b, fmt.Errorf("%w: %s has the wrong type", ErrInvalid, ute.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return b, fmt.Errorf("%w: unknown member %s; a vote is decision_id and good, with optional model, prompt, metric, value and comment",
			ErrInvalid, trunc(strings.TrimPrefix(err.Error(), "json: unknown field ")))
	}
	return b, fmt.Errorf("%w: a vote is a JSON object {\"decision_id\", \"good\": true|false}", ErrInvalid)
}

// Check validates a ballot's fields; the error wraps ErrInvalid.
func (b *Ballot) Check() error {
	switch {
	case b.DecisionID == "" || b.Good == nil:
		return fmt.Errorf("%w: decision_id and good are required", ErrInvalid)
	case len(b.DecisionID) > 128:
		return fmt.Errorf("%w: decision_id is longer than 128 bytes", ErrInvalid)
	case len(b.Model) > 256:
		return fmt.Errorf("%w: model is longer than 256 bytes", ErrInvalid)
	case len(b.Prompt) > MaxPrompt:
		return fmt.Errorf("%w: prompt is longer than %d bytes", ErrInvalid, MaxPrompt)
	case b.Value != nil && b.Metric == "":
		return fmt.Errorf("%w: a value needs the metric it measures", ErrInvalid)
	case b.Metric != "" && b.Value == nil:
		return fmt.Errorf("%w: metric %q needs a numeric value", ErrInvalid, trunc(b.Metric))
	case b.Value != nil && (math.IsNaN(*b.Value) || math.IsInf(*b.Value, 0)):
		return fmt.Errorf("%w: value must be a finite number", ErrInvalid)
	case !utf8.ValidString(b.Comment) || utf8.RuneCountInString(b.Comment) > MaxComment:
		return fmt.Errorf("%w: comment must be UTF-8 text of at most %d characters", ErrInvalid, MaxComment)
	}
	if len(b.Metric) > MaxMetric {
		return fmt.Errorf("%w: metric is longer than %d characters", ErrInvalid, MaxMetric)
	}
	for _, c := range b.Metric {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%w: metric %q: use letters, digits, '_', '-' and '.'", ErrInvalid, trunc(b.Metric))
		}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > MaxMetric {
		return s[:MaxMetric] + "…"
	}
	return s
}

// Cast checks a ballot against its decision and keeps it: an unknown decision, or one the
// voter may not see, is ErrUnknownDecision (the same, so that ids of other workspaces do
// not leak); a model other than the one that served is ErrWrongModel; no model is the
// served one. Prompt and comment are kept as an audit record keeps content: secrets and
// detected personal data replaced by placeholders.
func Cast(ctx context.Context, st *Store, ds Decisions, v Voter, b Ballot) (Entry, error) {
	if err := b.Check(); err != nil {
		return Entry{}, err
	}
	d, err := ds.Decision(ctx, b.DecisionID)
	if err != nil {
		return Entry{}, err
	}
	if !v.may(d) {
		return Entry{}, ErrUnknownDecision
	}
	model := b.Model
	switch {
	case model == "":
		model = d.Model
	case model != d.Model:
		return Entry{}, fmt.Errorf("%w: decision %s was answered by %s, not %s", ErrWrongModel, d.ID, d.Model, trunc(model))
	}
	if model == "" {
		// A decision refused before any model was tried has no answer to vote on.
		return Entry{}, fmt.Errorf("%w: decision %s was answered by no model", ErrWrongModel, d.ID)
	}
	return st.Record(ctx, Entry{DecisionID: d.ID, Model: model, Good: *b.Good, Prompt: classify.Redact(b.Prompt, nil),
		Metric: b.Metric, Value: b.Value, Comment: classify.Redact(b.Comment, nil), By: v.By,
		Workspace: d.Workspace, Route: d.Route, Version: d.Version, Arm: d.Arm})
}

// AuditDecisions finds decisions in the audit log, indexed by decision id in SQLite and in
// PostgreSQL alike. A decision made moments ago may still wait in this replica's writer:
// on a miss the log is flushed and read again, twice, 100 ms apart (an unknown id's 404
// takes that long). A decision of another replica is found once that replica wrote it.
type AuditDecisions struct {
	Log *audit.Log
}

var _ Decisions = AuditDecisions{}

// recordHandover is how long a vote on a decision not yet in the log waits for the record.
const recordHandover = 100 * time.Millisecond

// Decision reads the decision's record.
func (a AuditDecisions) Decision(ctx context.Context, id string) (Decision, error) {
	es, err := a.find(ctx, id)
	// The edge hands a record over as its stream ends, which may be just after
	// the client read the answer: a second look after a pause catches that.
	for try := 0; err == nil && len(es) == 0 && try < 2; try++ {
		if try > 0 {
			select {
			case <-time.After(recordHandover):
			case <-ctx.Done():
				return Decision{}, ctx.Err()
			}
		}
		if ferr := a.Log.Flush(ctx); ferr != nil {
			break
		}
		es, err = a.find(ctx, id)
	}
	if err != nil {
		return Decision{}, err
	}
	if len(es) == 0 || es[0].Body == nil { // none, or removed by retention
		return Decision{}, ErrUnknownDecision
	}
	var r struct {
		Workspace string `json:"workspace"`
		Principal *struct {
			KeyID string `json:"key_id"`
		} `json:"principal"`
		Route *struct {
			Name    string `json:"name"`
			Version int64  `json:"version"`
			Arm     string `json:"arm"`
		} `json:"route"`
		Served string `json:"served"`
	}
	if err := json.Unmarshal(es[0].Body, &r); err != nil {
		return Decision{}, fmt.Errorf("decision %s: %w", id, err)
	}
	d := Decision{ID: id, Workspace: r.Workspace, Model: r.Served}
	if r.Principal != nil {
		d.KeyID = r.Principal.KeyID
	}
	if r.Route != nil {
		d.Route, d.Version, d.Arm = r.Route.Name, r.Route.Version, r.Route.Arm
	}
	return d, nil
}

func (a AuditDecisions) find(ctx context.Context, id string) ([]audit.Entry, error) {
	es, _, err := a.Log.Store().Query(ctx, audit.Filter{ID: id, Kind: audit.KindDecision}, nil, 1)
	return es, err
}

// Refusal is the API error a client gets for a vote Cast refused, nil for an error of the
// store (the caller answers that as unavailable).
func Refusal(err error) *apierr.Error {
	switch {
	case errors.Is(err, ErrInvalid):
		return apierr.Invalid("invalid_feedback", "", "%s", err.Error())
	case errors.Is(err, ErrUnknownDecision):
		return apierr.NotFound("decision_not_found", "decision_id", "no decision with this id was made for you (or the audit log no longer keeps it)")
	case errors.Is(err, ErrWrongModel):
		return apierr.Conflict("feedback_model_mismatch", "model", "%s; omit model to vote on the model that answered", err.Error())
	}
	return nil
}
