package extproc

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/health"
	"go.uber.org/zap"
)

// providerAnswer is the provider's answer headers: status, content type,
// then name/value pairs.
func providerAnswer(status, ctype string, kv ...string) *extprocv3.ProcessingRequest {
	m := respHeadersMsg(status, ctype)
	hs := m.GetResponseHeaders().GetHeaders()
	for i := 0; i+1 < len(kv); i += 2 {
		hs.Headers = append(hs.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

// TestHostileAnswerHeaders: what a provider's answer headers may not do
// (the hostile-upstream probe): have the SDK retry a 400, pass a
// Retry-After or a caching rule on an answer, hand the client a request id
// of any length and text, pass a redirect on, or answer an event stream
// to a request for one JSON answer.
func TestHostileAnswerHeaders(t *testing.T) {
	long := string(make([]byte, 200))
	for name, tc := range map[string]struct {
		stream  bool
		answer  *extprocv3.ProcessingRequest
		status  int32    // an immediate answer's, 0: none
		removed []string // from the provider's answer
		kept    []string // not removed
		set     map[string]string
	}{
		"x-should-retry on a 400":       {answer: providerAnswer("400", "application/json", "x-should-retry", "true"), removed: []string{"x-should-retry"}},
		"x-should-retry on a 200":       {answer: providerAnswer("200", "application/json", "x-should-retry", "true"), removed: []string{"x-should-retry"}},
		"retry-after on a 200":          {answer: providerAnswer("200", "application/json", "retry-after", "999999999"), removed: []string{"retry-after"}},
		"caching rules":                 {answer: providerAnswer("200", "application/json", "cache-control", "public, max-age=31536000", "vary", "*"), removed: []string{"cache-control", "vary"}},
		"a plain request id passes":     {answer: providerAnswer("200", "application/json", "x-request-id", "req_abc-123"), kept: []string{"x-request-id"}},
		"a long request id is replaced": {answer: providerAnswer("200", "application/json", "x-request-id", "r"+long), set: map[string]string{header.RequestID: "decision-1"}},
		"markup in a request id":        {answer: providerAnswer("200", "application/json", "x-request-id", "<script>x</script>"), set: map[string]string{header.RequestID: "decision-1"}},
		"an event stream for JSON":      {answer: providerAnswer("200", "text/event-stream"), status: 502},
		"an event stream for a stream":  {stream: true, answer: providerAnswer("200", "text/event-stream")},
		"JSON for a stream":             {stream: true, answer: providerAnswer("200", "application/json")},
		"a redirect":                    {answer: providerAnswer("302", "text/html", "location", "https://elsewhere.example/"), status: 502},
	} {
		t.Run(name, func(t *testing.T) {
			p := echoEdge(t, tc.stream)
			r := p.handle(tc.answer)
			if got := r.GetImmediateResponse().GetStatus().GetCode(); int32(got) != tc.status {
				t.Fatalf("immediate status %d, want %d: %v", got, tc.status, r)
			}
			if tc.status != 0 {
				return
			}
			mut := r.GetResponseHeaders().GetResponse().GetHeaderMutation()
			for _, k := range tc.removed {
				if !slices.Contains(mut.GetRemoveHeaders(), k) {
					t.Errorf("%s not removed: %v", k, mut.GetRemoveHeaders())
				}
			}
			for _, k := range tc.kept {
				if slices.Contains(mut.GetRemoveHeaders(), k) {
					t.Errorf("%s removed", k)
				}
			}
			hs := setHeaders(mut)
			for k, v := range tc.set {
				if hs[k] != v {
					t.Errorf("%s: %q, want %q", k, hs[k], v)
				}
			}
		})
	}
}

// TestBrokenBodyCounts: a JSON success whose body never came whole (the
// provider closed short of its Content-Length, or dripped it until
// request_timeout) counts against the provider; one that came whole ends
// its run of failures.
func TestBrokenBodyCounts(t *testing.T) {
	pinned := func() *edge { // a plan of one, which goes to the provider's cluster
		st := failoverState(t)
		st.Router.Health = health.New(health.Policy{FailuresBeforeCooldown: 3, Cooldown: time.Minute, MaxCooldown: time.Minute})
		p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "decision-1", seen: &attemptLog{}}, ctx: context.Background()}
		p.handle(headersMsg("POST", "/v1/chat/completions", false))
		if r := p.handle(bodyMsg(`{"model":"a1","messages":[{"role":"user","content":"hi"}]}`)); r.GetImmediateResponse() != nil || len(p.plan) != 1 {
			t.Fatalf("refused, or not a plan of one (%d): %v", len(p.plan), r)
		}
		return p
	}
	p := pinned()
	p.handle(respHeadersMsg("200", "application/json"))
	p.finish()
	if ss := p.state.Router.Health.Snapshot(); len(ss) != 1 || ss[0].Provider != "a" || ss[0].ConsecutiveFailures != 1 {
		t.Fatalf("health after a broken body: %+v", ss)
	}
	p = pinned()
	p.handle(respHeadersMsg("200", "application/json"))
	p.handle(respBodyMsg(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, true))
	p.finish()
	for _, s := range p.state.Router.Health.Snapshot() {
		if s.ConsecutiveFailures != 0 {
			t.Errorf("health after a whole answer: %+v", s)
		}
	}
}
