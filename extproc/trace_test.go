package extproc

import (
	"context"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/telemetry"
)

// TestSpanPerRequest: with traces on, a request leaves one span, a child
// of the client's W3C trace context, with the GenAI attributes and the
// decision, and nothing of the key or the prompt; a refusal is a span too.
func TestSpanPerRequest(t *testing.T) {
	st := pricedProvider(t, "sk-p")
	rec := tracetest.NewSpanRecorder()
	st.Traces = telemetry.NewTracing(rec, resource.Empty())
	run := func(msgs ...*extprocv3.ProcessingRequest) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: NewDecisionID()}, ctx: context.Background()}
		for _, m := range msgs {
			p.handle(m)
		}
		p.finish()
	}
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	run(headersMsg("POST", "/v1/chat/completions", false, "traceparent", parent),
		bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"mail jane@example.com"}]}`),
		respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500}}`, true))
	run(headersMsg("POST", "/v1/chat/completions", false),
		bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"my key is AKIAIOSFODNN7EXAMPLE"}]}`))

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	served, denied := spans[0], spans[1]
	if served.Name() != "chat auto" || served.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		served.Parent().SpanID().String() != "00f067aa0ba902b7" || !served.Parent().IsRemote() {
		t.Errorf("span %q, parent %v", served.Name(), served.Parent())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range served.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	for k, want := range map[attribute.Key]string{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "auto", "gen_ai.response.model": "m", "gen_ai.provider.name": "p",
		"gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": "500", "http.response.status_code": "200",
		"stellwerk.workspace": "default", "stellwerk.cost_eur": "0.007", "stellwerk.attempts": "1",
	} {
		if got := attrs[k].String(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if attrs["stellwerk.decision_id"].AsString() == "" || attrs["stellwerk.policy_version"].AsString() == "" || attrs["stellwerk.reason"].AsString() == "" {
		t.Errorf("no decision in the span: %v", served.Attributes())
	}
	if !served.EndTime().After(served.StartTime()) || served.Status().Code == codes.Error {
		t.Errorf("start %v end %v status %v", served.StartTime(), served.EndTime(), served.Status())
	}
	if denied.Parent().IsValid() {
		t.Errorf("a request without trace context starts a trace: parent %v", denied.Parent())
	}
	var code string
	for _, kv := range denied.Attributes() {
		if kv.Key == "error.type" {
			code = kv.Value.AsString()
		}
		if strings.Contains(kv.Value.String(), "AKIA") || strings.Contains(kv.Value.String(), "jane@") {
			t.Errorf("the span holds the prompt: %s=%s", kv.Key, kv.Value.String())
		}
	}
	if code != "policy_denied" {
		t.Errorf("denied span: error.type %q", code)
	}
}
