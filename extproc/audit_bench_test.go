package extproc

import (
	"context"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
)

// BenchmarkAuditRecord is what the edge adds to a request for its audit
// record: building it from the finished edge (the shipped 71-model
// catalog, so 71 candidates) when the stream ends. The hand-over
// (Log.Record) is audit's BenchmarkRecord; the writer fingerprints the
// body, copies the candidate lines, formats their reasons and encodes the
// record off the request path.
func BenchmarkAuditRecord(b *testing.B) {
	st := productionState(b)
	st.Spend = &rowsRecorder{}
	body := `{"model":"auto","max_tokens":300,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
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
	if !p.bodyPhase || !p.charged || p.result == nil {
		b.Fatal("the request did not finish")
	}
	if n := p.result.Selection.Len(); n < 50 {
		b.Fatalf("%d candidates", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := p.auditRecord()
		if r.Chosen == "" {
			b.Fatal("no decision in the record")
		}
	}
}
