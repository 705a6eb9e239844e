package decision

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
)

// windowRouter has three vision models of growing windows and output
// limits, the cheapest the smallest; the baseline is mid-128k.
func windowRouter(t testing.TB) *Router {
	t.Helper()
	r, _ := libraryRouter(t, `
routing: {default_model: small-8k, baseline_model: mid-128k}
currency: {usd_to_eur: 1}
providers:
  - {name: eu, base_url: "http://127.0.0.1:9001/v1", residency: eu}
models:
  - {id: small-8k, provider: eu, context_window: 8192, max_output_tokens: 4096, capabilities: [vision, streaming], price: {input_per_mtok: 0.1, output_per_mtok: 0.4}, quality: {default: 0.7}}
  - {id: mid-128k, provider: eu, context_window: 128000, max_output_tokens: 16384, capabilities: [vision, streaming], price: {input_per_mtok: 1, output_per_mtok: 4}, quality: {default: 0.7}}
  - {id: big-1m, provider: eu, context_window: 1000000, max_output_tokens: 32768, capabilities: [vision, streaming], price: {input_per_mtok: 2, output_per_mtok: 8}, quality: {default: 0.7}}
workspaces:
  - {name: default}
`)
	return r
}

func routeBody(t *testing.T, r *Router, body string) (*Result, error) {
	t.Helper()
	return r.Route(context.Background(), Request{Body: []byte(body), DecisionID: "d", Principal: auth.Principal{Workspace: "default"}})
}

// longChat is a chat request whose prompt is estimated at more than
// 128,000 tokens and less than 1,000,000, with a request policy ("" for
// none).
func longChat(pol string) string { return longChatOf(30000, pol) }

// longChatOf is a chat request of n times "lorem ipsum dolor sit amet ".
func longChatOf(n int, pol string) string {
	if pol != "" {
		pol = `"policy":` + pol + `,`
	}
	return `{"model":"auto",` + pol + `"max_tokens":100,"messages":[{"role":"user","content":"` +
		strings.Repeat("lorem ipsum dolor sit amet ", n) + `"}]}`
}

// TestWindowCountsImages: the context window holds the request's images
// at each model's image_tokens, as its estimated cost does: 60 images
// (162,000 tokens at the default 2,700) fit neither the 8,192 nor the
// 128,000 window. They went to small-8k, the cheapest, priced at 162,000
// tokens of input.
func TestWindowCountsImages(t *testing.T) {
	r := windowRouter(t)
	res, err := routeBody(t, r, mediaChat(60, "", `{"optimize":"cost"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Selection.Model.ID != "big-1m" {
		t.Errorf("60 images went to %s, want big-1m", res.Selection.Model.ID)
	}
	for _, v := range res.Selection.Table() {
		if (v.ID == "small-8k" || v.ID == "mid-128k") && !strings.HasPrefix(v.Reason, "context: needs about "+strconv.Itoa(res.Class.InputTokens+60*2700+100)) {
			t.Errorf("%s: %s %q, want rejected for its window", v.ID, v.Verdict, v.Reason)
		}
	}
	// Two images fit small-8k: it is still chosen.
	if res, err := routeBody(t, r, mediaChat(2, "", `{"optimize":"cost"}`)); err != nil || res.Selection.Model.ID != "small-8k" {
		t.Errorf("two images: %v %v", res.Selection.Model, err)
	}
}

// TestTooLongForEveryModelAllowed: a prompt the policy leaves only too
// small models for is the client's 400 context_length_exceeded naming the
// largest window it may use, not a 503 no_eligible_model (the SDK raised
// InternalServerError); one that fits an allowed model is served by it.
func TestTooLongForEveryModelAllowed(t *testing.T) {
	r := windowRouter(t)
	_, err := routeBody(t, r, longChat(`{"allow":["small-8k","mid-128k"]}`))
	e, ok := err.(*apierr.Error)
	if !ok || e.Code != "context_length_exceeded" || apierr.HTTPStatus(e) != 400 || e.Param != "messages" || !e.Final {
		t.Fatalf("allowed only too small models: %#v", err)
	}
	if !strings.Contains(e.Message, "more than the largest context window of the models this request may use (128000 tokens)") {
		t.Errorf("message: %s", e.Message)
	}
	res, err := routeBody(t, r, longChat(`{"allow":["small-8k","big-1m"]}`))
	if err != nil || res.Selection.Model.ID != "big-1m" {
		t.Errorf("an allowed model fits: %v", err)
	}
	// A policy reason beside the too small ones stays the 503 naming it.
	_, err = routeBody(t, r, longChat(`{"allow":["small-8k","big-1m"],"max_cost":0.000001}`))
	if e, ok := err.(*apierr.Error); !ok || e.Code != "no_eligible_model" {
		t.Errorf("big-1m over max_cost: %v", err)
	}
}

// TestOutputAtTheModelsLimit: the window, the estimated cost and max_cost
// take the output a model is sent, the client's max_tokens at most its
// max_output_tokens: mid-128k (16,384) pinned with max_tokens 130000 was
// refused "needs about 130013 tokens, window is 128000", and max_cost 0.1
// refused a request sent at 0.0655 EUR by its 0.40 for 100,000 tokens.
func TestOutputAtTheModelsLimit(t *testing.T) {
	r := windowRouter(t)
	chat := func(model string, maxTokens int, pol string) string {
		if pol != "" {
			pol = `"policy":` + pol + `,`
		}
		return `{"model":"` + model + `",` + pol + `"max_tokens":` + strconv.Itoa(maxTokens) + `,"messages":[{"role":"user","content":"hi"}]}`
	}
	res, err := routeBody(t, r, chat("mid-128k", 130000, ""))
	if err != nil || res.Selection.Model.ID != "mid-128k" {
		t.Fatalf("pinned, max_tokens 130000: %v", err)
	}
	m, _ := r.Catalog.Lookup("mid-128k")
	if want := m.CostEUR(res.Class.InputTokens, 16384); !near(res.Selection.EstimatedCostEUR, want) {
		t.Errorf("estimated %g EUR, want %g (16,384 tokens of output)", res.Selection.EstimatedCostEUR, want)
	}
	res, err = routeBody(t, r, chat("mid-128k", 100000, `{"max_cost":0.1}`))
	if err != nil || res.Selection.Model.ID != "mid-128k" {
		t.Errorf("max_cost 0.1, max_tokens 100000: %v", err)
	}
	// Over the window with the output the model is sent: refused, the
	// client's own max_tokens quoted.
	long := strings.Replace(longChat(""), `"max_tokens":100`, `"max_tokens":200000`, 1)
	_, err = routeBody(t, r, strings.Replace(long, `"auto"`, `"small-8k"`, 1))
	if e, ok := err.(*apierr.Error); !ok || e.Code != "context_length_exceeded" || !strings.Contains(e.Message, "window is 8192") {
		t.Errorf("pinned small-8k, too long: %v", err)
	}
	_, err = routeBody(t, r, strings.Replace(longChatOf(250000, ""), `"max_tokens":100`, `"max_tokens":200000`, 1))
	if e, ok := err.(*apierr.Error); !ok || e.Code != "context_length_exceeded" || !strings.Contains(e.Message, "its max_tokens of 200000 is lowered to it") {
		t.Errorf("too long for every model: %v", err)
	}
}

// TestNoSavingAgainstABaselineTooSmall: a request the baseline's window
// does not take claims no saving against it (the routing object read
// "saving":{"baseline_model":"mid-128k","eur":-0.150088}); one it takes
// does.
func TestNoSavingAgainstABaselineTooSmall(t *testing.T) {
	r := windowRouter(t)
	res, err := routeBody(t, r, longChat(""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Baseline != nil || res.BaselineCostEUR != 0 {
		t.Errorf("baseline %v at %g EUR for a prompt of %d tokens", res.Baseline, res.BaselineCostEUR, res.Class.InputTokens)
	}
	res, err = routeBody(t, r, mediaChat(60, "", ""))
	if err != nil || res.Baseline != nil {
		t.Errorf("60 images: %v, baseline %v", err, res.Baseline)
	}
	res, err = routeBody(t, r, mediaChat(2, "", ""))
	if err != nil || res.Baseline == nil || res.Baseline.ID != "mid-128k" || res.BaselineCostEUR <= 0 {
		t.Errorf("two images: %v, baseline %v", err, res.Baseline)
	}
}

// TestReplayBeforeVersion7KeepsTheClientsBound: a record of inputs version
// 6 replays as it was decided, its window and its estimate at the client's
// max_tokens; one of this version replays at the model's limit.
func TestReplayBeforeVersion7KeepsTheClientsBound(t *testing.T) {
	r := windowRouter(t)
	req := Request{Body: []byte(`{"model":"mid-128k","max_tokens":50000,"messages":[{"role":"user","content":"hi"}]}`), DecisionID: "d",
		Principal: auth.Principal{Workspace: "default"}, Record: true}
	res, err := r.Route(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := r.Catalog.Lookup("mid-128k")
	for v, out := range map[int]int{InputsVersion: 16384, 6: 50000} {
		in := *res.ReplayInputs(&req)
		in.V = v
		got, err := r.Replay(context.Background(), &in, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.CostEUR(res.Class.InputTokens, out); !near(got.Selection.EstimatedCostEUR, want) {
			t.Errorf("version %d: estimated %g EUR, want %g (%d of output)", v, got.Selection.EstimatedCostEUR, want, out)
		}
	}
}
