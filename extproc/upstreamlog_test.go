package extproc

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/health"
)

// logEntry is an entry of the client-facing router's upstream log, as
// xds.firstAttemptLog has Envoy send it.
func logEntry(plan string, attempt string, status uint32, flags *accesslogdatav3.ResponseFlags, respHeaders map[string]string) *accesslogdatav3.HTTPAccessLogEntry {
	return &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{StartTime: timestamppb.New(time.Now().Add(-40 * time.Millisecond)),
			TimeToFirstUpstreamRxByte: durationpb.New(30 * time.Millisecond), ResponseFlags: flags},
		Request: &accesslogdatav3.HTTPRequestProperties{RequestHeaders: map[string]string{
			header.Plan: plan, header.Rewritten: "/v1/chat/completions", "x-envoy-attempt-count": attempt}},
		Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status), ResponseHeaders: respHeaders},
	}
}

// logStream is Envoy's end of the access log stream.
type logStream struct {
	grpc.ServerStream
	msgs   []*accesslogv3.StreamAccessLogsMessage
	closed bool
}

func (l *logStream) Recv() (*accesslogv3.StreamAccessLogsMessage, error) {
	if len(l.msgs) == 0 {
		return nil, io.EOF
	}
	m := l.msgs[0]
	l.msgs = l.msgs[1:]
	return m, nil
}

func (l *logStream) SendAndClose(*accesslogv3.StreamAccessLogsResponse) error {
	l.closed = true
	return nil
}

func logged(es ...*accesslogdatav3.HTTPAccessLogEntry) *logStream {
	return &logStream{msgs: []*accesslogv3.StreamAccessLogsMessage{{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: es}}}}}
}

// wantRateLimitedA1 checks that a1's credential cools for the 429's
// Retry-After (120 s), and nothing else.
func wantRateLimitedA1(t *testing.T, st *State) {
	t.Helper()
	snap := st.Router.Health.Snapshot()
	if len(snap) != 1 || snap[0].Provider != "a" || snap[0].Model != "a1" || snap[0].Scope != "rate_limit" ||
		time.Until(snap[0].CoolingUntil) < 100*time.Second {
		t.Fatalf("health after the 429: %+v", snap)
	}
}

// servedByB ends a request of failoverState's plan with b's JSON answer
// (the second attempt, as its egress filter says) and returns the body the
// client gets.
func servedByB(e *procStream) []byte {
	e.do(respHeaders(":status", "200", "content-type", "application/json", "x-envoy-attempt-count", "2", header.Served, "1"))
	return e.do(respBody(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, true)).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
}

// TestFirstAttemptFailureFromUpstreamLog: a first attempt the edge rewrote
// fails with a 429; Envoy's upstream log reports it, stellwerk cools the
// model's rate limit for its Retry-After and the routing object lists the
// attempt with its status. Entries that are not such a failure change
// nothing.
func TestFirstAttemptFailureFromUpstreamLog(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Hour})
	s := New(st, zap.NewNop())
	e := openStream(s, "")
	defer e.end()
	e.do(headersMsg("POST", "/v1/chat/completions", false))
	hs := setHeaders(e.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`)).GetRequestBody().GetResponse().GetHeaderMutation())
	plan := hs[header.Plan]
	if hs[header.Rewritten] == "" || plan == "" {
		t.Fatalf("edge headers %v", hs)
	}

	// Not for the log: a later attempt (its egress filter records it), an
	// answer the edge records, an attempt the edge did not rewrite.
	ignored := []*accesslogdatav3.HTTPAccessLogEntry{
		logEntry(plan, "2", 503, nil, nil),
		logEntry(plan, "1", 200, nil, nil),
		logEntry(plan, "1", 400, nil, nil),
		logEntry("garbage", "1", 503, nil, nil),
	}
	unrewritten := logEntry(plan, "1", 503, nil, nil)
	delete(unrewritten.Request.RequestHeaders, header.Rewritten)
	ignored = append(ignored, unrewritten)
	for _, en := range ignored {
		s.firstAttemptFailed(en, time.Now())
	}
	if snap := st.Router.Health.Snapshot(); len(snap) != 0 {
		t.Fatalf("entries outside the log's filter changed health: %+v", snap)
	}

	ls := logged(logEntry(plan, "1", 429, nil, map[string]string{"retry-after": "120"}))
	if err := s.UpstreamLog().StreamAccessLogs(ls); err != nil || !ls.closed {
		t.Fatalf("stream: %v (closed %v)", err, ls.closed)
	}
	wantRateLimitedA1(t, st)

	// The answer came from b, the plan's second model (its egress filter
	// says so); the routing object has the first attempt from the log.
	body := servedByB(e)
	a0 := gjson.GetBytes(body, "routing.attempts.0")
	if a0.Get("status").Int() != 429 || a0.Get("outcome").Str != "failed" || a0.Get("reason").Str != "rate limited (429)" || a0.Get("latency_ms").Float() != 30 {
		t.Errorf("first attempt %s", a0.Raw)
	}
	if m := gjson.GetBytes(body, "routing.attempts.1.model").Str; m != "b1" {
		t.Errorf("second attempt %s", body)
	}
}

// TestFirstAttemptTimeoutFromUpstreamLog: an attempt that got no answer
// counts against its provider when Envoy says the attempt timed out, and
// not when the client went away first.
func TestFirstAttemptTimeoutFromUpstreamLog(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Hour})
	s := New(st, zap.NewNop())
	a1, _ := st.Router.Catalog.Lookup("a1")
	b1, _ := st.Router.Catalog.Lookup("b1")
	plan := encodePlan("dec-1", []*catalog.Model{a1, b1})
	s.firstAttemptFailed(logEntry(plan, "1", 0, &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}, nil), time.Now())
	if snap := st.Router.Health.Snapshot(); len(snap) != 0 {
		t.Fatalf("a cancelled attempt changed health: %+v", snap)
	}
	s.firstAttemptFailed(logEntry(plan, "1", 0, &accesslogdatav3.ResponseFlags{UpstreamRequestTimeout: true}, nil), time.Now())
	snap := st.Router.Health.Snapshot()
	if len(snap) != 1 || snap[0].Provider != "a" || snap[0].Scope != "provider" || snap[0].CoolingUntil.IsZero() {
		t.Fatalf("health after a timed-out attempt: %+v", snap)
	}
	if got := responseFlags(&accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true, UpstreamRetryLimitExceeded: true}); got != "UF,URX" {
		t.Errorf("flags %q", got)
	}
}

// directLogEntry is the upstream log's entry of a first attempt that went
// straight to its provider through a first-attempt cluster: no plan in the
// request, the model in the answer when there is one.
func directLogEntry(requestID string, status uint32, respHeaders map[string]string) *accesslogdatav3.HTTPAccessLogEntry {
	return &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{StartTime: timestamppb.New(time.Now().Add(-40 * time.Millisecond)),
			TimeToFirstUpstreamRxByte: durationpb.New(30 * time.Millisecond), UpstreamCluster: "provider_a"},
		Request:  &accesslogdatav3.HTTPRequestProperties{RequestId: requestID, RequestHeaders: map[string]string{"x-envoy-attempt-count": "1"}},
		Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(status), ResponseHeaders: respHeaders},
	}
}

// TestFirstAttemptDirect: a JSON request whose first attempt the edge
// rewrote goes to its model's first-attempt cluster; the plan, the
// client's path and each retry's provider travel in dynamic metadata, not
// in headers the first provider would get. That attempt's 429 comes back
// through the upstream log, named by the model in the answer and the
// request id, and lands in the provider's health and the routing object.
func TestFirstAttemptDirect(t *testing.T) {
	st := failoverState(t)
	st.Failover.MaxAttempts = 3
	st.Failover.First = map[string]string{"a": "stellwerk_first_a", "b": "stellwerk_first_b"}
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Hour})
	s := New(st, zap.NewNop())
	e := openStream(s, "")
	e.do(headersMsg("POST", "/v1/chat/completions", false, "x-request-id", "rid-1"))
	resp := e.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	hs := setHeaders(resp.GetRequestBody().GetResponse().GetHeaderMutation())
	if hs[header.Cluster] != "stellwerk_first_a" || hs[header.MaxRetries] != "1" || hs["authorization"] != "" {
		t.Fatalf("edge headers %v", hs)
	}
	for _, h := range []string{header.Plan, header.Rewritten, header.Workspace, header.FirstByte} {
		if _, ok := hs[h]; ok {
			t.Errorf("the first provider would get %s: %v", h, hs)
		}
	}
	md := resp.GetDynamicMetadata().GetFields()
	sw := md[header.MetadataNamespace].GetStructValue().GetFields()
	id, models, ok := decodePlan(sw[header.PlanKey].GetStringValue())
	if !ok || len(models) != 2 || models[0] != "a1" || models[1] != "b1" || sw[header.RewrittenKey].GetStringValue() != "/v1/chat/completions" ||
		sw[header.ModelKey].GetStringValue() != "a1" {
		t.Errorf("stellwerk metadata %v", sw)
	}
	lb := md[header.LBNamespace].GetStructValue().GetFields()
	if len(lb) != 2 || lb[header.AttemptKey(2)].GetStringValue() != "b" || lb[header.AttemptKey(3)].GetStringValue() != header.NoAttempt {
		t.Errorf("subset criteria %v", lb)
	}

	// Not this log's: another request's entry without an answer names its
	// provider only (its failure is the provider's); an answer that is not
	// a failure changes nothing.
	s.firstAttemptFailed(directLogEntry("rid-1", 200, map[string]string{header.FirstModel: "a1"}), time.Now())
	if snap := st.Router.Health.Snapshot(); len(snap) != 0 {
		t.Fatalf("a 200 changed health: %+v", snap)
	}
	s.firstAttemptFailed(directLogEntry("rid-1", 429, map[string]string{header.FirstModel: "a1", "retry-after": "120"}), time.Now())
	wantRateLimitedA1(t, st)
	body := servedByB(e)
	if a0 := gjson.GetBytes(body, "routing.attempts.0"); a0.Get("status").Int() != 429 || a0.Get("model").Str != "a1" || a0.Get("reason").Str != "rate limited (429)" {
		t.Errorf("first attempt %s (decision %s)", a0.Raw, id)
	}
	if _, ok := s.attempts.directRequest("rid-1"); !ok {
		t.Error("the request is not noted while its stream is open")
	}
	e.end()
	if _, ok := s.attempts.directRequest("rid-1"); ok {
		t.Error("the request is still noted after its stream")
	}
}

// TestFirstAttemptDirectStream: a stream's first attempt goes to its
// model's first-attempt cluster only when that model has no first-byte
// timeout; with one, the stream keeps the failover cluster, whose egress
// listener's route applies it (header.FirstByte).
func TestFirstAttemptDirectStream(t *testing.T) {
	for _, fb := range []time.Duration{0, 10 * time.Second} {
		st := failoverState(t)
		st.Failover.First = map[string]string{"a": "stellwerk_first_a", "b": "stellwerk_first_b"}
		for _, m := range st.Router.Catalog.Models() {
			m.FirstByteTimeout = fb
		}
		e := openStream(New(st, zap.NewNop()), "")
		e.do(headersMsg("POST", "/v1/chat/completions", false, "x-request-id", "rid-s"))
		resp := e.do(bodyMsg(`{"model":"auto","stream":true,"messages":[{"role":"user","content":"hello"}]}`))
		hs := setHeaders(resp.GetRequestBody().GetResponse().GetHeaderMutation())
		sw := resp.GetDynamicMetadata().GetFields()[header.MetadataNamespace].GetStructValue().GetFields()
		if fb == 0 {
			if hs[header.Cluster] != "stellwerk_first_a" || hs[header.MaxRetries] != "1" || hs[header.FirstByte] != "" ||
				hs[header.Plan] != "" || sw[header.PlanKey].GetStringValue() == "" {
				t.Errorf("no first-byte timeout: edge headers %v, metadata %v", hs, sw)
			}
		} else if hs[header.Cluster] != header.FailoverCluster || hs[header.FirstByte] != "10000" || hs[header.Plan] == "" {
			t.Errorf("first-byte timeout %s: edge headers %v", fb, hs)
		}
		e.end()
	}
}

// TestFirstAttemptDirectElsewhere: the upstream log's entry of a first
// attempt whose edge stream another replica holds still reaches the
// provider's health: by the model in the answer, or, with no answer, as
// the provider's failure.
func TestFirstAttemptDirectElsewhere(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Hour})
	s := New(st, zap.NewNop())
	// No answer and no flag: the client went away first, not a failure.
	s.firstAttemptFailed(directLogEntry("elsewhere", 0, nil), time.Now())
	if snap := st.Router.Health.Snapshot(); len(snap) != 0 {
		t.Fatalf("a cancelled attempt changed health: %+v", snap)
	}
	en := directLogEntry("elsewhere", 0, nil)
	en.CommonProperties.ResponseFlags = &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true}
	s.firstAttemptFailed(en, time.Now())
	snap := st.Router.Health.Snapshot()
	if len(snap) != 1 || snap[0].Provider != "a" || snap[0].Scope == "rate_limit" || !strings.Contains(snap[0].Reason, "UF") {
		t.Fatalf("health after a connection failure: %+v", snap)
	}
	// Another replica's 429: the model in the answer scopes it.
	s.firstAttemptFailed(directLogEntry("elsewhere", 429, map[string]string{header.FirstModel: "a1"}), time.Now())
	if snap := st.Router.Health.Snapshot(); len(snap) != 2 || snap[1].Model != "a1" || snap[1].Scope != "rate_limit" {
		t.Fatalf("health after another replica's 429: %+v", snap)
	}
}

// TestCircuitBreakerOverflowCoolsNothing: an attempt Envoy's circuit
// breaker refused (UO) is this deployment's limit, not the provider's
// failure: it cools nothing, however many there are, and its reason says
// what it was; a provider's own 503 still counts.
func TestCircuitBreakerOverflowCoolsNothing(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 2, Cooldown: time.Minute, MaxCooldown: time.Hour})
	m, _ := st.Router.Catalog.Lookup("a1")
	f := &filter{state: st, log: zap.NewNop(), id: "d1", seen: &attemptLog{}}
	for range 5 {
		recordAttempt(f, 0, m, "", attemptResult{status: 503, flags: "UO"})
	}
	if snap := st.Router.Health.Snapshot(); len(snap) != 0 {
		t.Fatalf("a full circuit breaker cooled the provider: %+v", snap)
	}
	if r := failureReason(503, "UO"); !strings.Contains(r, "circuit breaker") {
		t.Errorf("reason %q", r)
	}
	for range 2 {
		recordAttempt(f, 0, m, "", attemptResult{status: 503})
	}
	if snap := st.Router.Health.Snapshot(); len(snap) == 0 {
		t.Fatal("the provider's own 503s cooled nothing")
	}
}

// TestProviderRetryAfterCapped: a provider's Retry-After reaches the client
// as stellwerk's cooldown reads it — whole seconds, at most max_cooldown —
// and one that does not parse not at all (a helper's finding: "abc", "-5"
// and 999999 went to the client as sent).
func TestProviderRetryAfterCapped(t *testing.T) {
	for sent, want := range map[string]string{"999999": "3600", "abc": "", "-5": "", "120": "120"} {
		st := failoverState(t)
		st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Hour})
		s := New(st, zap.NewNop())
		e := openStream(s, "")
		e.do(headersMsg("POST", "/v1/chat/completions", false))
		e.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
		m := e.do(respHeaders(":status", "429", "content-type", "application/json", "x-envoy-attempt-count", "2", "retry-after", sent)).
			GetResponseHeaders().GetResponse().GetHeaderMutation()
		got, removed := setHeaders(m)["retry-after"], slices.Contains(m.GetRemoveHeaders(), "retry-after")
		if got != want || (want == "") != removed {
			t.Errorf("Retry-After %q: set %q, removed %v; want %q", sent, got, removed, want)
		}
		e.end()
	}
}
