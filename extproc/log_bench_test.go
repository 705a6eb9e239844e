package extproc

import (
	"context"
	"io"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stellwerk/stellwerk/internal/catalog"
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
		p := &edge{filter: filter{state: st, log: log, id: "id"}, ctx: context.Background()}
		p.handle(hm)
		p.handle(bm)
		p.handle(rh)
	}
}

// BenchmarkRoutedFields encodes the routed line's plan and tags as the
// production JSON encoder does: a three-model failover plan and two policy
// tags, as zap.Strings + zap.Any (reflection) did and as logged now.
func BenchmarkRoutedFields(b *testing.B) {
	plan := []*catalog.Model{{ID: "claude-sonnet-4-5"}, {ID: "gpt-4.1"}, {ID: "mistral-large"}}
	tags := map[string]string{"team": "payments", "data_class": "restricted"}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	ent := zapcore.Entry{Message: "routed"}
	cases := map[string]func() []zap.Field{
		"reflect": func() []zap.Field {
			ids := make([]string, len(plan))
			for i, m := range plan {
				ids[i] = m.ID
			}
			return []zap.Field{zap.Strings("plan", ids), zap.Any("tags", tags)}
		},
		"marshalers": func() []zap.Field {
			return []zap.Field{zap.Array("plan", modelIDs(plan)), tagsField(tags)}
		},
	}
	for name, fields := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, err := enc.EncodeEntry(ent, fields())
				if err != nil {
					b.Fatal(err)
				}
				buf.Free()
			}
		})
	}
}
