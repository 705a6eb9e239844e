package extproc

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/health"
)

// failoverState: two providers, so every plan is "a1" then "b1".
func failoverState(t testing.TB) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: a1}
providers:
  - {name: a, base_url: "https://a.example.com/v1", residency: us, credential: {env: A_KEY}}
  - {name: b, base_url: "https://b.example.com/v1", residency: us, credential: {env: B_KEY}}
models:
  - {id: a1, provider: a, context_window: 8000, price: {input_per_mtok: 1, output_per_mtok: 1}}
  - {id: b1, provider: b, context_window: 8000, price: {input_per_mtok: 2, output_per_mtok: 2}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(k string) string { return "sk-" + k })
	st.Failover = &Failover{MaxAttempts: 2, AttemptTimeout: c.Failover.AttemptTimeout}
	return st
}

// procStream is one ext_proc stream as Envoy drives it: messages in,
// answers out, and the end (Envoy closes it, or the request is cancelled).
type procStream struct {
	grpc.ServerStream
	ctx    context.Context
	cancel context.CancelFunc
	in     chan *extprocv3.ProcessingRequest
	out    chan *extprocv3.ProcessingResponse
	done   chan struct{}
}

func (f *procStream) Context() context.Context { return f.ctx }

func (f *procStream) Recv() (*extprocv3.ProcessingRequest, error) {
	select {
	case r, ok := <-f.in:
		if !ok {
			return nil, io.EOF
		}
		return r, nil
	case <-f.ctx.Done():
		return nil, status.Error(codes.Canceled, "context canceled")
	}
}

func (f *procStream) Send(r *extprocv3.ProcessingResponse) error {
	select {
	case f.out <- r:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// openStream starts Server.Process for one stream: the edge filter's when
// egress is "", else the egress filter of that provider.
func openStream(s *Server, egress string) *procStream {
	ctx := context.Background()
	if egress != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(header.Egress, egress))
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &procStream{ctx: ctx, cancel: cancel, in: make(chan *extprocv3.ProcessingRequest),
		out: make(chan *extprocv3.ProcessingResponse), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_ = s.Process(f)
	}()
	return f
}

func (f *procStream) do(r *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	f.in <- r
	return <-f.out
}

// end: the HTTP stream is over and Envoy closes the ext_proc stream.
func (f *procStream) end() { close(f.in); <-f.done; f.cancel() }

// abort: the client went away (or Envoy reset the stream) mid-request.
func (f *procStream) abort() { f.cancel(); <-f.done }

func respHeaders(kv ...string) *extprocv3.ProcessingRequest {
	var hs []*corev3.HeaderValue
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: hs}}}}
}

func respBody(b string, end bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: []byte(b), EndOfStream: end}}}
}

const chatBody = `{"model":"auto","stream":true,"messages":[{"role":"user","content":"hello"}]}`

// edgeRequest runs the edge stream through its request phases and returns
// the plan header it sent on. (Helpers report with Errorf: some run on
// goroutines of their own.)
func edgeRequest(t testing.TB, e *procStream) string {
	t.Helper()
	if r := e.do(headersMsg("POST", "/v1/chat/completions", false)); r.GetRequestHeaders() == nil {
		t.Errorf("edge headers: %v", r)
	}
	r := e.do(bodyMsg(chatBody))
	plan := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation())[header.Plan]
	if plan == "" {
		t.Errorf("edge body: no plan: %v", r)
	}
	return plan
}

// attempt runs one egress attempt to its response headers (status 0: the
// attempt ends without an answer, as a timed-out or cancelled one does).
func egressAttempt(t testing.TB, s *Server, provider, plan string, status int) {
	t.Helper()
	g := openStream(s, provider)
	g.do(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
	if r := g.do(bodyMsg(chatBody)); r.GetImmediateResponse() != nil {
		t.Errorf("egress %s: %v", provider, r)
		g.end()
		return
	}
	if status == 0 {
		g.abort()
		return
	}
	g.do(respHeaders(":status", strconv.Itoa(status), "content-type", "application/json"))
	g.end()
}

// TestSecurityAttemptLogBounded (issue 11, finding 6): the attempt log holds
// an entry only while a request's edge stream is in flight here, whatever
// path the request took, and an attempt whose edge stream is not here
// leaves nothing behind.
func TestSecurityAttemptLogBounded(t *testing.T) {
	st := failoverState(t)
	newServer := func() *Server {
		s := New(st, zap.NewNop())
		return s
	}
	streamOK := []string{":status", "200", "content-type", "text/event-stream"}

	t.Run("served after a failover: the edge reads the attempts, then nothing is left", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		plan := edgeRequest(t, e)
		if n := s.AttemptEntries(); n != 1 {
			t.Fatalf("%d entries while the request is in flight, want 1", n)
		}
		egressAttempt(t, s, "a", plan, 503)
		egressAttempt(t, s, "b", plan, 200)
		r := e.do(respHeaders(append(streamOK, header.Served, "1", "x-envoy-attempt-count", "2")...))
		if got := setHeaders(r.GetResponseHeaders().GetResponse().GetHeaderMutation())[header.Attempts]; got != "2" {
			t.Errorf("x-stellwerk-attempts %q, want 2", got)
		}
		e.do(respBody("data: {\"choices\":[]}\n\ndata: [DONE]\n\n", true))
		e.end()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries after the request, want 0", n)
		}
	})

	t.Run("the egress record reaches the edge's routing attempts", func(t *testing.T) {
		s := newServer()
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "edge-1", seen: &s.attempts}, ctx: context.Background()}
		p.handle(headersMsg("POST", "/v1/chat/completions", false))
		p.handle(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
		egressAttempt(t, s, "a", encodePlan("edge-1", p.plan), 503)
		p.handle(respHeaders(":status", "200", "content-type", "application/json", header.Served, "1", "x-envoy-attempt-count", "2"))
		if len(p.attempts) != 2 || p.attempts[0].Status != 503 || p.attempts[1].Outcome != "served" {
			t.Errorf("attempts %+v", p.attempts)
		}
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries after the edge read them, want 0", n)
		}
	})

	t.Run("every attempt failed", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		plan := edgeRequest(t, e)
		egressAttempt(t, s, "a", plan, 503)
		egressAttempt(t, s, "b", plan, 429)
		r := e.do(respHeaders(":status", "429", "content-type", "application/json", "x-envoy-attempt-count", "2"))
		if got := setHeaders(r.GetResponseHeaders().GetResponse().GetHeaderMutation())[":status"]; got != "503" {
			t.Errorf(":status %q, want 503", got)
		}
		e.do(respBody(`{"error":{"message":"slow down"}}`, true))
		e.end()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries, want 0", n)
		}
	})

	t.Run("client cancels while an attempt is pending; the attempt ends later", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		plan := edgeRequest(t, e)
		g := openStream(s, "a")
		g.do(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
		g.do(bodyMsg(chatBody))
		e.abort() // the client went away before any answer
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries after the client went away, want 0", n)
		}
		g.abort() // Envoy cancels the attempt: it records "no response"
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries after the orphaned attempt ended, want 0", n)
		}
	})

	t.Run("client cancels mid-stream", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		plan := edgeRequest(t, e)
		egressAttempt(t, s, "a", plan, 200)
		e.do(respHeaders(append(streamOK, header.Served, "0", "x-envoy-attempt-count", "1")...))
		e.do(respBody("data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n", false))
		e.abort()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries, want 0", n)
		}
	})

	t.Run("edge here, every attempt on another replica", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		edgeRequest(t, e)
		e.do(respHeaders(append(streamOK, header.Served, "1", "x-envoy-attempt-count", "2")...))
		e.do(respBody("data: [DONE]\n\n", true))
		e.end()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries, want 0", n)
		}
	})

	t.Run("edge cancelled before the body phase", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		e.do(headersMsg("POST", "/v1/chat/completions", false))
		e.abort()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries, want 0", n)
		}
	})

	t.Run("attempts whose edge stream is on another replica", func(t *testing.T) {
		s := newServer()
		for i := range 50 {
			plan := NewDecisionID() + ";a1,b1"
			egressAttempt(t, s, "a", plan, []int{503, 0, 200}[i%3])
			egressAttempt(t, s, "b", plan, 200)
		}
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries kept for edges that are not here, want 0", n)
		}
	})

	t.Run("an attempt that ends after the edge read the attempts", func(t *testing.T) {
		s := newServer()
		e := openStream(s, "")
		plan := edgeRequest(t, e)
		slow := openStream(s, "a") // timed out by Envoy; its stream ends late
		slow.do(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
		slow.do(bodyMsg(chatBody))
		egressAttempt(t, s, "b", plan, 200)
		e.do(respHeaders(append(streamOK, header.Served, "1", "x-envoy-attempt-count", "2")...))
		slow.abort()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries while the edge still streams, want 0", n)
		}
		e.do(respBody("data: [DONE]\n\n", true))
		e.end()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries, want 0", n)
		}
	})

	t.Run("all of it at once", func(t *testing.T) {
		s := newServer()
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				e := openStream(s, "")
				plan := edgeRequest(t, e)
				if i%4 == 3 { // an attempt of a request whose edge is elsewhere
					egressAttempt(t, s, "b", NewDecisionID()+";a1,b1", 200)
				}
				switch i % 4 {
				case 0: // served after a failover
					egressAttempt(t, s, "a", plan, 503)
					egressAttempt(t, s, "b", plan, 200)
					e.do(respHeaders(append(streamOK, header.Served, "1", "x-envoy-attempt-count", "2")...))
					e.do(respBody("data: [DONE]\n\n", true))
					e.end()
				case 1: // cancelled while the first attempt waits
					g := openStream(s, "a")
					g.do(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
					g.do(bodyMsg(chatBody))
					e.abort()
					g.abort()
				case 2: // cancelled mid-stream
					egressAttempt(t, s, "a", plan, 200)
					e.do(respHeaders(append(streamOK, header.Served, "0", "x-envoy-attempt-count", "1")...))
					e.do(respBody("data: {}\n\n", false))
					e.abort()
				case 3: // all attempts failed
					egressAttempt(t, s, "a", plan, 500)
					egressAttempt(t, s, "b", plan, 0)
					e.do(respHeaders(":status", "504", "content-type", "text/plain", "x-envoy-attempt-count", "2"))
					e.do(respBody("upstream request timeout", true))
					e.end()
				}
			})
		}
		wg.Wait()
		if n := s.AttemptEntries(); n != 0 {
			t.Errorf("%d entries after 200 requests, want 0", n)
		}
	})
}

// TestAttemptLogRecordsOnlyOpenEntries: the log itself, without streams.
func TestAttemptLogRecordsOnlyOpenEntries(t *testing.T) {
	var l attemptLog
	ok := attempt{Outcome: "served", Status: 200}
	if l.record("x", 0, ok) || l.Len() != 0 {
		t.Fatalf("recorded without an open entry (len %d)", l.Len())
	}
	l.open("x", 2)
	if !l.record("x", 1, ok) || l.record("x", 2, ok) || l.record("x", -1, ok) {
		t.Errorf("record into a plan of 2 accepted the wrong indexes")
	}
	if got := l.take("x"); len(got) != 2 || got[1] != ok || got[0].Outcome != "" || l.Len() != 0 {
		t.Errorf("take %+v, len %d", got, l.Len())
	}
	if l.take("x") != nil || l.record("x", 1, ok) || l.Len() != 0 {
		t.Errorf("a closed entry came back")
	}
}

// TestFirstAttemptRewrittenAtTheEdge: the edge rewrites the plan's first
// attempt itself; that attempt's egress listener runs no filter, so the
// edge records its answer (status, latency from when the request left) as
// the egress filter would have. A later attempt rewrites from the client's
// path.
func TestFirstAttemptRewrittenAtTheEdge(t *testing.T) {
	st := failoverState(t)
	s := New(st, zap.NewNop())
	e := openStream(s, "")
	e.do(headersMsg("POST", "/v1/chat/completions", false))
	// Not a stream: a stream with a fallback is rewritten by its egress
	// filter (TestStreamFirstByteTimeout).
	r := e.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	hs := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation())
	if hs[header.Rewritten] != "/v1/chat/completions" || hs[":path"] != "/v1/chat/completions" || hs[":authority"] != "a.example.com" {
		t.Fatalf("edge headers %v", hs)
	}
	plan := hs[header.Plan]

	time.Sleep(25 * time.Millisecond) // the provider takes its time
	e.do(respHeaders(":status", "200", "content-type", "application/json", "x-envoy-attempt-count", "1"))
	rb := e.do(respBody(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, true))
	body := rb.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if lat := gjson.GetBytes(body, "routing.attempts.0.latency_ms").Float(); lat < 20 {
		t.Errorf("first attempt's latency %v ms, want about 25: %s", lat, body)
	}
	if st := gjson.GetBytes(body, "routing.attempts.0.status").Int(); st != 200 {
		t.Errorf("first attempt's status %d: %s", st, body)
	}
	if ms := s.state.Load().Router.Latency.Get("a1", false, 0); ms < 15 {
		t.Errorf("a1's learned latency %d ms, want the attempt's", ms)
	}
	e.end()

	// A retry on b gets the body rewritten for a, and the client's path.
	g := openStream(s, "b")
	g.do(headersMsg("POST", "/v1/chat/completions?api-version=a", false, header.Plan, plan, header.Rewritten, "/v1/chat/completions"))
	r = g.do(bodyMsg(`{"model":"a1","messages":[{"role":"user","content":"hello"}]}`))
	if hs := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation()); hs[":path"] != "/v1/chat/completions" || hs[":authority"] != "b.example.com" {
		t.Errorf("retry headers %v", hs)
	}
	if m := gjson.GetBytes(r.GetRequestBody().GetResponse().GetBodyMutation().GetBody(), "model").Str; m != "b1" {
		t.Errorf("retry model %q, want b1", m)
	}
	g.abort()
}

// TestStreamFirstByteTimeout (issue 19): a streaming request with a
// fallback is left to its egress filters, each of which gives its attempt
// Envoy's per-try timeout of its model's first-byte timeout; the plan's
// last attempt, and a JSON request's, keep attempt_timeout. An attempt
// ended by that timeout counts against the provider.
func TestStreamFirstByteTimeout(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Minute})
	s := New(st, zap.NewNop())
	e := openStream(s, "")
	defer e.end()
	e.do(headersMsg("POST", "/v1/chat/completions", false))
	hs := setHeaders(e.do(bodyMsg(chatBody)).GetRequestBody().GetResponse().GetHeaderMutation())
	plan := hs[header.Plan]
	// The edge rewrites the first attempt and names its first-byte timeout:
	// the egress listener's route for it applies it (xds.egressListener).
	if hs[header.Rewritten] == "" || hs[header.FirstByte] != "10000" || hs[header.PerTryTimeout] != "" || plan == "" {
		t.Fatalf("edge headers for a stream with a fallback: %v", hs)
	}
	// That route's timeout fired: the egress router answered 504 (UT), and
	// the client-facing router's upstream log reports the attempt.
	en := logEntry(plan, "1", 504, nil, map[string]string{header.UpstreamFlags: "UT"})
	en.Request.RequestHeaders[header.FirstByte] = "10000"
	s.firstAttemptFailed(en, time.Now())
	if ss := st.Router.Health.Snapshot(); len(ss) != 1 || ss[0].Provider != "a" || ss[0].ConsecutiveFailures != 1 {
		t.Fatalf("health after the first attempt's first-byte timeout: %+v", ss)
	}
	id, _, _ := decodePlan(plan)
	if got := s.attempts.take(id); len(got) != 2 || got[0].Reason != "no first byte within 10s (UT)" || got[0].Status != 504 {
		t.Fatalf("the first attempt as recorded: %+v", got)
	}
	// An attempt an egress filter rewrites (a retry, or a first attempt the
	// edge could not rewrite) gets its per-try timeout from that filter.
	for i, tc := range []struct {
		provider, body, want string
	}{
		{"a", chatBody, "10000"}, // the default stream_first_byte_timeout
		{"b", chatBody, ""},      // the last attempt: nothing to fail over to
		{"a", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`, ""},
	} {
		g := openStream(s, tc.provider)
		g.do(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
		r := g.do(bodyMsg(tc.body))
		if got := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation())[header.PerTryTimeout]; got != tc.want {
			t.Errorf("attempt %d on %s: per-try timeout %q, want %q", i, tc.provider, got, tc.want)
		}
		if i == 0 {
			// Envoy's router gave up waiting for the first byte.
			g.do(respHeaders(":status", "504", "content-type", "application/json", header.UpstreamFlags, "UT"))
		}
		g.end()
	}
	if ss := st.Router.Health.Snapshot(); len(ss) != 1 || ss[0].Provider != "a" || ss[0].ConsecutiveFailures != 2 {
		t.Errorf("health after two first-byte timeouts: %+v", ss)
	}
}

// TestOwnKeyRateLimitIsTheTenants (issue 19): a 429 on an attempt that
// used a workspace's own key cools that key's model only: the workspace's
// next request avoids the model, every other workspace keeps it. A 400
// from the provider neither counts nor ends a run of failures.
func TestOwnKeyRateLimitIsTheTenants(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Minute})
	st.WorkspaceClusters = map[WorkspaceProvider]string{{Workspace: "legal", Provider: "a"}: "provider_a_ws_legal"}
	st.Router.OwnKey = func(ws, p string) bool { _, ok := st.WorkspaceClusters[WorkspaceProvider{ws, p}]; return ok }
	s := New(st, zap.NewNop())
	e := openStream(s, "")
	defer e.end()
	plan := edgeRequest(t, e)

	attempt := func(workspace string, status int) {
		g := openStream(s, "a")
		g.do(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan, header.Workspace, workspace))
		g.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
		g.do(respHeaders(":status", strconv.Itoa(status), "content-type", "application/json"))
		g.end()
	}
	attempt("legal", 429)
	attempt("legal", 429)
	attempt("legal", 429)
	ss := st.Router.Health.Snapshot()
	if len(ss) != 1 || ss[0].Scope != health.ScopeRateLimit || ss[0].Workspace != "legal" || ss[0].Model != "a1" || ss[0].CoolingUntil.IsZero() {
		t.Fatalf("after three 429s on legal's own key: %+v", ss)
	}
	decide := func(ws string) string {
		res, err := st.Router.Route(context.Background(), decision.Request{Path: "/v1/chat/completions", DecisionID: "x",
			Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`), Principal: auth.Principal{Workspace: ws}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Selection.Model.ID
	}
	if got := decide("legal"); got != "b1" {
		t.Errorf("legal, whose own key is rate-limited: %s, want b1", got)
	}
	if got := decide("default"); got != "a1" {
		t.Errorf("another workspace: %s, want a1 (the shared key is not limited)", got)
	}

	// Outages: 503, 400, 503 is a run of two; a 200 ends it.
	for _, status := range []int{503, 400, 503} {
		attempt("default", status)
	}
	for _, s := range st.Router.Health.Snapshot() {
		if s.Scope == health.ScopeProvider && s.ConsecutiveFailures != 2 {
			t.Errorf("503, 400, 503: a run of %d, want 2", s.ConsecutiveFailures)
		}
	}
	// A 200 is a success once the edge read it as an answer: an answer
	// ends the run, an error object under a 200 adds to it (the
	// provider-wire probe).
	attempt("default", 200)
	e.do(respHeaders(":status", "200", "content-type", "application/json", header.Served, "0"))
	e.do(respBody(`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`, true))
	for _, s := range st.Router.Health.Snapshot() {
		if s.Scope == health.ScopeProvider && s.ConsecutiveFailures != 0 {
			t.Errorf("an answer did not end the run: %+v", s)
		}
	}
	e2 := openStream(s, "")
	defer e2.end()
	edgeRequest(t, e2)
	attempt("default", 200)
	e2.do(respHeaders(":status", "200", "content-type", "application/json", header.Served, "0"))
	e2.do(respBody(`{"error":{"message":"quota exceeded"}}`, true))
	run := 0
	for _, s := range st.Router.Health.Snapshot() {
		if s.Scope == health.ScopeProvider {
			run = s.ConsecutiveFailures
		}
	}
	if run != 1 {
		t.Errorf("a 200 carrying an error: a run of %d, want 1", run)
	}
}

// TestSingleAttemptGoesStraight: a plan of one attempt (a pinned model)
// skips the failover cluster and its internal listener: the edge sends it
// to the provider's cluster, without retries or the failover headers, and
// records what came back itself: a success's latency, a 429's cooldown
// and the 503 that names the model and the provider's error.
func TestSingleAttemptGoesStraight(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Hour})
	s := New(st, zap.NewNop())
	a1, _ := st.Router.Catalog.Lookup("a1")
	send := func() *procStream {
		e := openStream(s, "")
		e.do(headersMsg("POST", "/v1/chat/completions", false))
		r := e.do(bodyMsg(`{"model":"a1","messages":[{"role":"user","content":"hello"}]}`))
		hs := setHeaders(r.GetRequestBody().GetResponse().GetHeaderMutation())
		if hs[header.Cluster] != a1.Provider.Cluster || hs[header.MaxRetries] != "0" || hs[header.Plan] != "" || hs[header.Rewritten] != "" ||
			hs[":authority"] != "a.example.com" || r.DynamicMetadata != nil || hs[header.PerTryTimeout] != "86400000" {
			t.Fatalf("edge headers for a single attempt: %v (metadata %v)", hs, r.DynamicMetadata)
		}
		return e
	}

	e := send()
	time.Sleep(20 * time.Millisecond)
	e.do(respHeaders(":status", "200", "content-type", "application/json", "x-envoy-attempt-count", "1"))
	body := e.do(respBody(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, true)).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if a := gjson.GetBytes(body, "routing.attempts.0"); a.Get("status").Int() != 200 || a.Get("outcome").Str != "served" || a.Get("latency_ms").Float() < 15 {
		t.Errorf("attempt %s", a.Raw)
	}
	if ms := st.Router.Latency.Get("a1", false, 0); ms < 15 {
		t.Errorf("a1's learned latency %d ms", ms)
	}
	e.end()

	e = send()
	defer e.end()
	r := e.do(respHeaders(":status", "429", "content-type", "application/json", "retry-after", "90", "x-envoy-attempt-count", "1"))
	if hs := setHeaders(r.GetResponseHeaders().GetResponse().GetHeaderMutation()); hs[":status"] != "429" {
		t.Errorf("answer headers for a rate-limited single attempt: %v", hs)
	}
	body = e.do(respBody(`{"error":{"message":"slow down"}}`, true)).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if code := gjson.GetBytes(body, "error.code").Str; code != "provider_rate_limited" || gjson.GetBytes(body, "error.type").Str != "rate_limit_error" ||
		!strings.Contains(string(body), "a1") {
		t.Errorf("answer %s", body)
	}
	snap := st.Router.Health.Snapshot()
	if len(snap) != 1 || snap[0].Model != "a1" || snap[0].Scope != health.ScopeRateLimit || time.Until(snap[0].CoolingUntil) < 80*time.Second {
		t.Errorf("health after the 429: %+v", snap)
	}
}

// TestNoClusterIsNotTheProviders: Envoy answering for a provider it has no
// cluster for (flag NC: its configuration from stellwerk has not arrived,
// an Envoy that started first) is no failure of the provider: nothing was
// sent, nothing cools, and the client may retry (the SRE probe: healthy
// providers were blamed and cooled during an Envoy's cold start).
func TestNoClusterIsNotTheProviders(t *testing.T) {
	st := failoverState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Hour})
	s := New(st, zap.NewNop())
	e := openStream(s, "")
	defer e.end()
	e.do(headersMsg("POST", "/v1/chat/completions", false))
	e.do(bodyMsg(`{"model":"a1","messages":[{"role":"user","content":"hello"}]}`))
	r := e.do(respHeaders(":status", "503", "content-type", "application/json", header.UpstreamFlags, "NC", "x-envoy-attempt-count", "1"))
	hs := setHeaders(r.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if hs[":status"] != "503" || hs["x-should-retry"] != "" {
		t.Errorf("answer headers: %v", hs)
	}
	body := e.do(respBody(`{"error":{"message":"the provider could not be reached (NC)"}}`, true)).GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	if a := gjson.GetBytes(body, "error.message").Str; !strings.Contains(a, "Envoy has no cluster for the provider") {
		t.Errorf("answer %s", body)
	}
	if snap := st.Router.Health.Snapshot(); len(snap) != 0 {
		t.Errorf("health after NC: %+v", snap)
	}
}
