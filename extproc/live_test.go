package extproc

import (
	"context"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/live"
)

// TestLiveDecision: a watcher gets one decision per finished chat request,
// with the classification, the candidates weighed, the chosen model, the
// cost and the status, and without the request's body; a request refused
// at its headers (a bad key) reached no decision and sends none.
func TestLiveDecision(t *testing.T) {
	st := productionState(t)
	st.Spend = &rowsRecorder{}
	st.Live = &live.Hub{}
	sub := st.Live.Subscribe()
	defer sub.Close()
	body := `{"model":"auto","messages":[{"role":"user","content":"Mail jane.doe@example.com the contract draft."}]}`
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	for _, m := range []*extprocv3.ProcessingRequest{
		headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-team"), bodyMsg(body),
		respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":10}}`, true),
	} {
		if r := p.handle(m); r.GetImmediateResponse() != nil {
			t.Fatalf("refused: %v", r)
		}
	}
	p.finish()
	p.finish() // the stream's end is reported once
	if len(sub.C) != 1 {
		t.Fatalf("%d decisions for one request", len(sub.C))
	}
	d := <-sub.C
	if d.ID != p.id || d.Workspace != "legal" || d.Chosen == "" || d.Status != 200 || d.Cost == nil || len(d.Candidates) < 50 {
		t.Fatalf("decision: %+v", d.Record)
	}
	if c := d.Classification; c == nil || c.PII["email"] != 1 || c.Task == "" {
		t.Fatalf("classification: %+v", d.Classification)
	}
	excluded := 0
	for _, c := range d.Candidates {
		if c.Verdict != "chosen" && c.Verdict != "eligible" {
			if c.Reason == "" {
				t.Errorf("%s is %s without a reason", c.Model, c.Verdict)
			}
			excluded++
		}
	}
	if excluded == 0 {
		t.Error("no candidate was excluded for confidential data on the shipped catalog")
	}
	if d.Request == nil || d.Request.Body != nil || d.Replay != nil {
		t.Fatalf("the view carries the body or the replay inputs: %+v", d.Request)
	}

	bad := &edge{filter: filter{state: st, log: zap.NewNop(), id: "ffffffffffffffffffffffffffffffff"}, ctx: context.Background()}
	r := bad.handle(headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-nobody"))
	if ir := r.GetImmediateResponse(); ir == nil || !strings.Contains(string(ir.GetBody()), "invalid_api_key") {
		t.Fatalf("a bad key was not refused: %v", r)
	}
	bad.finish()
	if len(sub.C) != 0 {
		t.Fatal("a request refused at its headers sent a decision")
	}
}
