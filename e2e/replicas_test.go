package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// The proof of issue 13 across replicas: two stellwerk replicas, each
// behind its own Envoy as a platform runs them behind a load balancer,
// sharing one Redis (budgets, rate limits) and one PostgreSQL (virtual
// keys). Requests are spread over both Envoys.

// usageCost is what a provider's recorded usage costs at a model's catalog
// price, in EUR (the tests set USDToEUR to 1).
func usageCost(u *mockllm.Usage, p config.Price) float64 {
	if u == nil {
		return 0
	}
	return (float64(u.PromptTokens)*p.InputPerMTok + float64(u.CompletionTokens)*p.OutputPerMTok) / 1e6
}

// budgetOf reads one budget from GET /admin/budgets on a replica once no
// reservation is held against it any more (a stream's settlement can come
// a moment after its client saw the end).
func budgetOf(t *testing.T, s *harness.Stack, query, name string) (used, reserved float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := adminJSON(t, s, "/admin/budgets?"+query)
		budgets, _ := b["budgets"].([]any)
		found := false
		for _, x := range budgets {
			if m := x.(map[string]any); m["name"] == name {
				used, reserved, found = m["used_eur"].(float64), m["reserved_eur"].(float64), true
			}
		}
		if !found {
			t.Fatalf("no budget %q in /admin/budgets?%s: %v", name, query, b)
		}
		if reserved == 0 || time.Now().After(deadline) {
			return used, reserved
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freshMinute waits, if need be, for a minute with at least need left:
// rate-limit windows are fixed minutes.
func freshMinute(need time.Duration) {
	if rest := time.Minute - time.Duration(time.Now().Second())*time.Second; rest < need {
		time.Sleep(rest + time.Second)
	}
}

// TestReplicasBudgetExact (issue 13): 200 concurrent requests spread over
// two replicas on one Redis, against a budget that holds exactly 7 of
// their worst cases while all are in flight: exactly 7 reach the provider,
// 193 get 429 budget_exceeded; afterwards both replicas show the budget
// used at exactly the provider's recorded usage × the catalog price.
func TestReplicasBudgetExact(t *testing.T) {
	t.Parallel()
	f := harness.StartFleet(t, 2, budgetOptions())
	p := f.Providers["p"]
	// Every admitted request is still in flight when the last one arrives.
	p.SetBehavior(mockllm.Behavior{FirstByteDelay: 2 * time.Second})
	codes, bodies, hdrs := fireSpread(t, f.Replicas, "sk-team-a", 200)
	ok, refused, answered := tallyBudget(t, codes, bodies, hdrs)
	perReplica := [2]int{}
	for i, c := range codes {
		if c == 200 {
			perReplica[i%2]++
		}
	}
	recs := p.Requests()
	if ok != 7 || refused != 193 || len(recs) != 7 {
		t.Fatalf("%d answered, %d refused, provider got %d requests; want 7, 193, 7", ok, refused, len(recs))
	}
	price := f.Replicas[0].Config.Models[0].Price
	var spent float64
	for _, r := range recs {
		if r.Usage == nil {
			t.Fatalf("the provider recorded no usage for an answered request")
		}
		spent += usageCost(r.Usage, price)
	}
	if math.Abs(spent-answered) > 1e-9 {
		t.Errorf("the answers' routing cost sums to %v EUR, the provider's usage to %v EUR", answered, spent)
	}
	for _, s := range f.Replicas {
		used, reserved := budgetOf(t, s, "workspace=default&team=a", "default-daily")
		if math.Abs(used-spent) > 1e-6 || reserved != 0 {
			t.Errorf("%s: budget shows used %v EUR, reserved %v; the provider's usage costs %v EUR", s.URL, used, reserved, spent)
		}
	}
	t.Logf("7 of 200 admitted (%d through replica a, %d through b); spent %.6f EUR of 7.5, as both replicas show", perReplica[0], perReplica[1], spent)
}

// TestReplicasTellOnce: two replicas on one Redis tell a budget's warning
// and its exhaustion once between them, however the requests that cross
// the thresholds are spread.
func TestReplicasTellOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var kinds []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Kind, Replica string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		kinds = append(kinds, ev.Kind)
		mu.Unlock()
	}))
	defer hook.Close()
	o := budgetOptions()
	mutate := o.Mutate
	o.Mutate = func(c *config.Config) {
		mutate(c)
		c.Budgets.Webhook = &config.BudgetWebhook{URL: hook.URL}
	}
	f := harness.StartFleet(t, 2, o)
	// Each replica in turn, one request at a time: past 80 % of 7.5 EUR
	// both see the warning, past the limit both refuse.
	refused := 0
	for i := 0; i < 16 && refused < 4; i++ {
		if codes, _, _ := fire(t, f.Replicas[i%2], "sk-team-a", 1); codes[0] == 429 {
			refused++
		}
	}
	if refused < 4 {
		t.Fatalf("the budget was not used up: %d refused", refused)
	}
	time.Sleep(time.Second) // the posts of both replicas have come by now
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"budget_exhausted", "budget_warning"}) {
		t.Errorf("the webhook heard %q; want each event once from the fleet", kinds)
	}
}

// TestReplicasRateLimitExact (issue 13): a 100-per-minute limit under 300
// concurrent requests spread over two replicas admits exactly 100.
func TestReplicasRateLimitExact(t *testing.T) {
	t.Parallel()
	f := harness.StartFleet(t, 2, budgetOptions())
	freshMinute(20 * time.Second)
	codes, bodies, hdrs := fireSpread(t, f.Replicas, "sk-limited", 300)
	ok := tallyRateLimit(t, codes, bodies, hdrs)
	if got := len(f.Providers["p"].Requests()); ok != 100 || got != 100 {
		t.Fatalf("%d of 300 admitted under a 100/min limit across two replicas; the provider got %d", ok, got)
	}
	perReplica := [2]int{}
	for i, c := range codes {
		if c == 200 {
			perReplica[i%2]++
		}
	}
	t.Logf("100 of 300 admitted: %d through replica a, %d through b", perReplica[0], perReplica[1])
}

// spendOptions: two providers, "first" the cheaper (so tried first),
// "second" the dearer; prices that are whole micro-euros per token; one
// config key per case, each under its own budget (every key 100 EUR a day),
// so each case's spend is read on its own.
func spendOptions(keys ...string) harness.Options {
	return harness.Options{
		Providers: []harness.ProviderSpec{{Name: "first", Key: "sk-first"}, {Name: "second", Key: "sk-second"}},
		Models: []config.Model{
			{ID: "first-m", Provider: "first", ProviderModel: "first-upstream", ContextWindow: 8000, MaxOutputTokens: 100,
				Price: config.Price{InputPerMTok: 1000, OutputPerMTok: 10000}},
			{ID: "second-m", Provider: "second", ProviderModel: "second-upstream", ContextWindow: 8000, MaxOutputTokens: 100,
				Price: config.Price{InputPerMTok: 2000, OutputPerMTok: 30000}},
		},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default", Objective: "cost"}}
			for _, k := range keys {
				c.Keys = append(c.Keys, config.Key{ID: k, SHA256: auth.Hash("sk-" + k), Workspace: "default"})
			}
			c.Budgets.Limits = []config.BudgetRule{{Name: "each-key", Scope: "key", AmountEUR: 100, Period: "day"}}
		},
	}
}

// streamFinished is stellwerk's log line for a stream's end: the usage it
// charged and whether it was estimated.
type streamFinished struct {
	Msg              string  `json:"msg"`
	DecisionID       string  `json:"decision_id"`
	Model            string  `json:"model"`
	End              string  `json:"end"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	Estimated        bool    `json:"usage_estimated"`
	CostEUR          float64 `json:"cost_eur"`
}

// streamLine finds the "stream finished" line of one decision in a
// replica's log, waiting a moment for it.
func streamLine(t *testing.T, s *harness.Stack, id string) streamFinished {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(s.Log("stellwerk")))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l streamFinished
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "stream finished" && l.DecisionID == id {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"stream finished\" line for decision %s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logged waits a moment for text in a replica's stellwerk log (it reaches
// the test through a pipe, a little after the answer it concerns).
func logged(s *harness.Stack, text string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(s.Log("stellwerk"), text) {
			return true
		}
	}
	return false
}

// chatReq builds a chat request for one replica.
func chatReq(t *testing.T, s *harness.Stack, key, body string, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk-"+key)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return req
}

// estimate is what stellwerk estimates a streamed text as, delta by delta.
func estimate(deltas []string) int {
	n := 0
	for _, d := range deltas {
		n += classify.EstimateTokens(d)
	}
	return n
}

// TestReplicasSpendMatchesProviderUsage (issue 13): what each replica
// charges the shared budgets is the fake providers' recorded usage × the
// catalog price of the model that served, for a JSON answer, a stream, a
// failover (the first provider answers 503, the second serves: charged at
// the second's price), a client that hangs up mid-stream (charged what was
// streamed until then, estimated and flagged, never zero), a provider that
// breaks off mid-stream (the same), and provider errors (charged nothing).
// Each case runs once through each replica; both replicas then show the
// same spend.
func TestReplicasSpendMatchesProviderUsage(t *testing.T) {
	t.Parallel()
	cases := []string{"json", "stream", "failover", "disconnect", "hangup", "broken", "errors"}
	f := harness.StartFleet(t, 2, spendOptions(cases...))
	first, second := f.Providers["first"], f.Providers["second"]
	prices := map[string]config.Price{}
	for _, m := range f.Replicas[0].Config.Models {
		prices[m.Provider] = m.Price
	}
	const ask = `{"model":"auto","max_tokens":50,%s"messages":[{"role":"user","content":"tell me something about signal boxes and their interlocking"}]}`
	// want is each case's expected spend; estimated the charges stellwerk
	// logged as estimated.
	want := map[string]float64{}
	estimated := map[string]int{}

	// providerCharges sums what the providers recorded for requests since
	// the marks.
	type mark struct{ first, second int }
	at := func() mark { return mark{len(first.Requests()), len(second.Requests())} }
	since := func(m mark) (cost float64, recs []mockllm.Recorded) {
		for name, p := range map[string]*harness.Provider{"first": first, "second": second} {
			rs := p.Requests()
			from := m.first
			if name == "second" {
				from = m.second
			}
			for _, r := range rs[from:] {
				cost += usageCost(r.Usage, prices[name])
				recs = append(recs, r)
			}
		}
		return cost, recs
	}

	for i, s := range f.Replicas {
		replica := fmt.Sprintf("replica %c", 'a'+i)

		// A JSON answer: its usage, at the first provider's price.
		m := at()
		resp, b := post(t, s.URL+"/v1/chat/completions", fmt.Sprintf(ask, ""), map[string]string{"Authorization": "Bearer sk-json"})
		cost, recs := since(m)
		var jr struct {
			Routing struct {
				Cost struct {
					EUR float64 `json:"eur"`
				} `json:"cost"`
			} `json:"routing"`
		}
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "first-m" || cost == 0 {
			t.Fatalf("%s json: %d %s %s (provider cost %v)", replica, resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b, cost)
		}
		mustJSON(t, b, &jr)
		if math.Abs(jr.Routing.Cost.EUR-cost) > 1e-9 {
			t.Errorf("%s json: routing cost %v EUR, the provider's usage costs %v", replica, jr.Routing.Cost.EUR, cost)
		}
		full := recs[0].Usage.CompletionTokens // a whole answer to ask
		want["json"] += cost

		// A stream whose client did not ask for usage: stellwerk asks the
		// provider for it and charges it.
		m = at()
		resp, b = post(t, s.URL+"/v1/chat/completions", fmt.Sprintf(ask, `"stream":true,`), map[string]string{"Authorization": "Bearer sk-stream"})
		cost, _ = since(m)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "[DONE]") || strings.Contains(string(b), `"usage"`) || cost == 0 {
			t.Fatalf("%s stream: %d %s (provider cost %v)", replica, resp.StatusCode, b, cost)
		}
		if l := streamLine(t, s, resp.Header.Get("x-stellwerk-decision-id")); l.Estimated || math.Abs(l.CostEUR-cost) > 1e-9 {
			t.Errorf("%s stream: charged %+v, the provider's usage costs %v", replica, l, cost)
		}
		want["stream"] += cost

		// Failover: the first provider fails with 503 before answering;
		// the second serves, and its price is charged.
		first.SetBehavior(mockllm.Behavior{Status: 503})
		m = at()
		resp, b = post(t, s.URL+"/v1/chat/completions", fmt.Sprintf(ask, ""), map[string]string{"Authorization": "Bearer sk-failover"})
		cost, recs = since(m)
		first.SetBehavior(mockllm.Behavior{})
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "second" || len(recs) != 2 {
			t.Fatalf("%s failover: %d %s, %d provider requests: %s", replica, resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), len(recs), b)
		}
		mustJSON(t, b, &jr)
		if math.Abs(jr.Routing.Cost.EUR-cost) > 1e-9 || cost != usageCost(second.Requests()[len(second.Requests())-1].Usage, prices["second"]) {
			t.Errorf("%s failover: routing cost %v EUR, the providers' usage costs %v", replica, jr.Routing.Cost.EUR, cost)
		}
		want["failover"] += cost

		// The same for a stream: charged the second's usage, at its price.
		first.SetBehavior(mockllm.Behavior{Status: 503})
		m = at()
		resp, b = post(t, s.URL+"/v1/chat/completions", fmt.Sprintf(ask, `"stream":true,`), map[string]string{"Authorization": "Bearer sk-failover"})
		cost, recs = since(m)
		first.SetBehavior(mockllm.Behavior{})
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "second" || len(recs) != 2 || !strings.Contains(string(b), "[DONE]") {
			t.Fatalf("%s failover stream: %d %s, %d provider requests: %s", replica, resp.StatusCode, resp.Header.Get("x-stellwerk-provider"), len(recs), b)
		}
		if l := streamLine(t, s, resp.Header.Get("x-stellwerk-decision-id")); l.Estimated || l.Model != "second-m" || math.Abs(l.CostEUR-cost) > 1e-9 {
			t.Errorf("%s failover stream: charged %+v, the providers' usage costs %v", replica, l, cost)
		}
		want["failover"] += cost

		// A client that hangs up mid-stream: charged what was streamed
		// until then (estimated: the provider's usage comes at the end),
		// never zero.
		m = at()
		req := chatReq(t, s, "disconnect", fmt.Sprintf(ask, `"stream":true,`), map[string]string{"x-mock-chunk-delay": "400ms"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s disconnect: %v %v", replica, resp, err)
		}
		var got []string // the deltas the client received
		sc := bufio.NewScanner(resp.Body)
		for len(got) < 3 && sc.Scan() {
			var ev struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok && json.Unmarshal([]byte(d), &ev) == nil &&
				len(ev.Choices) > 0 && ev.Choices[0].Delta.Content != "" {
				got = append(got, ev.Choices[0].Delta.Content)
			}
		}
		resp.Body.Close() // hang up
		l := streamLine(t, s, resp.Header.Get("x-stellwerk-decision-id"))
		// The provider records what it sent when its next write fails,
		// up to one chunk delay after the hang-up.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, recs = since(m); (len(recs) == 1 && recs[0].Usage != nil) || time.Now().After(deadline) {
				break
			}
		}
		if len(recs) != 1 || recs[0].Usage == nil {
			t.Fatalf("%s disconnect: the providers recorded %+v", replica, recs)
		}
		sent := recs[0].Output
		lo, hi := estimate(got), estimate(sent)
		if !l.Estimated || l.CompletionTokens < lo || l.CompletionTokens > hi || l.CompletionTokens == 0 || l.CostEUR <= 0 ||
			len(sent) >= full || len(sent) < len(got) {
			t.Errorf("%s disconnect: charged %+v; the client got %d deltas (≈%d tokens), the provider sent %d (≈%d tokens)",
				replica, l, len(got), lo, len(sent), hi)
		}
		t.Logf("%s disconnect: client got %d deltas, provider sent %d of its %d tokens; charged %d estimated output tokens (%d input), %.6f EUR; the provider's count (%d output, %d input) costs %.6f EUR",
			replica, len(got), len(sent), full, l.CompletionTokens, l.PromptTokens, l.CostEUR,
			recs[0].Usage.CompletionTokens, recs[0].Usage.PromptTokens, usageCost(recs[0].Usage, prices["first"]))
		want["disconnect"] += l.CostEUR
		estimated["disconnect"]++

		// A client that hangs up before the answer starts: the provider
		// has read the prompt, so the prompt is charged as an estimate
		// (never zero), and nothing is left held.
		m = at()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err = http.DefaultClient.Do(chatReq(t, s, "hangup", fmt.Sprintf(ask, `"stream":true,`), map[string]string{"x-mock-first-byte-delay": "1s"}).WithContext(ctx))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s hang-up: %v", replica, err)
		}
		time.Sleep(time.Second) // the provider would have answered by now
		if cost, recs = since(m); cost != 0 || len(recs) != 1 {
			t.Errorf("%s hang-up: the providers recorded %+v", replica, recs)
		}
		// The spend ledger (one store for both replicas) has its row.
		var sums struct {
			Total struct {
				Requests, TokensOut, Estimated int64
				CostEUR                        float64 `json:"cost_eur"`
			} `json:"total"`
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			mustJSON(t, adminBody(t, s, "/admin/spend?key=hangup"), &sums)
			if sums.Total.Requests == int64(i+1) || time.Now().After(deadline) {
				break
			}
		}
		if sums.Total.Requests != int64(i+1) || sums.Total.Estimated != int64(i+1) || sums.Total.CostEUR <= want["hangup"] {
			t.Errorf("%s hang-up: the spend ledger shows %+v", replica, sums.Total)
		}
		want["hangup"] = sums.Total.CostEUR
		estimated["hangup"]++

		// A provider that breaks off after its first token (connection
		// reset): the client gets an error event; the token streamed is
		// charged, estimated.
		m = at()
		resp, err = http.DefaultClient.Do(chatReq(t, s, "broken", fmt.Sprintf(ask, `"stream":true,`), map[string]string{"x-mock-reset": "mid-stream"}))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s broken: %v %v", replica, resp, err)
		}
		b, readErr := io.ReadAll(resp.Body) // the stream breaks: an error event, or a broken connection
		resp.Body.Close()
		_, recs = since(m)
		if strings.Contains(string(b), "[DONE]") || len(recs) != 1 || recs[0].Usage == nil {
			t.Fatalf("%s broken: %s (%v), provider recorded %+v", replica, b, readErr, recs)
		}
		l = streamLine(t, s, resp.Header.Get("x-stellwerk-decision-id"))
		if !l.Estimated || l.CompletionTokens != estimate(recs[0].Output) || l.CostEUR <= 0 {
			t.Errorf("%s broken: charged %+v; the provider sent %q", replica, l, recs[0].Output)
		}
		t.Logf("%s broken: the client read %d bytes, then %v; charged %d estimated output tokens, %.6f EUR",
			replica, len(b), readErr, l.CompletionTokens, l.CostEUR)
		want["broken"] += l.CostEUR
		estimated["broken"]++

		// Provider errors: a 400 the client gets as is, and every provider
		// failing (503 from both): nothing generated, nothing charged.
		for _, status := range []string{"400", "503"} {
			m = at()
			resp, b = post(t, s.URL+"/v1/chat/completions", fmt.Sprintf(ask, ""),
				map[string]string{"Authorization": "Bearer sk-errors", "x-mock-status": status})
			cost, recs = since(m)
			if resp.StatusCode != map[string]int{"400": 400, "503": 503}[status] || cost != 0 || len(recs) == 0 {
				t.Errorf("%s provider %s: %d %s, provider cost %v over %d requests", replica, status, resp.StatusCode, b, cost, len(recs))
			}
		}
	}

	// Both replicas read the same counters: each case's spend is the sum
	// of its charges through both.
	for _, c := range cases {
		for i, s := range f.Replicas {
			used, reserved := budgetOf(t, s, "workspace=default&key="+c, "each-key")
			if math.Abs(used-want[c]) > 1e-6 || reserved != 0 {
				t.Errorf("replica %c: key %s's budget shows used %v EUR, reserved %v; want %v", 'a'+i, c, used, reserved, want[c])
			}
		}
		t.Logf("%-10s spent %.6f EUR (estimated charges: %d)", c, want[c], estimated[c])
	}
}

// TestReplicasKeyRevocation (issue 13): a key created through replica A's
// admin API works through both Envoys; revoked on replica B, it is refused
// (401) by replica A within a second.
func TestReplicasKeyRevocation(t *testing.T) {
	t.Parallel()
	f := harness.StartFleet(t, 2, harness.Options{Mutate: func(c *config.Config) {
		c.Auth.Mode = "keys"
		c.Workspaces = append(c.Workspaces, config.Workspace{Name: "legal"})
	}})
	a, b := f.Replicas[0], f.Replicas[1]
	resp, body := adminDo(t, a, "POST", "/admin/keys", `{"id":"fleet-bot","workspace":"legal"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create on replica a: %d %s", resp.StatusCode, body)
	}
	created := time.Now()
	var k struct{ Secret string }
	mustJSON(t, body, &k)
	auth := map[string]string{"Authorization": "Bearer " + k.Secret}
	chat := func(s *harness.Stack) int {
		resp, _ := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hello"}]}`, auth)
		return resp.StatusCode
	}
	// until polls both replicas in turn until each answers want, and says
	// how long each took; other is what they may answer until then.
	until := func(want, other int, since time.Time, what string) (took [2]time.Duration) {
		for done := 0; done < 2; {
			for i, s := range []*harness.Stack{a, b} {
				if took[i] != 0 {
					continue
				}
				switch code := chat(s); {
				case code == want:
					took[i] = time.Since(since)
					done++
				case code != other:
					t.Fatalf("%s, replica %c: %d", what, 'a'+i, code)
				case time.Since(since) > time.Second:
					t.Fatalf("%s, replica %c: still %d after %s", what, 'a'+i, code, time.Since(since))
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		return took
	}
	usable := until(200, 401, created, "the new key")
	t.Logf("created on replica a: usable through a after %s, through b after %s", usable[0].Round(time.Millisecond), usable[1].Round(time.Millisecond))

	resp, body = adminDo(t, b, "POST", "/admin/keys/fleet-bot/revoke", "")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke on replica b: %d %s", resp.StatusCode, body)
	}
	refused := until(401, 200, time.Now(), "the revoked key")
	t.Logf("revoked on replica b: refused by a after %s, by b after %s", refused[0].Round(time.Millisecond), refused[1].Round(time.Millisecond))
	calls := len(f.Providers["alpha"].Requests())
	for _, s := range f.Replicas {
		if code := chat(s); code != 401 {
			t.Errorf("%s: the revoked key got %d", s.URL, code)
		}
	}
	if n := len(f.Providers["alpha"].Requests()); n != calls {
		t.Errorf("a revoked key's request reached the provider")
	}
}

// TestReplicasRedisDown (issue 13): Redis stops under two replicas. By
// default budgets fail closed: a request under a budget gets 503
// budget_store_unavailable from either replica and nothing reaches the
// provider, while a request under only a rate limit passes (rate limits
// fail open by default). With state.redis.on_unavailable.budgets: open,
// the request under the budget passes too, unchecked.
func TestReplicasRedisDown(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			o := budgetOptions()
			mutate := o.Mutate
			o.Mutate = func(c *config.Config) {
				mutate(c)
				c.State.Redis.OnUnavailable.Budgets = mode
			}
			f := harness.StartFleet(t, 2, o)
			p := f.Providers["p"]
			for _, s := range f.Replicas {
				if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
					map[string]string{"Authorization": "Bearer sk-team-a"}); resp.StatusCode != 200 {
					t.Fatalf("before Redis stops: %d %s", resp.StatusCode, b)
				}
			}
			f.Redis.Stop()
			for i, s := range f.Replicas {
				calls := len(p.Requests())
				start := time.Now()
				resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
					map[string]string{"Authorization": "Bearer sk-team-a"})
				took := time.Since(start)
				sent := len(p.Requests()) - calls
				switch mode {
				case "closed":
					if e := decodeError(t, b).Error; resp.StatusCode != 503 || e.Code != "budget_store_unavailable" || sent != 0 {
						t.Errorf("replica %c, budget, Redis down: %d %s; %d sent to the provider", 'a'+i, resp.StatusCode, b, sent)
					}
				case "open":
					if resp.StatusCode != 200 || sent != 1 {
						t.Errorf("replica %c, budget, Redis down, fail open: %d %s; %d sent to the provider", 'a'+i, resp.StatusCode, b, sent)
					}
					// Its spend cannot be recorded either: the log says so.
					id := resp.Header.Get("x-stellwerk-decision-id")
					if !logged(s, `"msg":"state store unreachable: requests admitted unchecked are not counted against their budgets and rate limits (their spend ledger rows are written)","decision_id":"`+id+`"`) {
						t.Errorf("replica %c: no log line says request %s's spend went unrecorded", 'a'+i, id)
					}
				}
				t.Logf("replica %c, Redis down, budgets %s: %d in %s", 'a'+i, mode, resp.StatusCode, took.Round(time.Millisecond))
				resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
					map[string]string{"Authorization": "Bearer sk-limited"})
				if resp.StatusCode != 200 {
					t.Errorf("replica %c, rate limit only, Redis down: %d %s", 'a'+i, resp.StatusCode, b)
				}
				if resp, err := s.AdminGet("/admin/budgets?workspace=default"); err != nil || resp.StatusCode != 503 {
					t.Errorf("replica %c: /admin/budgets with Redis down: %v %v", 'a'+i, resp, err)
				} else {
					resp.Body.Close()
				}
				// The operator sees it without reading the log: /status and
				// the metrics say the store is down, and what went unchecked.
				bs, _ := adminJSON(t, s, "/status")["budget_store"].(map[string]any)
				unchecked := map[string]float64{"closed": 1, "open": 2}[mode] // the rate-limited request, and in open mode the budgeted one
				if bs["backend"] != "redis" || bs["reachable"] != false || bs["last_failure_at"] == nil || bs["admitted_unchecked"] != unchecked {
					t.Errorf("replica %c: /status budget_store %v", 'a'+i, bs)
				}
				if m := string(adminBody(t, s, "/metrics")); !strings.Contains(m, "\nstellwerk_budget_store_up 0\n") ||
					!strings.Contains(m, fmt.Sprintf("\nstellwerk_budget_admitted_unchecked_total %v\n", unchecked)) {
					t.Errorf("replica %c: the metrics do not say the budget store is down", 'a'+i)
				}
				// Every line is JSON: go-redis's own (a dial that failed)
				// went to stderr as plain text (the observability probe).
				for _, line := range strings.Split(s.Log("stellwerk"), "\n") {
					if line != "" && !json.Valid([]byte(line)) {
						t.Errorf("replica %c logs a line that is not JSON: %q", 'a'+i, line)
						break
					}
				}
			}
		})
	}
}

// adminBody GETs an admin path with the stack's admin token and returns the
// body of a 200.
func adminBody(t *testing.T, s *harness.Stack, path string) []byte {
	t.Helper()
	resp, err := s.AdminGet(path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// TestFleetDriftIsSaid: two replicas on one Redis with one config agree;
// once one of them reloads a config whose team budget is ten times the
// other's (the fleet probe overspent a shared budget by 40 % this way,
// unseen), both name the other in /status and the differing-replicas gauge,
// and the log says it; put back, they agree again.
func TestFleetDriftIsSaid(t *testing.T) {
	t.Parallel()
	f := harness.StartFleet(t, 2, budgetOptions())
	type fleetStatus struct {
		Fingerprint string
		Replicas    int
		Differ      []string
	}
	status := func(s *harness.Stack) fleetStatus {
		var out struct{ Fleet fleetStatus }
		b, _ := json.Marshal(adminJSON(t, s, "/status"))
		mustJSON(t, b, &out)
		return out.Fleet
	}
	agree := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			a, b := status(f.Replicas[0]), status(f.Replicas[1])
			same := a.Fingerprint == b.Fingerprint
			if a.Replicas == 2 && b.Replicas == 2 && same == want && (len(a.Differ) == 0) == want && (len(b.Differ) == 0) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("agree=%v: replica a %+v, replica b %+v", want, a, b)
			}
		}
	}
	agree(true)
	a := f.Replicas[0]
	drifted := *a.Config
	drifted.Budgets.Limits = []config.BudgetRule{{Name: "default-daily", Scope: "workspace", Subject: "default", AmountEUR: 75, Period: "day"}}
	a.WriteConfig(&drifted)
	agree(false)
	if !strings.Contains(f.Replicas[1].Log("stellwerk"), "replicas of this fleet decide by different configs") {
		t.Error("replica b's log does not say the fleet drifted")
	}
	if r, err := f.Replicas[1].AdminGet("/metrics"); err != nil {
		t.Error(err)
	} else {
		m, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(m), "stellwerk_fleet_replicas_differing 1") {
			t.Errorf("replica b's gauge:\n%s", grepLines(string(m), "stellwerk_fleet"))
		}
	}
	a.WriteConfig(a.Config)
	agree(true)
}
