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
}

func (f *feedbackStatus) Feedback() *feedback.Store { return f.fs }

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
	h := Handler(&feedbackStatus{fakeStatus: fakeStatus{tokens: testTokens()}, fs: fs}, zap.NewNop())
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
	got, err := fs.List(context.Background())
	if err != nil || len(got) != 1 || got[0].Good || got[0].Prompt != "Prove the lemma for [EMAIL], IBAN [IBAN]" || got[0].Model != "gpt-4o-mini" {
		t.Errorf("stored: %+v, %v", got, err)
	}
	// Without a state store: 503.
	h = Handler(&feedbackStatus{fakeStatus: fakeStatus{tokens: testTokens()}}, zap.NewNop())
	if rec := do(t, h, "POST", "/admin/feedback", config.RoleOperator, vote); rec.Code != 503 {
		t.Errorf("no store: %d", rec.Code)
	}
}
