package extproc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decision"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/policy"
)

func testState(t testing.TB) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: small}
envoy: {max_request_bytes: 2048}
providers:
  - {name: remote, base_url: "https://api.example.com/v1", residency: us, credential: {env: REMOTE_KEY}, forward_headers: [openai-beta], query: {api-version: "2024-10-21"}}
  - {name: nokey, base_url: "http://127.0.0.1:9/v1", residency: eu, credential: {env: ABSENT}}
models:
  - {id: small, provider: remote, provider_model: small-2024, context_window: 8000}
  - {id: same, provider: remote, context_window: 8000}
  - {id: orphan, provider: nokey, context_window: 8000}
`))
	if err != nil {
		t.Fatal(err)
	}
	return stateFor(t, c, func(k string) string {
		if k == "REMOTE_KEY" {
			return "sk-remote"
		}
		return ""
	})
}

// stateFor compiles a validated config into the per-config state, with the
// shipped policy library and getenv for provider keys.
func stateFor(tb testing.TB, c *config.Config, getenv func(string) string) *State {
	tb.Helper()
	cat, err := catalog.New(c, catalog.Env{Getenv: getenv})
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := classify.New(c.Classify)
	if err != nil {
		tb.Fatal(err)
	}
	pm, err := libraryPolicy()
	if err != nil {
		tb.Fatal(err)
	}
	return NewState(decision.New(c, cat, cl, pm, zap.NewNop()), auth.New(c, func(string) string { return "" }), c.Envoy.MaxRequestBytes)
}

// headersMsg is a request's headers message; a POST names its body JSON
// unless extra sends a content-type (or "-" for none).
func headersMsg(method, path string, endOfStream bool, extra ...string) *extprocv3.ProcessingRequest {
	hs := []*corev3.HeaderValue{{Key: ":method", RawValue: []byte(method)}, {Key: ":path", RawValue: []byte(path)}}
	ctype := method == "POST"
	for i := 0; i+1 < len(extra); i += 2 {
		if strings.EqualFold(extra[i], "content-type") {
			ctype = false
			if extra[i+1] == "-" {
				continue
			}
		}
		hs = append(hs, &corev3.HeaderValue{Key: extra[i], RawValue: []byte(extra[i+1])})
	}
	if ctype {
		hs = append(hs, &corev3.HeaderValue{Key: "content-type", RawValue: []byte("application/json")})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: endOfStream,
	}}}
}

func bodyMsg(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
		Body: []byte(body), EndOfStream: true,
	}}}
}

// libraryPolicy is the shipped policy library, loaded once per test
// binary: loading compiles it and runs its Rego tests, seconds under -race,
// and nearly every test here built a state. States share it, as the
// router only reads the policy in force.
var libraryPolicy = sync.OnceValues(func() (*policy.Manager, error) {
	return policy.NewManager(context.Background(), policy.Source{Library: true}, zap.NewNop())
})

func newProc(t testing.TB) *edge {
	return &edge{filter: filter{state: testState(t), log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
}

func setHeaders(m *extprocv3.HeaderMutation) map[string]string {
	out := map[string]string{}
	for _, h := range m.GetSetHeaders() {
		out[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return out
}

func TestChatRequestIsRewritten(t *testing.T) {
	p := newProc(t)
	r := p.handle(headersMsg("POST", "/v1/chat/completions?trace=1", false,
		"x-stellwerk-cluster", "provider_nokey", "X-Stellwerk-Model", "orphan", "authorization", "Bearer client", "content-length", "80",
		"cookie", "session=1", "openai-organization", "org-other", "anthropic-beta", "x", "openai-beta", "assistants=v2",
		"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "content-type", "application/json"))
	hr := r.GetRequestHeaders().GetResponse()
	if hr == nil || !hr.ClearRouteCache {
		t.Fatalf("headers phase: %v", r)
	}
	removed := hr.GetHeaderMutation().GetRemoveHeaders()
	for _, h := range []string{"x-stellwerk-cluster", "x-stellwerk-model", "authorization", "cookie", "openai-organization", "anthropic-beta"} {
		if !slices.Contains(removed, h) {
			t.Errorf("client header %s not removed (removed: %v)", h, removed)
		}
	}
	for _, h := range []string{"traceparent", "content-type", "content-length", "openai-beta"} {
		if slices.Contains(removed, h) {
			t.Errorf("header %s removed, want it kept (removed: %v)", h, removed)
		}
	}

	body := `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
	r = p.handle(bodyMsg(body))
	cr := r.GetRequestBody().GetResponse()
	if cr == nil || !cr.ClearRouteCache {
		t.Fatalf("body phase: %v", r)
	}
	hs := setHeaders(cr.GetHeaderMutation())
	nb := cr.GetBodyMutation().GetBody()
	want := map[string]string{
		"x-stellwerk-cluster": "provider_remote",
		// The provider's query from config; never the client's.
		":path":      "/v1/chat/completions?api-version=2024-10-21",
		":authority": "api.example.com",
	}
	for k, v := range want {
		if hs[k] != v {
			t.Errorf("%s = %q, want %q", k, hs[k], v)
		}
	}
	// The provider key is Envoy's to inject (xds credential filter): no
	// ext_proc answer ever carries it.
	// (The wire form: protojson would show header values as base64.)
	if out, _ := proto.Marshal(r); bytes.Contains(out, []byte("sk-remote")) {
		t.Errorf("the provider key is in the ext_proc answer: %v", r)
	}
	if _, ok := hs["authorization"]; ok {
		t.Errorf("authorization set by the ext_proc answer")
	}
	var got map[string]any
	if err := json.Unmarshal(nb, &got); err != nil || got["model"] != "small-2024" {
		t.Fatalf("rewritten body %s (%v)", nb, err)
	}
	if hs["content-length"] != itoa(len(nb)) {
		t.Errorf("content-length %q for %d bytes", hs["content-length"], len(nb))
	}

	r = p.handle(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}})
	rh := setHeaders(r.GetResponseHeaders().GetResponse().GetHeaderMutation())
	if rh["x-stellwerk-model"] != "small" || rh["x-stellwerk-provider"] != "remote" || rh["x-stellwerk-decision-id"] != p.id || rh["x-stellwerk-reason"] == "" {
		t.Errorf("response headers %v", rh)
	}
}

func TestSameModelNameLeavesBodyAlone(t *testing.T) {
	p := newProc(t)
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	cr := p.handle(bodyMsg(`{"model":"same","messages":[{"role":"user"}]}`)).GetRequestBody().GetResponse()
	if cr.GetBodyMutation() != nil {
		t.Errorf("body rewritten although the provider model name is the same")
	}
	if _, ok := setHeaders(cr.GetHeaderMutation())["content-length"]; ok {
		t.Errorf("content-length set without a body change")
	}
}

func TestImmediateAnswers(t *testing.T) {
	cases := map[string]struct {
		method, path string
		eos          bool
		body         string
		extra        []string
		status       int
		code         string
	}{
		"models":             {"GET", "/v1/models", true, "", nil, 200, ""},
		"model":              {"GET", "/v1/models/small", true, "", nil, 200, ""},
		"auto model":         {"GET", "/v1/models/auto", true, "", nil, 200, ""},
		"unknown model":      {"GET", "/v1/models/gpt-9", true, "", nil, 404, "model_not_found"},
		"models by POST":     {"POST", "/v1/models", true, "", nil, 405, "method_not_allowed"},
		"unknown path":       {"GET", "/admin", true, "", nil, 404, "unknown_url"},
		"chat by GET":        {"GET", "/v1/chat/completions", true, "", nil, 405, "method_not_allowed"},
		"chat no body":       {"POST", "/v1/chat/completions", true, "", nil, 400, "invalid_request_body"},
		"declared too large": {"POST", "/v1/chat/completions", false, "", []string{"content-length", "4096"}, 413, "request_too_large"},
		"body too large":     {"POST", "/v1/chat/completions", false, `{"model":"small","x":"` + strings.Repeat("a", 3000) + `"}`, nil, 413, "request_too_large"},
		"bad json":           {"POST", "/v1/chat/completions", false, `{"model"`, nil, 400, "invalid_json"},
		"unknown model chat": {"POST", "/v1/chat/completions", false, `{"model":"x","messages":[{"role":"user"}]}`, nil, 404, "model_not_found"},
		"missing key":        {"POST", "/v1/chat/completions", false, `{"model":"orphan","messages":[{"role":"user"}]}`, nil, 502, "provider_credential_missing"},
		// What a web page makes a browser send cross-site without a
		// preflight, and what else is not JSON in UTF-8.
		"text/plain":        {"POST", "/v1/chat/completions", false, "", []string{"content-type", "text/plain;charset=UTF-8"}, 415, "unsupported_media_type"},
		"a form":            {"POST", "/v1/chat/completions", false, "", []string{"content-type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		"no type":           {"POST", "/v1/chat/completions", false, "", []string{"content-type", "-"}, 415, "unsupported_media_type"},
		"two types":         {"POST", "/v1/embeddings", false, "", []string{"content-type", "application/json", "content-type", "application/json"}, 415, "unsupported_media_type"},
		"joined types":      {"POST", "/v1/messages", false, "", []string{"content-type", "application/json,text/html"}, 415, "unsupported_media_type"},
		"UTF-16":            {"POST", "/v1/responses", false, "", []string{"content-type", "application/json; charset=UTF-16"}, 415, "unsupported_media_type"},
		"count_tokens form": {"POST", "/v1/messages/count_tokens", false, "", []string{"content-type", "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := newProc(t)
			r := p.handle(headersMsg(tc.method, tc.path, tc.eos, tc.extra...))
			if tc.body != "" {
				if r.GetImmediateResponse() != nil {
					t.Fatalf("answered before the body: %v", r)
				}
				r = p.handle(bodyMsg(tc.body))
			}
			ir := r.GetImmediateResponse()
			if ir == nil {
				t.Fatalf("no immediate response: %v", r)
			}
			if int(ir.GetStatus().GetCode()) != tc.status {
				t.Fatalf("status %d, want %d: %s", ir.GetStatus().GetCode(), tc.status, ir.Body)
			}
			if !json.Valid(ir.Body) {
				t.Fatalf("body not JSON: %s", ir.Body)
			}
			hs := setHeaders(ir.GetHeaders())
			if hs["content-type"] != "application/json" || hs["x-stellwerk-decision-id"] != p.id {
				t.Errorf("headers %v", hs)
			}
			if tc.code != "" {
				var e struct{ Error struct{ Code string } }
				_ = json.Unmarshal(ir.Body, &e)
				if e.Error.Code != tc.code {
					t.Errorf("code %q, want %q: %s", e.Error.Code, tc.code, ir.Body)
				}
			}
			if strings.Contains(string(ir.Body), "sk-remote") || strings.Contains(string(ir.Body), "ABSENT") {
				t.Errorf("answer leaks configuration: %s", ir.Body)
			}
		})
	}
}

// FuzzProcessor: whatever Envoy forwards from a client, the edge filter answers
// with a well-formed message and never panics.
func FuzzProcessor(f *testing.F) {
	f.Add("POST", "/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, "x-stellwerk-cluster", "provider_nokey")
	f.Add("GET", "/v1/models/small", "", "content-length", "-1")
	f.Add("POST", "/v1/chat/completions?x=1", `{"model":"small","model":"same"}`, "content-length", "99999999999999999999")
	f.Add("DELETE", "//v1/../v1/models", "\x00\xff", "X-STELLWERK-REASON", "\r\n")
	st := testState(f)
	f.Fuzz(func(t *testing.T, method, path, body, hk, hv string) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
		r := p.handle(headersMsg(method, path, body == "", hk, hv))
		if r == nil || r.Response == nil {
			t.Fatal("nil response to headers")
		}
		if ir := r.GetImmediateResponse(); ir != nil {
			if !json.Valid(ir.Body) || ir.GetStatus().GetCode() == 0 {
				t.Fatalf("bad immediate response %v", ir)
			}
			return
		}
		r = p.handle(bodyMsg(body))
		if r == nil || r.Response == nil {
			t.Fatal("nil response to body")
		}
		if ir := r.GetImmediateResponse(); ir != nil && !json.Valid(ir.Body) {
			t.Fatalf("bad immediate response %v", ir)
		}
		if cr := r.GetRequestBody().GetResponse(); cr != nil {
			if hs := setHeaders(cr.GetHeaderMutation()); hs["x-stellwerk-cluster"] == "" {
				t.Fatalf("routed without a cluster: %v", hs)
			}
		}
	})
}

// FuzzEgress: an egress attempt never panics, whatever the plan header,
// body and provider answer, and its own answers are JSON.
func FuzzEgress(f *testing.F) {
	f.Add("id;small", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, "200", "application/json")
	f.Add("id;nope,small", `{"model":"x"}`, "429", "text/event-stream")
	f.Add("d=id&m=small", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, "503", "application/json")
	f.Add("d=id&m=nope&m=small", `{"model":"x"}`, "200", "text/event-stream")
	f.Add("m=small", "{", "abc", "")
	f.Add("d=%zz", "", "429", "application/json; charset=utf-8")
	st := testState(f)
	provider := st.Router.Catalog.Models()[0].Provider.Name
	f.Fuzz(func(t *testing.T, plan, body, status, ctype string) {
		p := &egress{filter: filter{state: st, log: zap.NewNop(), id: "id", seen: &attemptLog{}}, provider: provider}
		check := func(r *extprocv3.ProcessingResponse) bool {
			if r == nil || r.Response == nil {
				t.Fatal("nil response")
			}
			if ir := r.GetImmediateResponse(); ir != nil {
				if !json.Valid(ir.Body) {
					t.Fatalf("bad immediate response %v", ir)
				}
				return false
			}
			return true
		}
		if !check(p.handle(headersMsg("POST", "/v1/chat/completions", body == "", header.Plan, plan))) {
			return
		}
		if !check(p.handle(bodyMsg(body))) {
			return
		}
		rh := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(status)}, {Key: "content-type", RawValue: []byte(ctype)}}}}}}
		check(p.handle(rh))
		p.endAttempt(0, "", "", "", false)
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func BenchmarkChatRequest(b *testing.B) {
	st := testState(b)
	body := `{"model":"small","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`
	hm, bm := headersMsg("POST", "/v1/chat/completions", false, "content-type", "application/json"), bodyMsg(body)
	rh := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "id"}, ctx: context.Background()}
		p.handle(hm)
		p.handle(bm)
		p.handle(rh)
	}
}

// BenchmarkChatRequestProduction is the edge's request phases as the
// production-shaped bench stack runs them: the shipped 71-model catalog and
// Rego library, a virtual key, model auto, a 2 KB body (parse, classify,
// policy, select, rewrite; the audit record and the answer are not in it).
// The same body every time, as the bench sends it, so the policy memo hits.
func BenchmarkChatRequestProduction(b *testing.B) {
	st := productionState(b)
	st.Spend = &rowsRecorder{}
	benchmarkChatRequest(b, st, headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open", "user-agent", sdkUserAgent))
}

// sdkUserAgent is what the OpenAI Python SDK sends: each request's
// user-agent is classified (a provider gets it), as in production.
const sdkUserAgent = "OpenAI/Python 1.54.3"

// BenchmarkChatRequestRecorded is BenchmarkChatRequestProduction as the
// production stack runs it after its priming: an audit log (so the
// decision keeps its replay inputs) and a learned latency for every
// catalog model (so every one of them is recorded).
func BenchmarkChatRequestRecorded(b *testing.B) {
	benchmarkChatRequest(b, recordedState(b), headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open", "user-agent", sdkUserAgent))
}

// recordedState is the production state as the primed bench stack runs
// it: an audit log, and a learned latency for every catalog model.
func recordedState(b *testing.B) *State {
	st := productionState(b)
	st.Spend = &rowsRecorder{}
	st.Audit, _ = testAuditLog(b, false)
	for i, m := range st.Router.Catalog.Models() {
		st.Router.Latency.Observe(m.ID, false, time.Duration(40+i)*time.Millisecond)
	}
	return st
}

// benchBody is the 2 KB chat request of the edge benchmarks.
var benchBody = `{"model":"auto","max_tokens":300,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
	strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`

// BenchmarkChatRequestFailover is BenchmarkChatRequestProduction with
// failover as standalone mode runs it: the plan through the failover
// cluster (hop), or the first attempt straight to its provider's
// first-attempt cluster (first_cluster, routeFirstDirect).
func BenchmarkChatRequestFailover(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := "hop"
		if direct {
			name = "first_cluster"
		}
		b.Run(name, func(b *testing.B) {
			st := productionState(b)
			st.Spend = &rowsRecorder{}
			st.Failover = &Failover{MaxAttempts: 3, AttemptTimeout: time.Minute}
			if direct {
				st.Failover.First = map[string]string{}
				for _, pr := range st.Router.Catalog.Providers() {
					st.Failover.First[pr.Name] = header.FirstCluster(pr.Name)
				}
			}
			// Envoy gives every request an id; the direct first attempt notes it.
			benchmarkChatRequest(b, st, headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open", "x-request-id", "bench-request"))
		})
	}
}

func benchmarkChatRequest(b *testing.B, st *State, hm *extprocv3.ProcessingRequest) {
	body := benchBody
	bm := bodyMsg(body)
	var seen attemptLog
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p := benchRequestPhases(b, st, &seen, hm, bm)
		if p.directID != "" {
			seen.directDone(p.directID)
		}
	}
}

// benchRequestPhases runs one request's header and body phases on a new
// edge and returns it.
func benchRequestPhases(b *testing.B, st *State, seen *attemptLog, hm, bm *extprocv3.ProcessingRequest) *edge {
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef", seen: seen}, ctx: context.Background()}
	p.handle(hm)
	if r := p.handle(bm); r.GetImmediateResponse() != nil {
		b.Fatalf("refused: %v", r)
	}
	p.takeAttempts(0)
	return p
}

// BenchmarkChatExchangeRecorded is BenchmarkChatRequestRecorded with the
// answer: the response headers and a JSON answer with its usage, which
// gets the routing object (usage, cost, saving) and settles the charge.
func BenchmarkChatExchangeRecorded(b *testing.B) {
	benchmarkChatExchange(b, recordedState(b), benchBody)
}

// BenchmarkChatExchangeRecordedEndUser is BenchmarkChatExchangeRecorded
// from a request that names its end user and carries the metadata member
// spend.tag names: what the spend row's two labels cost (one copy of both
// out of the body).
func BenchmarkChatExchangeRecordedEndUser(b *testing.B) {
	st := recordedState(b)
	st.SpendTag = "project"
	benchmarkChatExchange(b, st, strings.Replace(benchBody, `{"model":"auto",`,
		`{"model":"auto","user":"u-5f0c2a9e41b7","metadata":{"project":"helpdesk","feature":"summary"},`, 1))
	if rows := st.Spend.(*rowsRecorder).rows; len(rows) == 0 || rows[len(rows)-1].EndUser != "u-5f0c2a9e41b7" || rows[len(rows)-1].Tag != "helpdesk" {
		b.Fatalf("the spend rows lack the end user and tag")
	}
}

func benchmarkChatExchange(b *testing.B, st *State, body string) {
	hm := headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open")
	bm := bodyMsg(body)
	rh := respHeadersMsg("200", "application/json")
	answer := `{"id":"chatcmpl-1","object":"chat.completion","created":1764633600,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("A mutex guards one owner; a semaphore counts permits. ", 20) + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":412,"completion_tokens":230,"total_tokens":642}}`
	ab := respBodyMsg(answer, true)
	var seen attemptLog
	b.ReportAllocs()
	b.SetBytes(int64(len(body) + len(answer)))
	for b.Loop() {
		p := benchRequestPhases(b, st, &seen, hm, bm)
		p.handle(rh)
		if r := p.handle(ab); len(r.GetResponseBody().GetResponse().GetBodyMutation().GetBody()) == 0 {
			b.Fatalf("no routing object: %v", r)
		}
		p.finish()
	}
}

// BenchmarkChatRequestPDF is BenchmarkChatRequestProduction with a 1 MB
// PDF of 100 pages inline (a chat file part): what a request carrying one
// costs beside an ordinary one, mostly its base64 decoding and the page
// count the budgets hold (request.PDFReader.Inline).
func BenchmarkChatRequestPDF(b *testing.B) {
	c, err := config.Load("../examples/production.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// The example lists no EU model that reads files, where the shipped
	// policy keeps a PDF by default: this workspace lets it go to others.
	c.Workspaces = append(c.Workspaces, config.Workspace{Name: "docs", UnreadSensitive: []string{}})
	c.Keys = []config.Key{{ID: "docs", SHA256: auth.Hash("sk-docs"), Workspace: "docs"}}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	st := stateFor(b, c, func(string) string { return "sk-test" })
	st.Spend = &rowsRecorder{}
	var pdf bytes.Buffer
	pdf.WriteString("%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n")
	for i := range 100 {
		fmt.Fprintf(&pdf, "%d 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R>> endobj\n", 3+i, 200+i)
	}
	pdf.WriteString("300 0 obj <</Type /XObject /Subtype /Image /Length 1000000>> stream\n")
	img := make([]byte, 1_000_000)
	r := rand.New(rand.NewPCG(1, 2)) // a scan's compressed picture: bytes of every value
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	pdf.Write(img)
	pdf.WriteString("\nendstream endobj\n%%EOF\n")
	body := `{"model":"auto","max_tokens":300,"messages":[{"role":"user","content":[{"type":"text","text":"Summarise this report."},` +
		`{"type":"file","file":{"filename":"report.pdf","file_data":"data:application/pdf;base64,` + base64.StdEncoding.EncodeToString(pdf.Bytes()) + `"}}]}]}`
	hm := headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-docs", "user-agent", sdkUserAgent)
	bm := bodyMsg(body)
	var seen attemptLog
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		benchRequestPhases(b, st, &seen, hm, bm)
	}
}

// TestDropInHostHeader: the drop-in's version is a number ("10" is later
// than "2": compared as text it read as older, and stellwerk would have
// rewritten :authority for pieces that route by x-stellwerk-host: the red
// team); anything else is pieces from before.
func TestDropInHostHeader(t *testing.T) {
	for v, want := range map[string]bool{"2": true, "3": true, "10": true, "1": false, "": false, "x": false, "2.0": false, " 2": false} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(header.DropIn, v))
		if got := dropInHostHeader(ctx); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
	if dropInHostHeader(context.Background()) {
		t.Error("no metadata")
	}
	if dropInHostHeader(metadata.NewIncomingContext(context.Background(), metadata.Pairs(header.DropIn, "2", header.DropIn, "2"))) {
		t.Error("two values")
	}
}
