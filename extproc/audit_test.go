package extproc

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crypto/ed25519"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/store"
)

// testAuditLog is an audit log on a fresh SQLite state store; spool false
// refuses while the store is down.
func testAuditLog(t testing.TB, spool bool) (*audit.Log, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ast, err := audit.OpenStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	signer := audit.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	l, err := audit.Open(context.Background(), ast, signer, audit.Options{Replica: "t", BatchInterval: 5 * time.Millisecond,
		Spool: spool, SpoolDir: filepath.Join(dir, "spool"), StoreTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l, db
}

// recordsOf reads back every decision record the log committed, by id.
func recordsOf(t *testing.T, l *audit.Log) map[string][]audit.Record {
	t.Helper()
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	es, _, err := l.Store().Query(context.Background(), audit.Filter{Kind: audit.KindDecision}, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]audit.Record{}
	for _, e := range es {
		var r audit.Record
		if err := json.Unmarshal(e.Body, &r); err != nil {
			t.Fatal(err)
		}
		out[e.ID] = append(out[e.ID], r)
	}
	return out
}

// TestAuditRecordPerRequest: every chat request that reached the body
// phase leaves exactly one record when its stream ends, with what the
// client got; requests answered from their headers leave none.
func TestAuditRecordPerRequest(t *testing.T) {
	st := pricedProvider(t, "sk-p")
	l, _ := testAuditLog(t, true)
	st.Audit = l
	st.Versions = audit.Versions{Config: audit.ContentHash([]byte("config")), Catalog: audit.ContentHash([]byte("catalog"))}
	const chat = `{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hello there"}]}`
	type want struct {
		status    int
		code      string
		served    string
		attempts  int
		in, out   int
		estimated bool
		noRecord  bool
	}
	for name, tc := range map[string]struct {
		path, body string
		headers    []string
		msgs       []*extprocv3.ProcessingRequest
		want       want
	}{
		"json served": {body: chat, msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500}}`, true)},
			want: want{status: 200, served: "m", attempts: 1, in: 1000, out: 500}},
		"stream complete": {body: chat, msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk, false),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":3}}`+"\n\ndata: [DONE]\n\n", true)},
			want: want{status: 200, served: "m", attempts: 1, in: 40, out: 3}},
		"stream cut": {body: chat, msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"), respBodyMsg(oaiChunk, false)},
			want: want{status: 200, code: "stream_interrupted", served: "m", attempts: 1, out: 1, estimated: true}},
		// The provider's error event after the answer began: the client
		// got it; the request is not served but failed mid-stream (it was
		// recorded served, found by a helper).
		"stream failed": {body: chat, msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk+`data: {"error":{"message":"overloaded","type":"server_error"}}`+"\n\n", true)},
			want: want{status: 200, code: "stream_failed", served: "m", attempts: 1, out: 1, estimated: true}},
		"provider error": {body: chat, msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("500", "application/json"),
			respBodyMsg(`{"error":{"message":"boom"}}`, true)},
			want: want{status: 500, attempts: 1}}, // the attempt names m; nothing was served
		"client gone": {body: chat, want: want{code: "client_closed", served: "m", attempts: 1, estimated: true}},
		"bad request": {body: `{"model":`, want: want{status: 400, code: "invalid_json"}},
		// Refused from its headers: a record all the same (a 413 had none,
		// found by a helper).
		"too large, from its content-length": {headers: []string{"content-length", "99999999"}, want: want{status: 413, code: "request_too_large"}},
		"compressed":                         {headers: []string{"content-encoding", "gzip"}, want: want{status: 400, code: "unsupported_content_encoding"}},
		"unknown url":                        {path: "/v1/nothing", want: want{noRecord: true}},
		"models list":                        {path: "/v1/models", want: want{noRecord: true}},
	} {
		t.Run(name, func(t *testing.T) {
			id := "dec-" + strings.ReplaceAll(name, " ", "-")
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: id}, ctx: context.Background()}
			path, method := tc.path, "POST"
			if path == "" {
				path = "/v1/chat/completions"
			} else {
				method = "GET"
			}
			if r := p.handle(headersMsg(method, path, false, tc.headers...)); r.GetImmediateResponse() == nil {
				p.handle(bodyMsg(bodyFor(tc.body, tc.msgs)))
			}
			for _, m := range tc.msgs {
				p.handle(m)
			}
			p.finish()
			p.finish() // a second end records nothing more
			recs := recordsOf(t, l)[id]
			w := tc.want
			if w.noRecord {
				if len(recs) != 0 {
					t.Fatalf("a request answered from its headers has no record: %+v", recs)
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if r.Status != w.status || r.ErrorCode != w.code || r.Served != w.served || len(r.Attempts) != w.attempts {
				t.Errorf("status %d %q served %q attempts %d; want %d %q %q %d", r.Status, r.ErrorCode, r.Served, len(r.Attempts),
					w.status, w.code, w.served, w.attempts)
			}
			fp := audit.Fingerprint([]byte(bodyFor(tc.body, tc.msgs)))
			if tc.headers != nil {
				fp = "" // refused before any body was read
			}
			if r.Time.IsZero() || r.Request == nil || r.Request.Fingerprint != fp ||
				r.Versions.Config != st.Versions.Config || r.Principal == nil {
				t.Errorf("record %+v", r)
			}
			if w.served == "" {
				return
			}
			if r.Chosen != "m" || r.Provider != "p" || r.Versions.Policy == "" || len(r.Candidates) != 1 || r.Classification == nil || r.Workspace != "default" {
				t.Errorf("decision %+v", r)
			}
			if w.status/100 == 2 || w.estimated {
				if r.Usage == nil || r.Cost == nil || r.Usage.Estimated != w.estimated || r.Cost.EUR <= 0 {
					t.Fatalf("usage %+v cost %+v", r.Usage, r.Cost)
				}
				if !w.estimated && (r.Usage.PromptTokens != w.in || r.Usage.CompletionTokens != w.out) {
					t.Errorf("usage %+v, want %d/%d", r.Usage, w.in, w.out)
				}
			} else if r.Cost != nil && r.Cost.EUR != 0 {
				t.Errorf("a failed request costs nothing: %+v", r.Cost)
			}
		})
	}
}

// TestAuditRefuse: with on_store_down refuse, a chat request is answered
// 503 audit_unavailable while the log cannot reach its store, before
// anything is sent; with spool, it passes.
func TestAuditRefuse(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(map[bool]string{false: "refuse", true: "spool"}[spool], func(t *testing.T) {
			st := testState(t)
			l, db := testAuditLog(t, spool)
			st.Audit, st.AuditRefuse = l, !spool
			body := `{"model":"small","messages":[{"role":"user","content":"hi"}]}`
			send := func() *extprocv3.ProcessingResponse {
				p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "d"}, ctx: context.Background()}
				p.handle(headersMsg("POST", "/v1/chat/completions", false))
				defer p.finish()
				return p.handle(bodyMsg(body))
			}
			if r := send(); r.GetImmediateResponse() != nil {
				t.Fatalf("refused while the log is healthy: %v", r)
			}
			db.SQL.Close() // the store goes away
			l.Record(&audit.Record{Kind: audit.KindAdmin, ID: "x"})
			deadline := time.Now().Add(5 * time.Second)
			for !spool && l.Healthy() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if !spool && l.Healthy() {
				t.Fatal("the log stayed healthy with its store closed")
			}
			time.Sleep(50 * time.Millisecond)
			r := send()
			ir := r.GetImmediateResponse()
			if spool {
				if ir != nil {
					t.Fatalf("spool mode refused: %v", ir)
				}
				return
			}
			if ir == nil || ir.GetStatus().GetCode() != 503 || !strings.Contains(string(ir.Body), `"code":"audit_unavailable"`) {
				t.Fatalf("want 503 audit_unavailable, got %v", r)
			}
		})
	}
}

// TestAuditContent: a workspace that opted in gets the request's messages
// and the answer (JSON and streamed) in its records, every secret and item
// of personal data replaced by a typed placeholder; other workspaces get
// no content.
func TestAuditContent(t *testing.T) {
	st := oneProvider(t, "sk-p")
	l, _ := testAuditLog(t, true)
	st.Audit, st.AuditContent = l, map[string]bool{"default": true}
	const chat = `{"model":"auto","messages":[{"role":"system","content":"be brief"},` +
		`{"role":"user","content":[{"type":"text","text":"I am jane.doe@example.com"},{"type":"text","text":"thanks"}]}]}`
	run := func(id string, msgs ...*extprocv3.ProcessingRequest) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: id}, ctx: context.Background()}
		p.handle(headersMsg("POST", "/v1/chat/completions", false))
		p.handle(bodyMsg(bodyFor(chat, msgs)))
		for _, m := range msgs {
			p.handle(m)
		}
		p.finish()
	}
	run("json", respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[{"message":{"role":"assistant","content":"Mail jane.doe@example.com with key AKIAIOSFODNN7EXAMPLE"}}]}`, true))
	run("stream", respHeadersMsg("200", "text/event-stream"),
		respBodyMsg(`data: {"choices":[{"delta":{"content":"Call +49 30 1234567"}}]}`+"\n\n"+`data: {"choices":[{"delta":{"content":" now"}}]}`+"\n\ndata: [DONE]\n\n", true))
	st.AuditContent = nil
	run("not-opted-in", respHeadersMsg("200", "application/json"), respBodyMsg(`{"choices":[{"message":{"content":"hi"}}]}`, true))

	recs := recordsOf(t, l)
	for id, answer := range map[string]string{"json": "Mail [EMAIL] with key [SECRET:aws_access_key_id]", "stream": "Call [PHONE] now"} {
		r := recs[id]
		if len(r) != 1 || r[0].Content == nil {
			t.Fatalf("%s: no content: %+v", id, r)
		}
		ct := r[0].Content
		if len(ct.Messages) != 2 || ct.Messages[0].Text != "be brief" || ct.Messages[1].Role != "user" ||
			ct.Messages[1].Text != "I am [EMAIL]\nthanks" || ct.Answer != answer {
			t.Errorf("%s: content %+v (status %d %s)", id, ct, r[0].Status, r[0].ErrorCode)
		}
		body, _ := json.Marshal(r[0])
		for _, leaked := range []string{"jane.doe", "AKIAIOSFODNN7EXAMPLE", "1234567", "DE89370400440532013000"} {
			if strings.Contains(string(body), leaked) {
				t.Errorf("%s: %q in the record", id, leaked)
			}
		}
	}
	if r := recs["not-opted-in"]; len(r) != 1 || r[0].Content != nil {
		t.Errorf("a workspace that did not opt in: %+v", r)
	}
}

// TestAuditEmbeddingsAndCompletions: the endpoints' requests get decision
// records with their path, classification and chosen model, and an
// opted-in workspace's content holds the input or prompt, redacted.
func TestAuditEmbeddingsAndCompletions(t *testing.T) {
	st := apisState(t)
	l, _ := testAuditLog(t, true)
	st.Audit, st.AuditContent = l, map[string]bool{"default": true}
	run := func(id, path, body, answer string) {
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: id}, ctx: context.Background()}
		p.handle(headersMsg("POST", path, false))
		p.handle(bodyMsg(body))
		p.handle(respHeadersMsg("200", "application/json"))
		p.handle(respBodyMsg(answer, true))
		p.finish()
	}
	run("emb", "/v1/embeddings", `{"model":"auto","input":["mail jane.doe@example.com","x"]}`,
		`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"usage":{"prompt_tokens":9,"total_tokens":9}}`)
	run("cmpl", "/v1/completions", `{"model":"auto","prompt":"say hello"}`,
		`{"object":"text_completion","choices":[{"index":0,"text":"done, jane.doe@example.com"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`)
	recs := recordsOf(t, l)
	for id, want := range map[string]struct {
		path, chosen, answer string
		msgs                 int
		text                 string
	}{
		// personal data: EU residency holds
		"emb":  {"/v1/embeddings", "emb-eu", "", 2, "mail [EMAIL]"},
		"cmpl": {"/v1/completions", "instruct", "done, [EMAIL]", 1, "say hello"},
	} {
		r := recs[id]
		if len(r) != 1 || r[0].Request == nil || r[0].Request.Path != want.path || r[0].Chosen != want.chosen || r[0].Classification == nil {
			t.Fatalf("%s: %+v", id, r)
		}
		ct := r[0].Content
		if ct == nil || len(ct.Messages) != want.msgs || ct.Messages[0].Role != "user" || ct.Messages[0].Text != want.text || ct.Answer != want.answer {
			t.Errorf("%s: content %+v", id, ct)
		}
		if r[0].Usage == nil || r[0].Usage.PromptTokens == 0 {
			t.Errorf("%s: usage %+v", id, r[0].Usage)
		}
	}
}
