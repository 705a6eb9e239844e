package extproc

import (
	"context"
	"io"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkChatRequestLogged is BenchmarkChatRequest with the production
// JSON logger at info level, so the per-request "routed" line is encoded
// (to io.Discard): what the log line costs on top of the routing itself.
func BenchmarkChatRequestLogged(b *testing.B) {
	st := testState(b)
	body := `{"model":"small","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`
	hm, bm := headersMsg("POST", "/v1/chat/completions", false, "content-type", "application/json"), bodyMsg(body)
	rh := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(io.Discard), zap.InfoLevel))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p := &processor{state: st, log: log, id: "id", ctx: context.Background()}
		p.handle(hm)
		p.handle(bm)
		p.handle(rh)
	}
}
