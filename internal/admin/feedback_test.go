package admin

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/store"
)

type feedbackStatus struct {
	fakeStatus
	fs *feedback.Store
	ds decisions
}

func (f *feedbackStatus) Feedback() *feedback.Store { return f.fs }

func (f *feedbackStatus) FeedbackDecisions() feedback.Decisions {
	if f.ds == nil {
		return nil
	}
	return f.ds
}

// decisions are fake audit records by decision id.
type decisions map[string]feedback.Decision

func (d decisions) Decision(_ context.Context, id string) (feedback.Decision, error) {
	if x, ok := d[id]; ok {
		return x, nil
	}
	return feedback.Decision{}, feedback.ErrUnknownDecision
}

// TestFeedbackAPI (issue 19): an operator's thumbs down on a decision is stored with its
// prompt, which is never echoed and is kept with secrets and detected personal data
// replaced (the data-protection probe); a viewer may not vote; a vote without a verdict is
// a 400.
func TestFeedbackAPI(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fs, err := feedback.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	ds := decisions{"d1": {ID: "d1", Workspace: "eu", Route: "support", Version: 3, Arm: "b", Model: "gpt-4o-mini"}}
	h := Handler(&feedbackStatus{fakeStatus: fakeStatus{tokens: testTokens()}, fs: fs, ds: ds}, zap.NewNop())
	vote := `{"decision_id":"d1","model":"gpt-4o-mini","good":false,"prompt":"Prove the lemma for erika.mustermann@example.com, IBAN DE89370400440532013000"}`
	if rec := do(t, h, "POST", "/admin/feedback", config.RoleViewer, vote); rec.Code != 403 {
		t.Fatalf("viewer vote: %d", rec.Code)
	}
	rec := do(t, h, "POST", "/admin/feedback", config.RoleOperator, vote)
	if rec.Code != 201 || strings.Contains(rec.Body.String(), "Prove") || !strings.Contains(rec.Body.String(), `"by":"admin:`) {
		t.Fatalf("vote: %d %s", rec.Code, rec.Body)
	}
	if st, code, _ := openAIError(t, do(t, h, "POST", "/admin/feedback", config.RoleOperator, `{"decision_id":"d1","model":"m"}`)); st != 400 || code != "invalid_feedback" {
		t.Errorf("vote without good: %d %s", st, code)
	}
	if rec := do(t, h, "POST", "/admin/feedback", config.RoleOperator, `{"decision_id":"d1","model":"m","good":true,"stars":5}`); rec.Code != 400 {
		t.Errorf("unknown field: %d", rec.Code)
	}
	// Checked against the decision (the experimentation probe): an unknown one is a 404,
	// another model than the one that served a 409 that leaves the earlier vote as it was.
	if st, code, _ := openAIError(t, do(t, h, "POST", "/admin/feedback", config.RoleOperator, `{"decision_id":"does-not-exist","model":"no-such-model","good":false}`)); st != 404 || code != "decision_not_found" {
		t.Errorf("unknown decision: %d %s", st, code)
	}
	wrong := do(t, h, "POST", "/admin/feedback", config.RoleOperator, `{"decision_id":"d1","model":"mock-eu-large","good":true}`)
	if st, code, param := openAIError(t, wrong); st != 409 || code != "feedback_model_mismatch" || param != "model" || !strings.Contains(wrong.Body.String(), "answered by gpt-4o-mini") {
		t.Errorf("wrong model: %d %s %s", st, code, wrong.Body)
	}
	got, err := fs.List(context.Background())
	if err != nil || len(got) != 1 || got[0].Good || got[0].Prompt != "Prove the lemma for [EMAIL], IBAN [IBAN]" || got[0].Model != "gpt-4o-mini" ||
		got[0].Route != "support" || got[0].Version != 3 || got[0].Arm != "b" {
		t.Errorf("stored: %+v, %v", got, err)
	}
	// Without a model, the vote is for the model that served; read back with its arm.
	if rec := do(t, h, "POST", "/admin/feedback", config.RoleOperator, `{"decision_id":"d1","good":true,"metric":"resolved","value":1}`); rec.Code != 201 || !strings.Contains(rec.Body.String(), `"model":"gpt-4o-mini"`) {
		t.Errorf("vote without model: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "GET", "/admin/feedback?since=1h&route=support", config.RoleAuditor, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"arm":"b"`) || !strings.Contains(rec.Body.String(), `"metric":"resolved","value":1`) || strings.Contains(rec.Body.String(), "lemma") {
		t.Errorf("read back: %d %s", rec.Code, rec.Body)
	}
	// Comments are an end user's words: a viewer (dashboards) reads none.
	if rec := do(t, h, "GET", "/admin/feedback", config.RoleViewer, ""); rec.Code != 403 || strings.Contains(rec.Body.String(), "d1") {
		t.Errorf("viewer read: %d %s", rec.Code, rec.Body)
	}
	if st, code, _ := openAIError(t, do(t, h, "GET", "/admin/feedback?since=yesterday", config.RoleAuditor, "")); st != 400 || code != "invalid_since" {
		t.Errorf("since not a time: %d %s", st, code)
	}
	if rec := do(t, h, "GET", "/admin/feedback?route=other", config.RoleOperator, ""); rec.Code != 200 || strings.Contains(rec.Body.String(), "d1") {
		t.Errorf("another route's votes: %d %s", rec.Code, rec.Body)
	}
	// Without an audit log to check votes against: 503.
	h = Handler(&feedbackStatus{fakeStatus: fakeStatus{tokens: testTokens()}, fs: fs}, zap.NewNop())
	if st, code, _ := openAIError(t, do(t, h, "POST", "/admin/feedback", config.RoleOperator, vote)); st != 503 || code != "feedback_unavailable" {
		t.Errorf("no audit log: %d %s", st, code)
	}
	// Without a state store: 503.
	h = Handler(&feedbackStatus{fakeStatus: fakeStatus{tokens: testTokens()}}, zap.NewNop())
	if rec := do(t, h, "POST", "/admin/feedback", config.RoleOperator, vote); rec.Code != 503 {
		t.Errorf("no store: %d", rec.Code)
	}
}
