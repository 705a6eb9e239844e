package extproc

import (
	"context"
	"encoding/json"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/feedback"
	"github.com/stellwerk/stellwerk/internal/request"
)

// PathFeedback is where an application votes on one of its answers with its virtual key.
const PathFeedback = "/v1/feedback"

// Feedback keeps the votes applications cast on POST /v1/feedback, each checked against
// its decision.
type Feedback struct {
	Store     *feedback.Store
	Decisions feedback.Decisions
}

// feedbackTimeout bounds the store's lookup and write for one vote.
const feedbackTimeout = 5 * time.Second

// vote answers POST /v1/feedback itself: a thumbs up or down (and optionally a named metric
// and a comment) on a decision made for the caller's key or its workspace. A decision of
// another workspace is answered as an unknown one, so that ids do not leak. Nothing goes to
// a provider and no decision is made, so none is recorded.
func (p *edge) vote(body []byte) *extprocv3.ProcessingResponse {
	fb := p.state.Feedback
	if fb == nil {
		return p.immediate(apierr.Unavailable("feedback_unavailable",
			"this gateway keeps no feedback: votes are checked against the audit log, which it does not keep"))
	}
	if err := request.CheckBody(body, "feedback"); err != nil {
		return p.immediate(apierr.As(err))
	}
	b, err := feedback.DecodeBallot(body)
	if err != nil {
		return p.immediate(feedback.Refusal(err))
	}
	ctx, cancel := context.WithTimeout(p.ctx, feedbackTimeout)
	defer cancel()
	by := "key:" + p.principal.KeyID
	if p.principal.KeyID == "" {
		by = "anonymous" // open auth: no key to name
	}
	e, err := feedback.Cast(ctx, fb.Store, fb.Decisions,
		feedback.Voter{By: by, Scoped: true, KeyID: p.principal.KeyID, Workspace: p.principal.Workspace}, b)
	if ae := feedback.Refusal(err); ae != nil {
		return p.immediate(ae)
	}
	if err != nil {
		p.log.Error("feedback not stored", zap.String("decision_id", apierr.Truncate(b.DecisionID, 128)), zap.Error(err))
		return p.immediate(apierr.Unavailable("feedback_unavailable", "the state store did not take the vote; try again"))
	}
	e.Prompt = "" // never echoed
	out, err := json.Marshal(e)
	if err != nil {
		return p.immediate(apierr.Internal())
	}
	return immediateJSON(201, out, p.id)
}
