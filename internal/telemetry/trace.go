package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/stellwerk/stellwerk/internal/version"
)

// Tracing sends one OpenTelemetry span per request, with the GenAI
// attributes and the decision, to an OTLP collector. It is off unless
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set;
// the SDK reads the other standard OTEL_* variables (headers, sampler,
// service name, batch delay). A nil *Tracing records nothing.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// StartTracing starts the OTLP/HTTP exporter when the environment names an
// endpoint; nil, nil when it does not.
func StartTracing(ctx context.Context, getenv func(string) string) (*Tracing, error) {
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "stellwerk"), attribute.String("service.version", version.String())),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, err
	}
	return NewTracing(sdktrace.NewBatchSpanProcessor(exp), res), nil
}

// NewTracing records spans through sp (tests pass a synchronous one).
func NewTracing(sp sdktrace.SpanProcessor, res *resource.Resource) *Tracing {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithResource(res))
	return &Tracing{tp: tp, tracer: tp.Tracer("github.com/stellwerk/stellwerk")}
}

// Shutdown sends the spans still buffered.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Decision is what a span says of the decision beyond the metrics'
// Request. None of it is a key, a user or prompt text.
type Decision struct {
	ID            string // the decision id the client got
	Reason        string
	PolicyVersion string
	Attempts      int
	Stream        bool
	// TraceParent and TraceState are the client's W3C trace context: the
	// span is their child. Envoy passes the same headers to the provider.
	TraceParent, TraceState string
	Arrived                 time.Time // the span's start; its end is Arrived + Request.Duration
}

// Record sends the span of one finished request.
func (t *Tracing) Record(r *Request, d *Decision) {
	if t == nil || d.Arrived.IsZero() {
		return
	}
	ctx := context.Background()
	if d.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": d.TraceParent, "tracestate": d.TraceState})
	}
	op := r.operation()
	name := op
	if r.RequestModel != "" {
		name = op + " " + r.RequestModel
	}
	attrs := make([]attribute.KeyValue, 0, 20) // every attribute below: one allocation
	attrs = append(attrs, attribute.String("gen_ai.operation.name", op), attribute.String("stellwerk.decision_id", d.ID),
		attribute.String("stellwerk.workspace", r.Workspace))
	if r.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", r.Status))
	}
	if r.RequestModel != "" {
		attrs = append(attrs, attribute.String("gen_ai.request.model", r.RequestModel))
	}
	if r.Model != "" {
		attrs = append(attrs, attribute.String("gen_ai.provider.name", r.Provider), attribute.String("gen_ai.response.model", r.Model),
			attribute.Int("stellwerk.attempts", d.Attempts), attribute.Bool("stellwerk.stream", d.Stream))
	}
	if d.Reason != "" {
		attrs = append(attrs, attribute.String("stellwerk.reason", d.Reason))
	}
	if d.PolicyVersion != "" {
		attrs = append(attrs, attribute.String("stellwerk.policy_version", d.PolicyVersion))
	}
	if r.Metered {
		attrs = append(attrs, attribute.Int("gen_ai.usage.input_tokens", r.InputTokens), attribute.Int("gen_ai.usage.output_tokens", r.OutputTokens),
			attribute.Float64("stellwerk.cost_eur", r.CostEUR), attribute.Float64("stellwerk.saving_eur", r.BaselineEUR-r.CostEUR))
	}
	if r.Overhead.Total > 0 {
		attrs = append(attrs, attribute.Float64("stellwerk.router_overhead_ms", float64(r.Overhead.Total)/float64(time.Millisecond)))
	}
	_, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(d.Arrived), trace.WithAttributes(attrs...))
	if r.TTFT > 0 {
		span.AddEvent("gen_ai.first_chunk", trace.WithTimestamp(d.Arrived.Add(r.TTFT)))
	}
	switch {
	case r.ErrorCode != "":
		span.SetAttributes(attribute.String("error.type", r.ErrorCode))
		if r.Status == 0 || r.Status >= 500 {
			span.SetStatus(codes.Error, r.ErrorCode)
		}
	case r.Status >= 500:
		span.SetAttributes(attribute.String("error.type", statusClass(r.Status)))
		span.SetStatus(codes.Error, "provider "+statusClass(r.Status))
	}
	span.End(trace.WithTimestamp(d.Arrived.Add(r.Duration)))
}
