package admin

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// FeedbackService is a server that keeps votes on routed answers in its state store.
type FeedbackService interface {
	// Feedback is nil when the server has no state store.
	Feedback() *feedback.Store
	// FeedbackDecisions finds the decision a vote names; nil when the server keeps no
	// audit log to check votes against.
	FeedbackDecisions() feedback.Decisions
}

// feedbackWriters may vote: whoever an application's backend runs as. Applications vote
// with their virtual key on POST /v1/feedback (docs/api.md).
var feedbackWriters = []string{config.RoleOperator, config.RoleAdmin}

// FeedbackRequest is the body of POST /admin/feedback: a thumbs up or down on the answer of
// one decision (its x-stellwerk-decision-id), the model that answered (x-stellwerk-model;
// omitted: the decision's), and optionally the prompt, without which `router train` cannot
// learn from the vote, a named metric with its value and a comment.
type FeedbackRequest = feedback.Ballot

func registerFeedback(guarded func(string, []string, http.HandlerFunc), fs FeedbackService, log *zap.Logger) {
	guarded("POST /admin/feedback", feedbackWriters, func(w http.ResponseWriter, r *http.Request) {
		st, ds := fs.Feedback(), fs.FeedbackDecisions()
		if st == nil {
			writeError(w, apierr.Unavailable("feedback_unavailable", "this server keeps no feedback: it has no state store"))
			return
		}
		var req FeedbackRequest
		if !decodeBody(w, r, &req, false) {
			return
		}
		if ds == nil {
			writeError(w, apierr.Unavailable("feedback_unavailable", "votes are checked against the decision's audit record, and this server keeps no audit log (audit.enabled: false)"))
			return
		}
		// Checked against the decision: a vote on an unknown decision, or naming another
		// model than the one that answered, was kept and trained that model on an answer
		// it never gave (the experimentation probe).
		e, err := feedback.Cast(r.Context(), st, ds, feedback.Voter{By: by(r)}, req)
		if ae := feedback.Refusal(err); ae != nil {
			writeError(w, ae)
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
	// The votes, each with its decision's route, version, arm and served model, for a mean
	// per arm without SQL (stellwerk feedback export reads the store the same way).
	guarded("GET /admin/feedback", feedbackReaders, func(w http.ResponseWriter, r *http.Request) {
		st := fs.Feedback()
		if st == nil {
			writeError(w, apierr.Unavailable("feedback_unavailable", "this server keeps no feedback: it has no state store"))
			return
		}
		q := r.URL.Query()
		var since time.Time
		if s := q.Get("since"); s != "" {
			// As stellwerk feedback export and /admin/audit read a time.
			t, err := spend.ParseTime(s, time.Now(), time.UTC)
			if err != nil {
				writeError(w, apierr.Invalid("invalid_since", "since", "since: %s", err))
				return
			}
			since = t
		}
		es, err := st.Since(r.Context(), since, q.Get("route"))
		if err != nil {
			log.Error("feedback not read", zap.Error(err))
			writeError(w, apierr.Unavailable("feedback_unavailable", "the state store did not answer; try again"))
			return
		}
		for i := range es {
			es[i].Prompt = "" // never echoed
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": es})
	})
}

// feedbackReaders may read votes: they carry no prompt, but comments of end users.
var feedbackReaders = []string{config.RoleOperator, config.RoleAdmin, config.RoleAuditor}
