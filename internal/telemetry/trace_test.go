package telemetry

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTracingOffWithoutEndpoint(t *testing.T) {
	tr, err := StartTracing(t.Context(), func(string) string { return "" })
	if tr != nil || err != nil {
		t.Fatalf("tracing on without an endpoint: %v %v", tr, err)
	}
	tr.Record(&Request{}, &Decision{Arrived: time.Now()}) // a nil Tracing records nothing
}

// BenchmarkRecordSpan is what a span costs a request with traces on: built
// and handed to the batch processor (the export is off the request path).
func BenchmarkRecordSpan(b *testing.B) {
	tr := NewTracing(sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter()), resource.Empty())
	defer tr.Shutdown(b.Context())
	r := Request{Workspace: "support", RequestModel: "auto", Model: "gpt-mini", Provider: "openai", Status: 200,
		Answered: true, Metered: true, InputTokens: 120, OutputTokens: 30, CostEUR: 0.002, BaselineEUR: 0.01,
		Duration: 300 * time.Millisecond, Overhead: Overhead{Total: 250 * time.Microsecond}}
	d := Decision{ID: "0123456789abcdef0123456789abcdef", Reason: "cheapest for chat", PolicyVersion: "8a7ffb231f5c", Attempts: 1,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Arrived: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		tr.Record(&r, &d)
	}
}
