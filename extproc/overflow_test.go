package extproc

import (
	"strings"
	"testing"
	"time"

	extprocv3conf "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/health"
)

// overflowState has three providers: "a" (a 200k window), "b" (128k) and
// "c" (1M).
func overflowState(t *testing.T) *State {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: a1}
providers:
  - {name: a, base_url: "https://a.example.com/v1", residency: us, credential: {env: KEY}}
  - {name: b, base_url: "https://b.example.com/v1", residency: us, credential: {env: KEY}}
  - {name: c, base_url: "https://c.example.com/v1", residency: us, credential: {env: KEY}}
models:
  - {id: a1, provider: a, context_window: 200000}
  - {id: b1, provider: b, context_window: 128000}
  - {id: c1, provider: c, context_window: 1000000}
`))
	if err != nil {
		t.Fatal(err)
	}
	return stateFor(t, c, func(string) string { return "sk-key" })
}

const (
	openAIOverflow = `{"error":{"message":"This model's maximum context length is 200000 tokens. However, your messages resulted in 207508 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`
	otherBadReq    = `{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}`
)

// TestEgressContextOverflow: a provider's answer that the prompt does not
// fit its model's window is marked for Envoy's retry (header.Overflow) when
// a later model of the plan has a larger window, recorded as a context
// overflow and not the provider's failure; the next attempt whose window is
// not larger is skipped, nothing sent; any other 400, or an overflow with
// nothing larger after it, reaches the client as it is.
func TestEgressContextOverflow(t *testing.T) {
	st := overflowState(t)
	st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 1, Cooldown: time.Minute, MaxCooldown: time.Minute})
	cat := st.Router.Catalog
	model := func(id string) *catalog.Model { m, _ := cat.Lookup(id); return m }
	plan := encodePlan("dec", []*catalog.Model{model("a1"), model("b1"), model("c1")})
	seen := &attemptLog{}
	attemptOn := func(provider string) *egress {
		return &egress{filter: filter{state: st, log: zap.NewNop(), seen: seen}, provider: provider}
	}
	body := `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`
	send := func(p *egress) *extprocv3.ProcessingResponse {
		p.handle(headersMsg("POST", "/v1/chat/completions", false, header.Plan, plan))
		return p.handle(bodyMsg(body))
	}
	overflowMarked := func(r *extprocv3.ProcessingResponse) bool {
		return setHeaders(r.GetResponseBody().GetResponse().GetHeaderMutation())[header.Overflow] != ""
	}

	seen.open("dec", 3)
	p := attemptOn("a")
	if r := send(p); r.GetImmediateResponse() != nil {
		t.Fatalf("first attempt not sent: %v", r)
	}
	r := p.handle(respHeadersMsg("400", "application/json"))
	if r.GetModeOverride().GetResponseBodyMode() != extprocv3conf.ProcessingMode_BUFFERED_PARTIAL {
		t.Fatalf("a 400 with a larger model after it is not read: %v", r)
	}
	if !overflowMarked(p.handle(respBodyMsg(openAIOverflow, true))) {
		t.Fatal("the overflow is not marked for a retry")
	}
	if got := st.Router.Health.Snapshot(); len(got) != 0 {
		t.Errorf("an overflow counted against the provider: %+v", got)
	}
	// b1's window (128k) is not larger than a1's: skipped, marked again.
	p = attemptOn("b")
	r = send(p)
	if ir := r.GetImmediateResponse(); ir == nil || setHeaders(ir.GetHeaders())[header.Overflow] == "" {
		t.Fatalf("the smaller model was not skipped: %v", r)
	}
	got := seen.take("dec")
	if got[0].Outcome != outcomeOverflow || got[0].Status != 400 || got[1].Outcome != "not_sent" {
		t.Errorf("attempts %+v", got)
	}

	// Another 400 passes on, as the provider's answer.
	seen.open("dec", 3)
	p = attemptOn("a")
	send(p)
	p.handle(respHeadersMsg("400", "application/json"))
	if r := p.handle(respBodyMsg(otherBadReq, true)); overflowMarked(r) {
		t.Error("a 400 about a parameter is marked as an overflow")
	}
	if got := seen.take("dec"); got[0].Outcome != "rejected" {
		t.Errorf("attempts %+v", got)
	}

	// The last model, c1, has nothing larger after it: its 400 is not read.
	seen.open("dec", 3)
	p = attemptOn("c")
	send(p)
	if r := p.handle(respHeadersMsg("400", "application/json")); r.GetModeOverride() != nil {
		t.Errorf("read with nothing larger after it: %v", r)
	}
	seen.take("dec")
}
