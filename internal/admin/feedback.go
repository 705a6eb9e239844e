package admin

import (
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/feedback"
)

// FeedbackService is a server that keeps votes on routed answers in its state store.
type FeedbackService interface {
	// Feedback is nil when the server has no state store.
	Feedback() *feedback.Store
}

// feedbackWriters may vote: whoever an application's backend runs as.
var feedbackWriters = []string{config.RoleOperator, config.RoleAdmin}

// FeedbackRequest is the body of POST /admin/feedback: a thumbs up or down on the answer of
// one decision (its x-stellwerk-decision-id), the model that answered (x-stellwerk-model),
// and optionally the prompt, without which `router train` cannot learn from the vote.
type FeedbackRequest struct {
	DecisionID string `json:"decision_id"`
	Model      string `json:"model"`
	Good       *bool  `json:"good"`
	Prompt     string `json:"prompt,omitempty"`
}

func registerFeedback(guarded func(string, []string, http.HandlerFunc), fs FeedbackService, log *zap.Logger) {
	guarded("POST /admin/feedback", feedbackWriters, func(w http.ResponseWriter, r *http.Request) {
		st := fs.Feedback()
		if st == nil {
			writeError(w, apierr.Unavailable("feedback_unavailable", "this server keeps no feedback: it has no state store"))
			return
		}
		var req FeedbackRequest
		if !decodeBody(w, r, &req, false) {
			return
		}
		if req.DecisionID == "" || req.Model == "" || req.Good == nil {
			writeError(w, apierr.Invalid("invalid_feedback", "", "decision_id, model and good are required"))
			return
		}
		// The prompt is kept as an audit record keeps content: secrets and
		// detected personal data replaced by placeholders (it was kept as
		// sent, e-mail addresses and IBANs of workspaces whose content the
		// log never keeps: the data-protection probe).
		e, err := st.Record(r.Context(), feedback.Entry{DecisionID: req.DecisionID, Model: req.Model, Good: *req.Good,
			Prompt: classify.Redact(req.Prompt, nil), By: by(r)})
		if errors.Is(err, feedback.ErrInvalid) {
			writeError(w, apierr.Invalid("invalid_feedback", "", "%s", err.Error()))
			return
		}
		if err != nil {
			log.Error("feedback not stored", zap.Error(err))
			writeError(w, apierr.Unavailable("feedback_unavailable", "the state store did not take the vote; try again"))
			return
		}
		log.Info("feedback stored", zap.String("decision_id", e.DecisionID), zap.String("model", e.Model), zap.Bool("good", e.Good),
			zap.Bool("with_prompt", e.Prompt != ""), zap.String("by", e.By))
		e.Prompt = "" // never echoed
		writeJSON(w, http.StatusCreated, e)
	})
}
