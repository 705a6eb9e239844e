package extproc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stellwerk/stellwerk/internal/policy"
)

// TestPolicyLogLevelLowersBothLines: a policy that lowers a request's
// decision line to debug (log_levels, docs/observability.md) lowers its
// stream's "stream finished" line too; it was written at info whatever the
// policy said.
func TestPolicyLogLevelLowersBothLines(t *testing.T) {
	dir := t.TempDir()
	rule := "package stellwerk\n\nlog_levels contains \"debug\" if input.request.metadata.quiet == \"1\"\n"
	if err := os.WriteFile(filepath.Join(dir, "quiet.rego"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	st := testState(t)
	pm, err := policy.NewManager(context.Background(), policy.Source{Library: true, Dir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	st.Router.Policy = pm
	for quiet, want := range map[string]int{"1": 0, "0": 2} {
		core, logs := observer.New(zapcore.InfoLevel)
		p := &edge{filter: filter{state: st, log: zap.New(core), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
		p.handle(headersMsg("POST", "/v1/chat/completions", false))
		if r := p.handle(bodyMsg(`{"model":"auto","stream":true,"metadata":{"quiet":"` + quiet + `"},"messages":[{"role":"user","content":"hi"}]}`)); r.GetImmediateResponse() != nil {
			t.Fatalf("refused: %s", r.GetImmediateResponse().Body)
		}
		p.handle(respHeadersMsg("200", "text/event-stream"))
		p.handle(respBodyMsg("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", true))
		p.finish()
		if n := logs.FilterMessage("routed").Len() + logs.FilterMessage("stream finished").Len(); n != want {
			t.Errorf("quiet %s: %d routed and stream finished lines at info, want %d: %v", quiet, n, want, logs.All())
		}
	}
}

// TestMisroutedLoggedOncePerInterval: requests through another route than
// stellwerk's (clusters mode) are each refused 500 gateway_misconfigured,
// and logged once an interval with their count: a client chose how many
// error lines it wrote (the red team of today's fixes).
func TestMisroutedLoggedOncePerInterval(t *testing.T) {
	st := testState(t)
	st.CheckRoute = true
	core, logs := observer.New(zapcore.InfoLevel)
	for range 50 {
		p := &edge{filter: filter{state: st, log: zap.New(core), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
		ir := p.handle(headersMsg("POST", "/v1/chat/completions", false)).GetImmediateResponse()
		if ir == nil || ir.GetStatus().GetCode() != 500 || !strings.Contains(string(ir.Body), "gateway_misconfigured") {
			t.Fatalf("a request through another route: %v", ir)
		}
	}
	if n := logs.FilterMessageSnippet("another route").Len(); n != 1 {
		t.Errorf("%d lines for 50 misrouted requests, want 1", n)
	}
}
