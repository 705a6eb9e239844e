package e2e

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestTracesToOTLP (issue 16): with OTEL_EXPORTER_OTLP_ENDPOINT set, a
// request through Envoy leaves one span at the OTLP/HTTP collector, a
// child of the client's traceparent, with the GenAI attributes; the
// provider gets the client's trace context.
func TestTracesToOTLP(t *testing.T) {
	var mu sync.Mutex
	var spans []*tracepb.Span
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
		mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}}})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello there"}]}`,
		map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if got := s.Providers["p"].Requests()[0].Header.Get("traceparent"); got != "00-"+traceID+"-"+parentID+"-01" {
		t.Errorf("the provider got traceparent %q", got)
	}
	var span *tracepb.Span
	for deadline := time.Now().Add(10 * time.Second); span == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		for _, sp := range spans {
			if hex.EncodeToString(sp.GetTraceId()) == traceID {
				span = sp
			}
		}
		mu.Unlock()
	}
	if span == nil {
		t.Fatal("no span of the request's trace reached the collector")
	}
	attrs := map[string]string{}
	for _, kv := range span.GetAttributes() {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			attrs[kv.GetKey()] = v.GetStringValue()
		case v.GetIntValue() != 0:
			attrs[kv.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		}
	}
	if hex.EncodeToString(span.GetParentSpanId()) != parentID || span.GetName() != "chat auto" || span.GetKind() != tracepb.Span_SPAN_KIND_SERVER ||
		attrs["gen_ai.response.model"] != "p-model" || attrs["gen_ai.provider.name"] != "p" || attrs["stellwerk.decision_id"] != resp.Header.Get("x-stellwerk-decision-id") ||
		attrs["gen_ai.usage.output_tokens"] == "" {
		t.Errorf("span %q kind %v parent %x, attributes %v", span.GetName(), span.GetKind(), span.GetParentSpanId(), attrs)
	}
}
