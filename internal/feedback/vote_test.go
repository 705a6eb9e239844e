package feedback

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/audit"
)

type decisions map[string]Decision

func (d decisions) Decision(_ context.Context, id string) (Decision, error) {
	if x, ok := d[id]; ok {
		return x, nil
	}
	return Decision{}, ErrUnknownDecision
}

func yes() *bool { b := true; return &b }

// TestCast: a vote is checked against its decision (the experimentation probe found any
// decision id and any model kept, and router train trained the named model on it): an
// unknown decision and one of another workspace are the same ErrUnknownDecision, another
// model than the one that served is ErrWrongModel and leaves the earlier vote, no model is
// the served one, and the vote keeps the decision's route, version and arm.
func TestCast(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		st := open()
		id, other := "d-"+t.Name(), "o-"+t.Name()
		ds := decisions{
			id:    {ID: id, Workspace: "eu", KeyID: "k1", Route: "support", Version: 4, Arm: "canary", Model: "mock-eu-large"},
			other: {ID: other, Workspace: "us", KeyID: "k9", Model: "gpt-4o-mini"},
		}
		app := Voter{By: "key:k2", Scoped: true, KeyID: "k2", Workspace: "eu"}
		v := 0.5
		e, err := Cast(ctx, st, ds, app, Ballot{DecisionID: id, Good: yes(), Metric: "resolved", Value: &v,
			Comment: "great, my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"})
		if err != nil || e.Model != "mock-eu-large" || e.Arm != "canary" || e.Version != 4 || strings.Contains(e.Comment, "sk-proj") {
			t.Fatalf("own workspace's decision: %+v, %v", e, err)
		}
		for name, c := range map[string]struct {
			v    Voter
			b    Ballot
			want error
		}{
			"unknown decision":           {app, Ballot{DecisionID: "does-not-exist", Model: "no-such-model", Good: yes()}, ErrUnknownDecision},
			"another workspace's":        {app, Ballot{DecisionID: other, Good: yes()}, ErrUnknownDecision},
			"another model":              {app, Ballot{DecisionID: id, Model: "gpt-4o-mini", Good: yes()}, ErrWrongModel},
			"no verdict":                 {app, Ballot{DecisionID: id}, ErrInvalid},
			"a value without metric":     {app, Ballot{DecisionID: id, Good: yes(), Value: &v}, ErrInvalid},
			"a metric without value":     {app, Ballot{DecisionID: id, Good: yes(), Metric: "x"}, ErrInvalid},
			"a metric with spaces":       {app, Ballot{DecisionID: id, Good: yes(), Metric: "a b", Value: &v}, ErrInvalid},
			"a comment too long":         {app, Ballot{DecisionID: id, Good: yes(), Comment: strings.Repeat("é", MaxComment+1)}, ErrInvalid},
			"an operator, another model": {Voter{By: "admin:ops"}, Ballot{DecisionID: other, Model: "mock-eu-large", Good: yes()}, ErrWrongModel},
		} {
			if _, err := Cast(ctx, st, ds, c.v, c.b); !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", name, err, c.want)
			}
		}
		if _, err := Cast(ctx, st, ds, Voter{By: "admin:ops"}, Ballot{DecisionID: other, Good: yes()}); err != nil {
			t.Errorf("an operator votes on any workspace's decision: %v", err)
		}
		if _, err := Cast(ctx, st, ds, Voter{By: "key:k9", Scoped: true, KeyID: "k9"}, Ballot{DecisionID: other, Good: yes()}); err != nil {
			t.Errorf("a key on its own decision: %v", err)
		}
		got, err := open().Since(ctx, time.Now().Add(-time.Hour), "support")
		if err != nil || len(got) != 1 || got[0].DecisionID != id || got[0].Model != "mock-eu-large" || got[0].Value == nil || *got[0].Value != 0.5 ||
			got[0].Metric != "resolved" || !strings.Contains(got[0].Comment, "[SECRET") || got[0].Workspace != "eu" {
			t.Errorf("route support's votes: %+v, %v", got, err)
		}
	})
}

// TestAuditDecisions: the decision a vote names is read from a real audit log on SQLite and
// PostgreSQL, found even while its record still waits in the writer (a vote sent right after
// the answer), with its workspace, key, route, version, arm and served model; an id the log
// does not have is ErrUnknownDecision.
func TestAuditDecisions(t *testing.T) {
	conform(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		st, err := audit.OpenStore(ctx, open().db)
		if err != nil {
			t.Fatal(err)
		}
		seed := sha256.Sum256([]byte("feedback test"))
		// A batch interval far longer than the test: only the flush on a miss writes the record.
		l, err := audit.Open(ctx, st, audit.NewSigner(ed25519.NewKeyFromSeed(seed[:])),
			audit.Options{Replica: "r-" + t.Name(), BatchInterval: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close(ctx)
		id := "d-" + strings.ReplaceAll(t.Name(), "/", "-")
		l.Record(&audit.Record{Kind: audit.KindDecision, ID: id, Workspace: "eu", Principal: &audit.Principal{KeyID: "k1"},
			Route: &audit.Route{Name: "support", Version: 7, Arm: "b", Path: []string{"start"}}, Chosen: "small", Served: "large"})
		ds := AuditDecisions{Log: l}
		d, err := ds.Decision(ctx, id)
		if want := (Decision{ID: id, Workspace: "eu", KeyID: "k1", Route: "support", Version: 7, Arm: "b", Model: "large"}); err != nil || d != want {
			t.Errorf("decision: %+v, %v; want %+v", d, err, want)
		}
		if _, err := ds.Decision(ctx, "does-not-exist"); !errors.Is(err, ErrUnknownDecision) {
			t.Errorf("unknown id: %v", err)
		}
	})
}

// TestDecodeBallot: a malformed vote is refused naming the member, in the
// client's terms, never Go's ("Go struct field Ballot.good of type bool"
// reached clients of POST /v1/feedback).
func TestDecodeBallot(t *testing.T) {
	if b, err := DecodeBallot([]byte(`{"decision_id":"d1","good":true,"metric":"csat","value":4}`)); err != nil || b.DecisionID != "d1" || !*b.Good || *b.Value != 4 {
		t.Fatalf("a vote: %+v, %v", b, err)
	}
	for body, want := range map[string]string{
		`{"decision_id":1,"good":true}`:              "decision_id has the wrong type",
		`{"decision_id":"d1","good":"yes"}`:          "good has the wrong type",
		`{"decision_id":"d1","good":true,"stars":5}`: `unknown member "stars"`,
		`[]`: "a vote is a JSON object",
		`{`:  "a vote is a JSON object",
	} {
		_, err := DecodeBallot([]byte(body))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Go ") || strings.Contains(err.Error(), "Ballot") {
			t.Errorf("%s: %v, want ErrInvalid saying %q", body, err, want)
		}
		if e := Refusal(err); e == nil || e.Code != "invalid_feedback" {
			t.Errorf("%s: refusal %+v", body, e)
		}
	}
}

// FuzzDecodeBallot: any body a client sends to POST /v1/feedback is a vote
// or an invalid_feedback refusal, never a panic or a store error.
func FuzzDecodeBallot(f *testing.F) {
	for _, s := range []string{`{"decision_id":"d1","good":true}`, `{"decision_id":"d1","good":false,"metric":"m","value":1e308,"comment":"é"}`, `[]`, `{`, `{"good":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBallot(body)
		if err == nil {
			err = b.Check()
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || Refusal(err) == nil) {
			t.Fatalf("%q: %v is no invalid_feedback", body, err)
		}
	})
}
