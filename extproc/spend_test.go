package extproc

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// rowsRecorder keeps what the edge records.
type rowsRecorder struct{ rows []spend.Row }

func (r *rowsRecorder) Record(row spend.Row) { r.rows = append(r.rows, row) }

func respHeadersMsg(status, ctype string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":status", RawValue: []byte(status)}, {Key: "content-type", RawValue: []byte(ctype)}}},
	}}}
}

// bodyFor is body as a stream request when msgs answer it with an event
// stream: an event stream for a request that asked for one answer is a 502.
func bodyFor(body string, msgs []*extprocv3.ProcessingRequest) string {
	if len(msgs) > 0 {
		for _, h := range msgs[0].GetResponseHeaders().GetHeaders().GetHeaders() {
			if h.Key == "content-type" && strings.HasPrefix(string(h.RawValue), "text/event-stream") {
				return `{"stream":true,` + body[1:]
			}
		}
	}
	return body
}

func respBodyMsg(body string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: []byte(body), EndOfStream: eos}}}
}

// TestSpendRowPerRequest: every decided chat request leaves exactly one
// spend row when its stream ends, with or without budgets, whatever became
// of it; requests that were never decided leave none.
func TestSpendRowPerRequest(t *testing.T) {
	st := pricedProvider(t, "sk-p")
	const chat = `{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":"hello there"}]}`
	type want struct {
		status        spend.Status
		in, out       int64
		cost          ledger.MicroEUR // -1: the worst case of max_tokens; -2: the prompt, -3: prompt and answer, estimated
		estimated     bool
		skipRowChecks bool
		cached        int64
	}
	for name, tc := range map[string]struct {
		msgs []*extprocv3.ProcessingRequest
		rows int
		want want
	}{
		"json served": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,"prompt_tokens_details":{"cached_tokens":600}}}`, true)},
			rows: 1, want: want{status: spend.Served, in: 1000, out: 500, cached: 600, cost: 7000}},
		// DeepSeek's own field for its cache hits (they were charged at
		// the input price).
		"json served, deepseek's cache hits": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,"prompt_cache_hit_tokens":600,"prompt_cache_miss_tokens":400}}`, true)},
			rows: 1, want: want{status: spend.Served, in: 1000, out: 500, cached: 600, cost: 7000}},
		"json body never came": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json")},
			rows: 1, want: want{status: spend.Interrupted, cost: -1, estimated: true}},
		// A provider that reports no usage (a local server): the prompt
		// and the answer's text are estimated, as a stream's; it was
		// charged the worst case, all of max_tokens (the provider-wire
		// probe).
		"json without usage": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help you today?"},"finish_reason":"stop"}]}`, true)},
			rows: 1, want: want{status: spend.Served, cost: -3, estimated: true}},
		// A 2xx that was no answer: the client got 502, as for an error,
		// and the SDKs send it again; nothing is charged (a helper's
		// finding: each try was charged the worst case).
		"json not an object": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`garbage`, true)},
			rows: 1, want: want{status: spend.Failed}},
		// Usage the answer cannot have (max_tokens 100, an 8,000-token
		// window): charged as an answer without usage, never what it says
		// (the chaos probe's 10^12 tokens used up every budget; 2^63-1
		// wrapped to a negative count, free and breaking the report).
		"json usage beyond the request": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":1000000000000}}`, true)},
			rows: 1, want: want{status: spend.Served, cost: -1, estimated: true}},
		// Past the request's max_tokens but within what the model can
		// write: the provider wrote it (it read another limit, or none)
		// and bills it. Charged at the 100-token worst case, a client
		// sending max_tokens and max_completion_tokens paid for one token
		// of 8,000 (the red-team probe).
		"json output past max_tokens, within the model's": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5000}}`, true)},
			rows: 1, want: want{status: spend.Served, in: 10, out: 5000, cost: 50020}},
		"json usage too large for a count": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":9223372036854775807}}`, true)},
			rows: 1, want: want{status: spend.Served, cost: -1, estimated: true}},
		"json cached beyond the prompt": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "application/json"),
			respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":900}}}`, true)},
			rows: 1, want: want{status: spend.Served, cost: -1, estimated: true}},
		// Streamed, such counts were charged as they came (a negative one
		// made the request free): what was streamed is counted instead.
		"stream with negative usage": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk, false),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":-1000000000,"completion_tokens":-5}}`+"\n\ndata: [DONE]\n\n", true)},
			rows: 1, want: want{status: spend.Served, out: 1, estimated: true, skipRowChecks: true}},
		"stream with usage beyond the request": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk, false),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":1000000000000}}`+"\n\ndata: [DONE]\n\n", true)},
			rows: 1, want: want{status: spend.Served, out: 1, estimated: true, skipRowChecks: true}},
		"provider error": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("500", "application/json"),
			respBodyMsg(`{"error":{"message":"boom"}}`, true)},
			rows: 1, want: want{status: spend.Failed}},
		// The provider has read the prompt: it is charged, estimated.
		"no answer before the stream ended": {rows: 1, want: want{status: spend.Interrupted, estimated: true, cost: -2}},
		"stream complete": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk, false),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":3}}`+"\n\ndata: [DONE]\n\n", true)},
			rows: 1, want: want{status: spend.Served, in: 40, out: 3, cost: 110}},
		"stream cut": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"), respBodyMsg(oaiChunk, false)},
			rows: 1, want: want{status: spend.Interrupted, out: 1, estimated: true, skipRowChecks: true}},
		// The SDKs hang up once they read [DONE], ahead of the provider's
		// end of stream: a complete answer, not an interrupted one.
		"stream read to [DONE], then the client hung up": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk, false),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":3}}`+"\n\ndata: [DONE]\n\n", false)},
			rows: 1, want: want{status: spend.Served, in: 40, out: 3, cost: 110}},
		"stream ended by the provider's error": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(oaiChunk+`data: {"error":{"message":"overloaded","type":"server_error"}}`+"\n\n", true)},
			rows: 1, want: want{status: spend.Interrupted, out: 1, estimated: true, skipRowChecks: true}},
		// A count short of what was streamed (a stream cut after a
		// provisional count, as Anthropic's message_start gives 1 output
		// token): what was streamed, with the provider's prompt count.
		"stream cut after a short count": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":1}}`+"\n\n"+
				`data: {"choices":[{"index":0,"delta":{"content":"`+strings.Repeat("several words streamed before the cut ", 10)+`"}}]}`+"\n\n", false)},
			rows: 1, want: want{status: spend.Interrupted, in: 40, out: 20, estimated: true, skipRowChecks: true}},
		// Its cache reads with it: they were charged at the full input
		// price (the FinOps probe, an Anthropic stream the client left).
		"stream cut after a count with cache reads": {msgs: []*extprocv3.ProcessingRequest{respHeadersMsg("200", "text/event-stream"),
			respBodyMsg(`data: {"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":30}}}`+"\n\n"+
				`data: {"choices":[{"index":0,"delta":{"content":"`+strings.Repeat("several words streamed before the cut ", 10)+`"}}]}`+"\n\n", false)},
			rows: 1, want: want{status: spend.Interrupted, cached: 30, cost: -3, estimated: true}},
	} {
		for _, budgets := range []bool{false, true} {
			t.Run(name, func(t *testing.T) {
				rec := &rowsRecorder{}
				s := st // one state, its ledger and recorder set per case
				s.Spend, s.Ledger, s.Limited = rec, nil, false
				if budgets {
					s.Ledger, s.Limited = testLedger(t), true
				}
				p := &edge{filter: filter{state: s, log: zap.NewNop(), id: "decision-1"}, ctx: context.Background()}
				p.handle(headersMsg("POST", "/v1/chat/completions", false))
				if r := p.handle(bodyMsg(bodyFor(chat, tc.msgs))); r.GetImmediateResponse() != nil {
					t.Fatalf("refused: %v", r)
				}
				for _, m := range tc.msgs {
					p.handle(m)
				}
				p.finish()
				p.finish() // a second end records nothing more
				if len(rec.rows) != tc.rows {
					t.Fatalf("%d rows, want %d: %+v", len(rec.rows), tc.rows, rec.rows)
				}
				r := rec.rows[0]
				if r.DecisionID != "decision-1" || r.Model != "m" || r.Provider != "p" || r.Workspace != "default" || r.Time.IsZero() {
					t.Errorf("row %+v", r)
				}
				w := tc.want
				if r.Status != w.status || r.Estimated != w.estimated {
					t.Errorf("status %s estimated %v, want %s %v", r.Status, r.Estimated, w.status, w.estimated)
				}
				if r.TokensCached != w.cached {
					t.Errorf("cached tokens %d, want %d", r.TokensCached, w.cached)
				}
				if w.skipRowChecks {
					if r.Cost <= 0 || r.TokensOut < 1 || r.TokensOut < w.out || w.in > 0 && r.TokensIn != w.in {
						t.Errorf("an interrupted stream is charged what was generated, never zero: %+v, want %d in, %d+ out", r, w.in, w.out)
					}
					return
				}
				if w.cost == -2 { // the prompt, estimated
					if r.Cost <= 0 || r.TokensIn <= 0 || r.TokensOut != 0 {
						t.Errorf("the prompt is charged, estimated: %+v", r)
					}
					return
				}
				worst, _ := worstCase(p.class.InputTokens, []*catalog.Model{p.served}, p.out)
				if w.cost == -3 { // the prompt and the answer, estimated
					if r.Cost <= 0 || r.Cost >= worst || r.TokensIn <= 0 || r.TokensOut < 5 || !r.Estimated {
						t.Errorf("the answer is charged, estimated: %+v (worst case %d)", r, worst)
					}
					return
				}
				cost := w.cost
				if cost == -1 {
					cost, _ = worstCase(p.class.InputTokens, []*catalog.Model{p.served}, p.out)
					if cost <= 0 {
						t.Fatalf("no worst case computed")
					}
				}
				if (w.estimated && r.TokensIn <= 0) || (!w.estimated && (r.TokensIn != w.in || r.TokensOut != w.out)) || r.Cost != cost {
					t.Errorf("tokens %d/%d cost %d; want %d/%d cost %d", r.TokensIn, r.TokensOut, r.Cost, w.in, w.out, cost)
				}
				if budgets {
					bs, err := s.Ledger.Peek(context.Background(), &ledger.Request{})
					if err != nil {
						t.Fatal(err)
					}
					if used := bs.Budgets[0].Used; used != r.Cost || bs.Budgets[0].Reserved != 0 {
						t.Errorf("the budget was charged %d (reserved %d), the row says %d", used, bs.Budgets[0].Reserved, r.Cost)
					}
				}
			})
		}
	}
}

// TestNoUsageChargedAtTheServedModel: an answer without usage is charged
// its estimate at the prices of the model that served it, not of the
// dearest model the request might have failed over to (a helper's
// finding: 50 times more); one whose body never came, that model's worst
// case.
func TestNoUsageChargedAtTheServedModel(t *testing.T) {
	st := failoverState(t)
	rec := &rowsRecorder{}
	st.Spend, st.Ledger, st.Limited = rec, testLedger(t), true
	e := openStream(New(st, zap.NewNop()), "")
	e.do(headersMsg("POST", "/v1/chat/completions", false))
	e.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	e.do(respHeaders(":status", "200", "content-type", "application/json", "x-envoy-attempt-count", "1"))
	e.do(respBody(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help you today?"}}]}`, true))
	e.end()
	if len(rec.rows) != 1 || rec.rows[0].Model != "a1" {
		t.Fatalf("rows %+v, want one, served by a1", rec.rows)
	}
	a1, _ := st.Router.Catalog.Lookup("a1")
	if r := rec.rows[0]; !r.Estimated || r.Cost != ledger.FromEUR(a1.UsageEUR(catalog.Tokens{Input: int(r.TokensIn), Output: int(r.TokensOut)})) {
		t.Errorf("charged %d µEUR for %d/%d tokens, want a1's price of them", r.Cost, r.TokensIn, r.TokensOut)
	}
	// The body never came: a1's worst case.
	rec.rows = nil
	e = openStream(New(st, zap.NewNop()), "")
	e.do(headersMsg("POST", "/v1/chat/completions", false))
	e.do(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	e.do(respHeaders(":status", "200", "content-type", "application/json", "x-envoy-attempt-count", "1"))
	e.end()
	if len(rec.rows) != 1 || rec.rows[0].Model != "a1" {
		t.Fatalf("rows %+v, want one, served by a1", rec.rows)
	}
	// The plan is a1 then b1, at twice a1's prices.
	r := rec.rows[0]
	out := output{perChoice: 0, choices: 1}
	b1, _ := st.Router.Catalog.Lookup("b1")
	wantA1, _ := worstCase(int(r.TokensIn), []*catalog.Model{a1}, out)
	planWorst, _ := worstCase(int(r.TokensIn), []*catalog.Model{a1, b1}, out)
	if r.Cost != wantA1 || !r.Estimated || r.Status != spend.Interrupted || wantA1 >= planWorst {
		t.Errorf("charged %d µEUR (%s), want a1's worst case %d, under the plan's %d", r.Cost, r.Status, wantA1, planWorst)
	}
}

// TestTranslatedNoAnswerIsNotServed (a helper's finding): a provider's
// garbage 200, on a request whose answer is translated between wire
// formats, had become a 200 carrying an error object (the SDKs returned it
// as an answer) and was charged as served. It is the 502 plain chat gives,
// in the client's API's error shape, at no cost.
func TestTranslatedNoAnswerIsNotServed(t *testing.T) {
	for name, tc := range map[string]struct{ path, body, answer, shape string }{
		"chat to an Anthropic model, garbage": {"/v1/chat/completions", `{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`,
			`<html>oops</html>`, "error.code"},
		"chat to an Anthropic model, an error event with 200": {"/v1/chat/completions", `{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`,
			`{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`, "error.code"},
		"messages to a chat model": {"/v1/messages", `{"model":"chat","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`,
			`garbage`, "error.type"},
	} {
		t.Run(name, func(t *testing.T) {
			st := apisState(t)
			rec := &rowsRecorder{}
			st.Spend = rec
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "d"}, ctx: context.Background()}
			p.handle(headersMsg("POST", tc.path, false, "anthropic-version", "2023-06-01"))
			if r := p.handle(bodyMsg(tc.body)); r.GetImmediateResponse() != nil {
				t.Fatalf("refused: %s", r.GetImmediateResponse().Body)
			}
			p.handle(respHeadersMsg("200", "application/json"))
			r := p.handle(respBodyMsg(tc.answer, true)).GetImmediateResponse()
			if r == nil || r.Status.GetCode() != 502 || !strings.Contains(string(r.Body), "provider_bad_response") {
				t.Fatalf("want 502 provider_bad_response: %v", r)
			}
			if gjson.GetBytes(r.Body, tc.shape).String() == "" {
				t.Errorf("not in the client's error shape (%s): %s", tc.shape, r.Body)
			}
			p.finish()
			if len(rec.rows) != 1 || rec.rows[0].Status != spend.Failed || rec.rows[0].Cost != 0 {
				t.Errorf("rows %+v, want one failed at no cost", rec.rows)
			}
		})
	}
}

// testLedger has one global daily budget of 100 EUR.
func testLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	b, err := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ledger.NewLimits(nil, []ledger.BudgetRule{{Name: "all", Scope: ledger.ScopeGlobal, Limit: ledger.FromEUR(100), Period: ledger.PeriodDay}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(b, lim, ledger.Options{})
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// TestSpendNoRowWithoutDecision: a model listing, a refused request and a
// request refused by a budget leave no row.
func TestSpendNoRowWithoutDecision(t *testing.T) {
	rec := &rowsRecorder{}
	s := testState(t)
	s.Spend = rec
	run := func(msgs ...*extprocv3.ProcessingRequest) {
		p := &edge{filter: filter{state: s, log: zap.NewNop(), id: "d"}, ctx: context.Background()}
		for _, m := range msgs {
			p.handle(m)
		}
		p.finish()
	}
	run(headersMsg("GET", "/v1/models", true))
	run(headersMsg("POST", "/v1/chat/completions", false), bodyMsg(`{"model":"nope","messages":[{"role":"user","content":"x"}]}`))
	b, _ := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
	lim, _ := ledger.NewLimits(nil, nil, []ledger.RateRule{{Name: "none", Scope: ledger.ScopeWorkspace, RequestsPerMinute: 1}})
	s.Ledger, s.Limited = ledger.New(b, lim, ledger.Options{}), true
	defer s.Ledger.Close(context.Background())
	chat := bodyMsg(`{"model":"small","messages":[{"role":"user","content":"x"}]}`)
	run(headersMsg("POST", "/v1/chat/completions", false), chat, respHeadersMsg("503", "application/json")) // admitted: a row
	run(headersMsg("POST", "/v1/chat/completions", false), chat, respHeadersMsg("200", "application/json")) // 429 before it left: none
	if len(rec.rows) != 1 || rec.rows[0].Status != spend.Failed {
		t.Errorf("rows %+v, want the one admitted request's", rec.rows)
	}
}

// TestLargerThanTheLimitIsFinal (a helper's finding): a request larger
// than a whole token limit, or than a whole budget, never fits however
// long it waits; its 429 says so, with x-should-retry: false and no
// Retry-After (the SDKs waited and sent it again, to the same answer).
func TestLargerThanTheLimitIsFinal(t *testing.T) {
	for name, tc := range map[string]struct {
		budgets []ledger.BudgetRule
		rates   []ledger.RateRule
		now     time.Time
		code    string
		says    string
	}{
		"tokens": {rates: []ledger.RateRule{{Name: "tpm", Scope: ledger.ScopeWorkspace, TokensPerMinute: 1000}},
			code: "rate_limit_exceeded", says: `more than rate limit "tpm" allows in a whole minute (1000)`},
		"budget": {budgets: []ledger.BudgetRule{{Name: "tiny", Scope: ledger.ScopeGlobal, Limit: 100, Period: ledger.PeriodDay}},
			code: "budget_exceeded", says: `is more than the whole global budget "tiny"`},
		// In the day's last hour too: the window was guessed from the
		// time left, and a daily limit read "minute" (the time probe).
		"tokens per day, late": {rates: []ledger.RateRule{{Name: "tpd", Scope: ledger.ScopeWorkspace, TokensPerDay: 1000}},
			now:  time.Date(2025, 1, 1, 23, 30, 0, 0, time.UTC),
			code: "rate_limit_exceeded", says: `more than rate limit "tpd" allows in a whole day (1000)`},
	} {
		t.Run(name, func(t *testing.T) {
			s := pricedProvider(t, "sk-p")
			b, err := ledger.NewMemory(context.Background(), ledger.MemoryOptions{})
			if err != nil {
				t.Fatal(err)
			}
			lim, err := ledger.NewLimits(nil, tc.budgets, tc.rates)
			if err != nil {
				t.Fatal(err)
			}
			var opt ledger.Options
			if !tc.now.IsZero() {
				opt.Now = func() time.Time { return tc.now }
			}
			s.Ledger, s.Limited = ledger.New(b, lim, opt), true
			defer s.Ledger.Close(context.Background())
			p := &edge{filter: filter{state: s, log: zap.NewNop(), id: "d"}, ctx: context.Background()}
			p.handle(headersMsg("POST", "/v1/chat/completions", false))
			r := p.handle(bodyMsg(`{"model":"auto","max_tokens":5000,"messages":[{"role":"user","content":"hello"}]}`)).GetImmediateResponse()
			hs := setHeaders(r.GetHeaders())
			if r == nil || r.Status.GetCode() != 429 || gjson.GetBytes(r.Body, "error.code").String() != tc.code ||
				!strings.Contains(gjson.GetBytes(r.Body, "error.message").String(), tc.says) || hs["x-should-retry"] != "false" || hs["retry-after"] != "" {
				t.Fatalf("want a final 429 %s: %v %s", tc.code, hs, r.GetBody())
			}
		})
	}
}

// TestKeyLimitsThatDoNotCompileRefuse: a store key whose own limits the
// ledger cannot hold (a record the store's checks did not write) is
// refused, final, instead of being admitted with no limits at all.
func TestKeyLimitsThatDoNotCompileRefuse(t *testing.T) {
	s := pricedProvider(t, "sk-p")
	s.Ledger = testLedger(t)
	p := &edge{filter: filter{state: s, log: zap.NewNop(), id: "d"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	p.principal.KeyID = "tiny"
	p.principal.Limits = &config.Limits{Budgets: []config.Budget{{AmountEUR: 100, Period: "day"}, {AmountEUR: 5, Period: "fortnight"}},
		RateLimit: config.RateLimit{RequestsPerMinute: 1}}
	r := p.handle(bodyMsg(`{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`)).GetImmediateResponse()
	if r == nil || r.Status.GetCode() != 500 || gjson.GetBytes(r.Body, "error.code").String() != "key_limits_invalid" ||
		setHeaders(r.Headers)["x-should-retry"] != "false" {
		t.Fatalf("want 500 key_limits_invalid, final: %v", r)
	}
	if strings.Contains(string(r.Body), "fortnight") || strings.Contains(string(r.Body), "tiny") {
		t.Errorf("the answer names the record's details: %s", r.Body)
	}
}

// sendSpy is an ext_proc stream that plays messages and calls onSend with
// each answer as it is sent.
type sendSpy struct {
	grpc.ServerStream
	msgs   []*extprocv3.ProcessingRequest
	onSend func(*extprocv3.ProcessingResponse)
}

func (s *sendSpy) Context() context.Context { return context.Background() }

func (s *sendSpy) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *sendSpy) Send(r *extprocv3.ProcessingResponse) error { s.onSend(r); return nil }

// TestSettleAfterTheAnswer: the answer that carries the charge (the JSON
// body with its routing object) is sent before the spend row is written
// (and the ledger settled, which is a Redis round trip in a fleet), and
// the row is written once it has gone, before the stream ends.
func TestSettleAfterTheAnswer(t *testing.T) {
	st := testState(t)
	rows := &rowsRecorder{}
	st.Spend = rows
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	body := `{"model":"small","messages":[{"role":"user","content":"hello there"}]}`
	rowsWhenAnswered := -1
	s := &sendSpy{msgs: []*extprocv3.ProcessingRequest{
		headersMsg("POST", "/v1/chat/completions", false, "x-stellwerk-cluster", "provider_nokey"), bodyMsg(body),
		respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}`, true),
	}}
	s.onSend = func(r *extprocv3.ProcessingResponse) {
		if b := r.GetResponseBody().GetResponse().GetBodyMutation().GetBody(); b != nil {
			if !gjson.GetBytes(b, "routing.cost").Exists() {
				t.Errorf("the answer has no cost: %s", b)
			}
			rowsWhenAnswered = len(rows.rows)
		}
	}
	if err := serveEdge(context.Background(), s, p); err != nil {
		t.Fatal(err)
	}
	if rowsWhenAnswered != 0 {
		t.Errorf("%d spend rows written before the answer was sent", rowsWhenAnswered)
	}
	if len(rows.rows) != 1 || rows.rows[0].TokensOut != 5 {
		t.Fatalf("after the answer: %+v", rows.rows)
	}
	p.finish()
	if len(rows.rows) != 1 {
		t.Errorf("finish wrote the row again: %d rows", len(rows.rows))
	}
}

// TestWorstCaseCountsChoices: a request for n choices may be billed n
// answers, so the budgets hold n times the per-choice bound, the bound
// clamped to the model's own limit before it is multiplied (a completions
// request for 10 × 1,000 tokens on a model that writes 4,096 at most may
// write 10,000).
func TestWorstCaseCountsChoices(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
currency: {usd_to_eur: 1}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {env: P_KEY}}]
models: [{id: m, provider: p, context_window: 100000, max_output_tokens: 4096, price: {input_per_mtok: 0, output_per_mtok: 10},
  capabilities: [chat, completions, streaming]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(string) string { return "sk-p" })
	held := func(path, body string) ledger.MicroEUR { t.Helper(); return reserved(t, st, path, body) }
	const msgs = `"messages":[{"role":"user","content":"hello"}]`
	for name, tc := range map[string]struct {
		path, body string
		out        int // output tokens held, at 10 EUR per million
	}{
		"chat, one choice":        {"/v1/chat/completions", `{"model":"m","max_tokens":1000,` + msgs + `}`, 1000},
		"chat, five choices":      {"/v1/chat/completions", `{"model":"m","max_tokens":1000,"n":5,` + msgs + `}`, 5000},
		"chat, five, no bound":    {"/v1/chat/completions", `{"model":"m","n":5,` + msgs + `}`, 5 * 4096},
		"completions, ten":        {"/v1/completions", `{"model":"m","max_tokens":1000,"n":10,"prompt":"hello"}`, 10000},
		"completions, past bound": {"/v1/completions", `{"model":"m","max_tokens":5000,"n":2,"prompt":"hello"}`, 2 * 4096},
	} {
		t.Run(name, func(t *testing.T) {
			want := ledger.CeilEUR(float64(tc.out) * 10 / 1e6)
			if got := held(tc.path, tc.body); got != want {
				t.Errorf("held %d µEUR, want %d (%d output tokens)", got, want, tc.out)
			}
		})
	}
}

// TestWorstCaseCountsImages: each image a request sends holds the most one
// image can cost on the model (image_tokens), whatever the API it came in
// by: the prompt's token estimate reads text only, and a block budget
// admitted requests the provider then billed many times over (found by a
// helper: ten images a request, 95× a budget).
func TestWorstCaseCountsImages(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
currency: {usd_to_eur: 1}
providers: [{name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {env: P_KEY}}]
models: [{id: m, provider: p, context_window: 100000, max_output_tokens: 4096, image_tokens: 1000,
  price: {input_per_mtok: 10, output_per_mtok: 0}, capabilities: [chat, vision, streaming]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(string) string { return "sk-p" })
	held := func(path, body string) ledger.MicroEUR { t.Helper(); return reserved(t, st, path, body) }
	const img = `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`
	text := held("/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"}]}]}`)
	for name, tc := range map[string]struct {
		path, body string
		images     int
	}{
		"chat, three in one message": {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` +
			img + `,` + img + `,` + img + `]}]}`, 3},
		"chat, over two messages": {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` + img +
			`]},{"role":"user","content":[` + img + `]}]}`, 2},
		"responses": {"/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"what is this"},` +
			`{"type":"input_image","image_url":"https://example.com/a.png"},{"type":"input_image","image_url":"https://example.com/b.png"}]}]}`, 2},
	} {
		t.Run(name, func(t *testing.T) {
			// 1,000 tokens an image at 10 EUR per million: 10,000 µEUR each.
			got := held(tc.path, tc.body)
			if diff := got - text; diff < ledger.MicroEUR(tc.images*10000) || diff > ledger.MicroEUR(tc.images*10000+1000) {
				t.Errorf("held %d µEUR, %d without images: want %d more", got, text, tc.images*10000)
			}
		})
	}
}

// reserved is the worst case a request to path with body holds, st given
// a fresh ledger that limits it.
func reserved(t *testing.T, st *State, path, body string) ledger.MicroEUR {
	t.Helper()
	st.Spend, st.Ledger, st.Limited = &rowsRecorder{}, testLedger(t), true
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "decision-held"}, ctx: context.Background()}
	p.handle(headersMsg("POST", path, false))
	if r := p.handle(bodyMsg(body)); r.GetImmediateResponse() != nil {
		t.Fatalf("%s refused: %s", body, r.GetImmediateResponse().Body)
	}
	bs, err := st.Ledger.Peek(context.Background(), &ledger.Request{})
	if err != nil {
		t.Fatal(err)
	}
	return bs.Budgets[0].Reserved
}

// TestJSONAnswerCutIsNoSuccess: a JSON answer whose body never came whole
// (the provider broke off after its headers) reads as answer_incomplete in
// the record and the metrics, not as a clean 2xx (the chaos probe).
func TestJSONAnswerCutIsNoSuccess(t *testing.T) {
	st := pricedProvider(t, "sk-p")
	st.Spend = &rowsRecorder{}
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "decision-1"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	p.handle(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	p.handle(respHeadersMsg("200", "application/json"))
	p.finish()
	if status, code := p.outcome(); status != 200 || code != "answer_incomplete" {
		t.Errorf("outcome %d %q", status, code)
	}
	q := &edge{filter: filter{state: st, log: zap.NewNop(), id: "decision-2"}, ctx: context.Background()}
	q.handle(headersMsg("POST", "/v1/chat/completions", false))
	q.handle(bodyMsg(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	q.handle(respHeadersMsg("200", "application/json"))
	q.handle(respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}`, true))
	q.finish()
	if status, code := q.outcome(); status != 200 || code != "" {
		t.Errorf("a whole answer: outcome %d %q", status, code)
	}
}

// TestWorstCaseCountsPDFs: each page of a PDF sent inline holds what
// count_tokens counts it at (1,500 tokens of text and the model's image
// bound), whatever the API it came in by, and a PDF whose pages cannot be
// counted so holds the model's whole context window: a block budget
// admitted a burst of 3 MiB PDFs the provider billed 19 times it (an
// attacker's pass). A file by id, which stellwerk cannot read, holds
// nothing (budgets.md says so).
func TestWorstCaseCountsPDFs(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: m}
currency: {usd_to_eur: 1}
providers:
- {name: p, base_url: "https://p.example.com/v1", residency: eu, credential: {env: P_KEY}}
- {name: a, base_url: "https://a.example.com/v1", wire_format: anthropic, residency: eu, credential: {env: P_KEY}}
models:
- {id: m, provider: p, context_window: 100000, max_output_tokens: 4096, image_tokens: 1000,
  price: {input_per_mtok: 10, output_per_mtok: 0}, capabilities: [chat, responses, vision, files, streaming]}
- {id: a, provider: a, context_window: 100000, max_output_tokens: 4096, image_tokens: 1000,
  price: {input_per_mtok: 10, output_per_mtok: 0}, capabilities: [chat, vision, files, streaming]}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := stateFor(t, c, func(string) string { return "sk-p" })
	held := func(path, body string) ledger.MicroEUR { t.Helper(); return reserved(t, st, path, body) }
	pdf := func(pages int) string {
		var b strings.Builder
		b.WriteString("%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n")
		for i := range pages {
			fmt.Fprintf(&b, "%d 0 obj <</Type /Page /Parent 2 0 R>> endobj\n", 3+i)
		}
		return base64.StdEncoding.EncodeToString([]byte(b.String()))
	}
	crafted := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4\n<</Type /Page>> <</Type /P#61ge>> <</Type /P#61ge>>"))
	chat := func(data string) string {
		return `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` +
			`{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,` + data + `"}}]}]}`
	}
	text := held("/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"}]}]}`)
	for name, tc := range map[string]struct {
		path, body string
		tokens     int // held beyond the text
	}{
		"chat, three pages": {"/v1/chat/completions", chat(pdf(3)), 3 * 2500},
		"chat, two files": {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` +
			`{"type":"file","file":{"file_data":"data:application/pdf;base64,` + pdf(2) + `"}},{"type":"file","file":{"file_data":"data:application/pdf;base64,` + pdf(5) + `"}}]}]}`, 7 * 2500},
		"chat, a PDF typed otherwise": {"/v1/chat/completions", strings.Replace(chat(pdf(4)), "application/pdf", "application/octet-stream", 1), 4 * 2500},
		"chat, uncountable":           {"/v1/chat/completions", chat(crafted), 100000},
		"chat, not base64":            {"/v1/chat/completions", chat("%%%"), 100000},
		"chat, by file id":            {"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"file","file":{"file_id":"file-1"}}]}]}`, 0},
		"messages, document": {"/v1/messages", `{"model":"a","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` +
			`{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"` + pdf(6) + `"}}]}]}`, 6 * 2500},
		"responses, input_file": {"/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"what is this"},` +
			`{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,` + pdf(2) + `"}]}]}`, 2 * 2500},
	} {
		t.Run(name, func(t *testing.T) {
			// 10 EUR per million input tokens: 10 µEUR a token. The
			// text's estimate differs by the API's framing and the file's
			// name: a margin of 1,000 µEUR, 100 tokens.
			got := held(tc.path, tc.body)
			if diff := got - text; diff < ledger.MicroEUR(tc.tokens*10) || diff > ledger.MicroEUR(tc.tokens*10+1000) {
				t.Errorf("held %d µEUR, %d without the file: want %d more", got, text, tc.tokens*10)
			}
		})
	}
	// Pages past the context window (50 at 2,500 tokens) fit no model:
	// refused before anything is held (the window counts them as the
	// estimate does since 2026-12-07; they were held at the window).
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "decision-past"}, ctx: context.Background()}
	p.handle(headersMsg("POST", "/v1/chat/completions", false))
	r := p.handle(bodyMsg(chat(pdf(50)))).GetImmediateResponse()
	if r == nil || r.GetStatus().GetCode() != 400 || !strings.Contains(string(r.Body), "context_length_exceeded") {
		t.Errorf("50 pages past the window: %v", r)
	}
}

// TestEstimatesCountImages: every charge made without the provider's count
// takes the prompt's images at the served model's bound, as its worst
// case and an answer without usage do: a stream without usage and a
// client gone before the answer were charged the text alone (the media
// cost-estimate helper's note).
func TestEstimatesCountImages(t *testing.T) {
	st := failoverState(t)
	rec := &rowsRecorder{}
	st.Spend, st.Ledger, st.Limited = rec, testLedger(t), true
	a1, _ := st.Router.Catalog.Lookup("a1")
	const img = `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`
	tokensIn := func(images string, answer bool) int64 {
		t.Helper()
		rec.rows = nil
		e := openStream(New(st, zap.NewNop()), "")
		e.do(headersMsg("POST", "/v1/chat/completions", false))
		e.do(bodyMsg(`{"model":"auto","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hello"}` + images + `]}]}`))
		if answer {
			e.do(respHeaders(":status", "200", "content-type", "text/event-stream", "x-envoy-attempt-count", "1"))
			e.do(respBody("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi there\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", true))
		}
		e.end()
		if len(rec.rows) != 1 || !rec.rows[0].Estimated {
			t.Fatalf("rows %+v, want one estimated", rec.rows)
		}
		return rec.rows[0].TokensIn
	}
	for _, answer := range []bool{true, false} {
		if text, two := tokensIn("", answer), tokensIn(","+img+","+img, answer); two-text != int64(2*a1.ImageTokens) {
			t.Errorf("answered %v: %d prompt tokens with two images, %d without: want %d more", answer, two, text, 2*a1.ImageTokens)
		}
	}
}

// TestSpendRowEndUserAndTag: a row keeps the end user the request named
// and the value of the metadata member spend.tag names, from the body or
// the x-stellwerk-metadata header, on every API, bounded (spend.Label);
// without spend.tag there is no tag.
func TestSpendRowEndUserAndTag(t *testing.T) {
	long := strings.Repeat("u", 300) // past chat's own 256-byte User: still attributed, cut
	for name, tc := range map[string]struct {
		path, body string
		header     []string
		tagKey     string
		user, tag  string
	}{
		"chat": {path: "/v1/chat/completions", tagKey: "project",
			body: `{"model":"m","user":"ana@example.com","metadata":{"project":"p1","other":"x"},"messages":[{"role":"user","content":"hi"}]}`,
			user: "ana@example.com", tag: "p1"},
		"no spend.tag": {path: "/v1/chat/completions",
			body: `{"model":"m","user":"u1","metadata":{"project":"p1"},"messages":[{"role":"user","content":"hi"}]}`, user: "u1"},
		"neither": {path: "/v1/chat/completions", tagKey: "project",
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		"metadata header": {path: "/v1/chat/completions", tagKey: "project", header: []string{"x-stellwerk-metadata", `{"project":"from-header"}`},
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, tag: "from-header"},
		"long user cut": {path: "/v1/chat/completions",
			body: `{"model":"m","user":"` + long + `","messages":[{"role":"user","content":"hi"}]}`, user: long[:spend.MaxLabel]},
		"control character": {path: "/v1/chat/completions", tagKey: "project",
			body: `{"model":"m","user":"a\nb","metadata":{"project":"p\u0007"},"messages":[{"role":"user","content":"hi"}]}`},
		"user not a string": {path: "/v1/chat/completions",
			body: `{"model":"m","user":null,"messages":[{"role":"user","content":"hi"}]}`},
		"responses": {path: "/v1/responses", tagKey: "project",
			body: `{"model":"m","user":"u-resp","metadata":{"project":"p2"},"input":"hello"}`, user: "u-resp", tag: "p2"},
		"messages": {path: "/v1/messages",
			body: `{"model":"m","max_tokens":10,"metadata":{"user_id":"u-anth"},"messages":[{"role":"user","content":"hello"}]}`, user: "u-anth"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := &rowsRecorder{}
			s := pricedProvider(t, "sk-p")
			s.Spend, s.SpendTag = rec, tc.tagKey
			p := &edge{filter: filter{state: s, log: zap.NewNop(), id: "decision-1"}, ctx: context.Background()}
			p.handle(headersMsg("POST", tc.path, false, tc.header...))
			if r := p.handle(bodyMsg(tc.body)); r.GetImmediateResponse() != nil {
				t.Fatalf("refused: %v", r)
			}
			p.handle(respHeadersMsg("503", "application/json"))
			p.finish()
			if len(rec.rows) != 1 {
				t.Fatalf("%d rows", len(rec.rows))
			}
			if r := rec.rows[0]; r.EndUser != tc.user || r.Tag != tc.tag {
				t.Errorf("end user %q tag %q, want %q %q", r.EndUser, r.Tag, tc.user, tc.tag)
			}
		})
	}
}
