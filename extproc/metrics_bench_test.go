package extproc

import (
	"context"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// BenchmarkObserve is what the metrics add to a finished request: the
// edge's observe when its stream ends (the shipped catalog and policy
// library, a served JSON answer with usage, personal data found, the
// policy's exclusions counted by rule), its label combinations seen
// before, as they are after a service's first requests.
func BenchmarkObserve(b *testing.B) {
	st := productionState(b)
	st.Metrics = telemetry.New()
	body := `{"model":"auto","max_tokens":300,"messages":[{"role":"user","content":"Mail jane@example.com: ` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	for _, m := range []*extprocv3.ProcessingRequest{
		headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-team"), bodyMsg(body),
		respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":412,"completion_tokens":180}}`, true),
	} {
		if r := p.handle(m); r.GetImmediateResponse() != nil {
			b.Fatalf("refused: %v", r)
		}
	}
	if !p.charged || p.result == nil || len(p.result.Class.PIICounts) == 0 {
		b.Fatal("the request did not finish as a served request with personal data")
	}
	b.Logf("%d exclusions", len(p.result.Policy.Exclude))
	p.observe()
	b.ReportAllocs()
	for b.Loop() {
		p.observe()
	}
}
