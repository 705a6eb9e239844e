package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// budgetStack: one provider whose model costs nothing per input token and
// 100,000 EUR per million output tokens, so a request capped at
// max_tokens 10 reserves exactly 1 EUR. Two keys: "team-a" (workspace
// "default", team "a") under a 7.5 EUR daily workspace budget, and
// "limited" under a 100-requests-per-minute limit.
func budgetStack(t *testing.T) *harness.Stack {
	return harness.Start(t, budgetOptions())
}

// budgetOptions are budgetStack's, for one stack or a fleet of replicas.
func budgetOptions() harness.Options {
	return harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}},
		Models: []config.Model{{ID: "m1", Provider: "p", ProviderModel: "m1-upstream", ContextWindow: 8000,
			Price: config.Price{InputPerMTok: 0, OutputPerMTok: 100000}}},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1 // list prices are in USD: one to one keeps the arithmetic exact
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default", Teams: []config.Team{{Name: "a"}}}, {Name: "limited"}}
			c.Keys = []config.Key{
				{ID: "team-a", SHA256: auth.Hash("sk-team-a"), Workspace: "default", Team: "a"},
				{ID: "limited", SHA256: auth.Hash("sk-limited"), Workspace: "limited"},
			}
			c.Budgets.Limits = []config.BudgetRule{{Name: "default-daily", Scope: "workspace", Subject: "default", AmountEUR: 7.5, Period: "day"}}
			c.RateLimits = []config.RateLimitRule{{Name: "limited-rpm", Scope: "workspace", Subject: "limited", RequestsPerMinute: 100}}
		},
	}
}

// fire sends n chat requests with key at once and returns each status and
// body.
func fire(t *testing.T, s *harness.Stack, key string, n int) (codes []int, bodies [][]byte, hdrs []http.Header) {
	t.Helper()
	return fireSpread(t, []*harness.Stack{s}, key, n)
}

// fireSpread is fire with the requests spread over stacks in turn, as a
// load balancer in front of several replicas would.
func fireSpread(t *testing.T, stacks []*harness.Stack, key string, n int) (codes []int, bodies [][]byte, hdrs []http.Header) {
	t.Helper()
	codes, bodies, hdrs = make([]int, n), make([][]byte, n), make([]http.Header, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, stacks[i%len(stacks)].URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"auto","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			bodies[i], _ = io.ReadAll(resp.Body)
			codes[i], hdrs[i] = resp.StatusCode, resp.Header
		}(i)
	}
	close(start)
	wg.Wait()
	return codes, bodies, hdrs
}

// TestBudgetExactUnderConcurrency (issue 13): 200 requests at once against
// a budget that holds exactly 7 of their worst cases: exactly 7 are sent,
// 193 get 429 budget_exceeded with Retry-After, and what the budget then
// shows as used is what the provider reported, at the catalog's prices.
func TestBudgetExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	p := s.Providers["p"]
	// Every admitted request is still in flight when the last one arrives.
	p.SetBehavior(mockllm.Behavior{FirstByteDelay: 1500 * time.Millisecond})
	codes, bodies, hdrs := fire(t, s, "sk-team-a", 200)
	ok, refused, spent := tallyBudget(t, codes, bodies, hdrs)
	if ok != 7 || refused != 193 || len(p.Requests()) != 7 {
		t.Fatalf("%d answered, %d refused, provider got %d requests; want 7, 193, 7", ok, refused, len(p.Requests()))
	}
	// Charges are settled just after their answers (docs/budgets.md).
	if used, reserved := budgetOf(t, s, "workspace=default&team=a", "default-daily"); math.Abs(used-spent) > 1e-6 || reserved != 0 {
		t.Errorf("budget shows used %v EUR, reserved %v; the provider's usage costs %v EUR", used, reserved, spent)
	}
	t.Logf("7 of 200 admitted; spent %.6f EUR of 7.5", spent)
}

// tallyBudget counts the answers to requests against the 7.5 EUR budget of
// budgetOptions: 200s, whose routing cost must be their usage at the
// catalog price (spent is their sum), and 429 budget_exceeded refusals
// with Retry-After. Any other answer fails the test.
func tallyBudget(t *testing.T, codes []int, bodies [][]byte, hdrs []http.Header) (ok, refused int, spent float64) {
	t.Helper()
	for i, c := range codes {
		switch c {
		case 200:
			ok++
			var r struct {
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				} `json:"usage"`
				Routing struct {
					Cost struct {
						EUR float64 `json:"eur"`
					} `json:"cost"`
				} `json:"routing"`
			}
			mustJSON(t, bodies[i], &r)
			want := float64(r.Usage.CompletionTokens) * 100000 / 1e6
			if math.Abs(r.Routing.Cost.EUR-want) > 1e-9 {
				t.Errorf("routing cost %v EUR, want %v for %d output tokens", r.Routing.Cost.EUR, want, r.Usage.CompletionTokens)
			}
			spent += want
		case 429:
			refused++
			e := decodeError(t, bodies[i]).Error
			ra, err := strconv.Atoi(hdrs[i].Get("Retry-After"))
			if e.Code != "budget_exceeded" || err != nil || ra < 1 || ra > 86400 || !strings.Contains(e.Message, "default-daily") {
				t.Errorf("429 %s (Retry-After %q)", bodies[i], hdrs[i].Get("Retry-After"))
			}
		default:
			t.Errorf("status %d: %s", c, bodies[i])
		}
	}
	return ok, refused, spent
}

// TestRateLimitExact (issue 13): a 100-requests-per-minute limit under 300
// concurrent requests admits exactly 100, and the official Python SDK sees
// the refusal as RateLimitError with Retry-After and OpenAI's
// x-ratelimit-* headers.
func TestRateLimitExact(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	// A fixed window: start well inside one minute.
	if rest := time.Minute - time.Duration(time.Now().Second())*time.Second; rest < 20*time.Second {
		time.Sleep(rest + time.Second)
	}
	codes, bodies, hdrs := fire(t, s, "sk-limited", 300)
	if ok := tallyRateLimit(t, codes, bodies, hdrs); ok != 100 {
		t.Fatalf("%d of 300 admitted under a 100/min limit", ok)
	}

	py := harness.RequirePython(t)
	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "limits.py"), s.URL, "sk-limited", "1").Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var seen []struct {
		Status     int               `json:"status"`
		Class      string            `json:"class"`
		Code       string            `json:"code"`
		RetryAfter string            `json:"retry_after"`
		Headers    map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(out, &seen); err != nil || len(seen) != 1 {
		t.Fatalf("python output %s: %v", out, err)
	}
	r := seen[0]
	if r.Status != 429 || r.Class != "RateLimitError" || r.Code != "rate_limit_exceeded" || r.RetryAfter == "" ||
		r.Headers["x-ratelimit-limit-requests"] != "100" || r.Headers["x-ratelimit-remaining-requests"] != "0" ||
		r.Headers["x-ratelimit-reset-requests"] == "" {
		t.Errorf("the SDK saw %+v", r)
	}
}

// tallyRateLimit counts the 200s among answers to requests under the
// 100-per-minute limit of budgetOptions; every other answer must be its
// 429 rate_limit_exceeded with Retry-After and OpenAI's headers.
func tallyRateLimit(t *testing.T, codes []int, bodies [][]byte, hdrs []http.Header) (ok int) {
	t.Helper()
	for i, c := range codes {
		switch c {
		case 200:
			ok++
		case 429:
			if e := decodeError(t, bodies[i]).Error; e.Code != "rate_limit_exceeded" || hdrs[i].Get("Retry-After") == "" ||
				hdrs[i].Get("x-ratelimit-remaining-requests") != "0" || hdrs[i].Get("x-ratelimit-limit-requests") != "100" {
				t.Errorf("429 %s %v", bodies[i], hdrs[i])
			}
		default:
			t.Errorf("status %d: %s", c, bodies[i])
		}
	}
	return ok
}

// TestRateLimitHeadersOnAnswers: every answer under a limit carries
// OpenAI's x-ratelimit-* headers, counting down, as the SDK reads them.
func TestRateLimitHeadersOnAnswers(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	if rest := time.Minute - time.Duration(time.Now().Second())*time.Second; rest < 10*time.Second {
		time.Sleep(rest + time.Second)
	}
	py := harness.RequirePython(t)
	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "limits.py"), s.URL, "sk-limited", "2").Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var seen []struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(out, &seen); err != nil || len(seen) != 2 {
		t.Fatalf("python output %s: %v", out, err)
	}
	for i, r := range seen {
		if r.Status != 200 || r.Headers["x-ratelimit-limit-requests"] != "100" ||
			r.Headers["x-ratelimit-remaining-requests"] != strconv.Itoa(99-i) || r.Headers["x-ratelimit-reset-requests"] == "" {
			t.Errorf("answer %d: %+v", i, r)
		}
	}
}

// TestKeyOwnLimits (issue 13): a key created through the admin API with a
// budget and a rate limit of its own meets them on every request, beside
// the configured ones: 2 requests a minute, the third is refused.
func TestKeyOwnLimits(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	if rest := time.Minute - time.Duration(time.Now().Second())*time.Second; rest < 15*time.Second {
		time.Sleep(rest + time.Second)
	}
	// A budget below the ledger's micro-euro would be no budget at all: it
	// is refused when the key is stored, not dropped with the key's other
	// limits on every request.
	if resp, b := adminDo(t, s, "POST", "/admin/keys",
		`{"id":"tiny","workspace":"default","limits":{"budgets":[{"amount_eur":0.0000004,"period":"month"}],"rate_limit":{"requests_per_minute":1}}}`); resp.StatusCode != 400 ||
		!strings.Contains(string(b), "limits.budgets[0].amount_eur") {
		t.Errorf("a key with a budget under a micro-euro: %d %s", resp.StatusCode, b)
	}
	resp, b := adminDo(t, s, "POST", "/admin/keys",
		`{"id":"metered","workspace":"default","limits":{"budgets":[{"amount_eur":100,"period":"month"}],"rate_limit":{"requests_per_minute":2}}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct{ Secret string }
	mustJSON(t, b, &created)
	deadline := time.Now().Add(3 * time.Second) // the key table refreshes within half a second
	var codes []int
	for len(codes) < 3 && time.Now().Before(deadline) {
		c, bodies, hdrs := fire(t, s, created.Secret, 1)
		if c[0] == 401 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		codes = append(codes, c[0])
		switch len(codes) {
		case 1, 2:
			if c[0] != 200 || hdrs[0].Get("x-ratelimit-limit-requests") != "2" ||
				hdrs[0].Get("x-ratelimit-remaining-requests") != strconv.Itoa(2-len(codes)) {
				t.Errorf("request %d: %d %v %s", len(codes), c[0], hdrs[0], bodies[0])
			}
		case 3:
			if e := decodeError(t, bodies[0]).Error; c[0] != 429 || e.Code != "rate_limit_exceeded" || !strings.Contains(e.Message, "key.metered.rate") {
				t.Errorf("third request: %d %s", c[0], bodies[0])
			}
		}
	}
	if len(codes) != 3 {
		t.Fatalf("the key never worked: %v", codes)
	}
	// Raised live, without a new key (a helper's finding: only create,
	// rotate and revoke existed): the requests already made still count,
	// so with 5 a minute the fourth passes at once.
	if resp, b := adminDo(t, s, "PUT", "/admin/keys/metered/limits",
		`{"budgets":[{"amount_eur":100,"period":"month"}],"rate_limit":{"requests_per_minute":5}}`); resp.StatusCode != 200 {
		t.Fatalf("PUT limits: %d %s", resp.StatusCode, b)
	}
	if resp, b := adminDo(t, s, "PUT", "/admin/keys/metered/limits", `{"rate_limit":{"requests_per_minute":-1}}`); resp.StatusCode != 400 ||
		!strings.Contains(string(b), "limits.rate_limit.requests_per_minute") {
		t.Errorf("PUT bad limits: %d %s", resp.StatusCode, b)
	}
	waitFor(t, "the raised limit to apply", func() bool {
		c, _, hdrs := fire(t, s, created.Secret, 1)
		return c[0] == 200 && hdrs[0].Get("x-ratelimit-limit-requests") == "5"
	})
	// Read once the answers' charges are settled (just after each answer
	// is sent, docs/budgets.md).
	if used, reserved := budgetOf(t, s, "key=metered&workspace=default", "key.metered.month"); used <= 0 || reserved != 0 {
		t.Errorf("the key's own budget is not charged: %.6f EUR used, %.6f reserved", used, reserved)
	}
	// The subject is named as the query names it.
	if sub := string(adminBody(t, s, "/admin/budgets?key=metered&workspace=default")); !strings.Contains(sub, `"subject":{"key":"metered","workspace":"default"}`) {
		t.Errorf("GET /admin/budgets: %s", sub)
	}
	// The key alone: the budgets it meets, its workspace's among them (a
	// helper's ?key=… had listed only the key's own).
	if sub := string(adminBody(t, s, "/admin/budgets?key=metered")); !strings.Contains(sub, `"subject":{"key":"metered","workspace":"default"}`) ||
		!strings.Contains(sub, `"name":"default-daily"`) || !strings.Contains(sub, `"name":"key.metered.month"`) {
		t.Errorf("GET /admin/budgets?key=metered: %s", sub)
	}
	// Names that do not exist are said so, not answered with an empty list.
	for q, code := range map[string]string{"key=nope": "key_not_found", "workspace=nope": "workspace_not_found"} {
		if resp, b := adminDo(t, s, "GET", "/admin/budgets?"+q, ""); resp.StatusCode != 404 || !strings.Contains(string(b), code) {
			t.Errorf("GET /admin/budgets?%s: %d %s", q, resp.StatusCode, b)
		}
	}
	// A team or a user without its workspace names nothing: said, not an
	// empty list (the console probe found the user's "no budget applies").
	for _, q := range []string{"team=ml", "user=u1"} {
		if resp, b := adminDo(t, s, "GET", "/admin/budgets?"+q, ""); resp.StatusCode != 400 || !strings.Contains(string(b), "name the workspace too") {
			t.Errorf("GET /admin/budgets?%s: %d %s", q, resp.StatusCode, b)
		}
	}
}

// TestBudgetWebhook (issue 13): the budget webhook hears, once each and
// signed, that a budget passed its warn threshold and that it is used up;
// the answers carry x-stellwerk-budget-warning meanwhile.
func TestBudgetWebhook(t *testing.T) {
	t.Parallel()
	type heard struct {
		Kind, Budget string
		Ratio        float64
		Used         float64 `json:"used_eur"`
		signed       bool
	}
	var mu sync.Mutex
	var events []heard
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte("hook-secret"))
		m.Write(b)
		var ev heard
		_ = json.Unmarshal(b, &ev)
		ev.signed = r.Header.Get("x-stellwerk-signature") == "sha256="+hex.EncodeToString(m.Sum(nil))
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer hook.Close()
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(secretFile, []byte("hook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := budgetOptions()
	mutate := o.Mutate
	o.Mutate = func(c *config.Config) {
		mutate(c)
		c.Budgets.Webhook = &config.BudgetWebhook{URL: hook.URL + "/hooks/T0KEN", SecretFile: secretFile}
	}
	s := harness.Start(t, o)
	// Seven at once, held up by the provider: their holds (1 EUR each, 7 of
	// 7.5) are no spend, and warn of nothing (they did, with 0 EUR spent,
	// and used up the period's one warning: a helper's finding).
	s.Providers["p"].SetBehavior(mockllm.Behavior{FirstByteDelay: 400 * time.Millisecond})
	codes, _, hdrs := fire(t, s, "sk-team-a", 7)
	s.Providers["p"].SetBehavior(mockllm.Behavior{})
	for i := range codes {
		if codes[i] != 200 || hdrs[i].Get("x-stellwerk-budget-warning") != "" {
			t.Fatalf("the burst: %d, warning %q", codes[i], hdrs[i].Get("x-stellwerk-budget-warning"))
		}
	}
	// 7.5 EUR, each answer ~0.7 EUR, each reservation 1 EUR: the warning
	// (80 %) comes two or three requests on, refusals around the eleventh.
	warned := false
	refused := 0
	for i := 0; i < 7; i++ {
		codes, _, hdrs := fire(t, s, "sk-team-a", 1)
		if codes[0] == 200 && strings.HasPrefix(hdrs[0].Get("x-stellwerk-budget-warning"), "default-daily; used=") {
			warned = true
		}
		if codes[0] == 429 {
			refused++
		}
	}
	if !warned || refused == 0 {
		t.Fatalf("warning header seen %v, %d refused", warned, refused)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would have come by now
	mu.Lock()
	if len(events) != 2 || events[0].Kind != "budget_warning" || events[1].Kind != "budget_exhausted" ||
		events[0].Budget != "default-daily" || !events[0].signed || !events[1].signed ||
		events[0].Used < 0.8*7.5 || math.Abs(events[0].Ratio-events[0].Used/7.5) > 1e-9 {
		t.Errorf("the webhook heard %+v", events)
	}
	mu.Unlock()
	// A restart keeps what was told (the state store), so the budget
	// still used up tells nobody again.
	s.Stop("stellwerk")
	s.Restart()
	if codes, _, _ := fire(t, s, "sk-team-a", 1); codes[0] != 429 {
		t.Fatalf("after the restart: %d, want the budget still used up", codes[0])
	}
	time.Sleep(time.Second) // a second telling would have come by now
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 {
		t.Errorf("after a restart the webhook heard %+v", events[2:])
	}
	cfgResp, err := s.AdminGet("/config")
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := io.ReadAll(cfgResp.Body)
	cfgResp.Body.Close()
	if strings.Contains(string(cb), "T0KEN") || strings.Contains(string(cb), secretFile) {
		t.Errorf("/config shows the webhook's token or secret file")
	}
}

// TestBudgetCountsChoices: a chat request for n choices is held n answers'
// worst case, as the provider bills every choice. At 0.1 EUR a token and
// 10 tokens a choice, 8 choices (8 EUR) do not fit the 7.5 EUR budget and
// never reach the provider; 7 do.
func TestBudgetCountsChoices(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	p := s.Providers["p"]
	ask := func(n int) (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":10,"n":`+strconv.Itoa(n)+
			`,"messages":[{"role":"user","content":"hi"}]}`, map[string]string{"Authorization": "Bearer sk-team-a"})
	}
	resp, b := ask(8)
	if e := decodeError(t, b).Error; resp.StatusCode != 429 || e.Code != "budget_exceeded" || len(p.Requests()) != 0 {
		t.Fatalf("8 choices: %d %s; the provider got %d requests", resp.StatusCode, b, len(p.Requests()))
	}
	if resp, b := ask(7); resp.StatusCode != 200 || len(p.Requests()) != 1 {
		t.Fatalf("7 choices: %d %s", resp.StatusCode, b)
	}
	if resp, b := ask(129); resp.StatusCode != 400 || decodeError(t, b).Error.Code != "invalid_value" || !strings.Contains(string(b), `"param":"n"`) {
		t.Fatalf("n past 128: %d %s", resp.StatusCode, b)
	}
}

// TestBudgetCountsImages: each image a request sends is held at the most
// it can cost (the model's image_tokens) before the request leaves, so a
// request whose images cannot fit the budget is refused and never reaches
// the provider.
func TestBudgetCountsImages(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}},
		// 1 EUR per 1,000 input tokens, 1,000 tokens an image: 1 EUR each.
		Models: []config.Model{{ID: "v1", Provider: "p", ProviderModel: "v1-upstream", ContextWindow: 100000, ImageTokens: 1000,
			MaxOutputTokens: 10, Capabilities: []string{"chat", "vision"}, Price: config.Price{InputPerMTok: 1000, OutputPerMTok: 0}}},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Budgets.Limits = []config.BudgetRule{{Name: "daily", Scope: "global", AmountEUR: 10, Period: "day"}}
		},
	})
	p := s.Providers["p"]
	ask := func(images int) (*http.Response, []byte) {
		parts := `{"type":"text","text":"describe"}`
		for range images {
			parts += `,{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}`
		}
		return post(t, s.URL+"/v1/chat/completions", `{"model":"v1","messages":[{"role":"user","content":[`+parts+`]}]}`, nil)
	}
	resp, b := ask(11)
	if e := decodeError(t, b).Error; resp.StatusCode != 429 || e.Code != "budget_exceeded" || len(p.Requests()) != 0 {
		t.Fatalf("11 images: %d %s; the provider got %d requests", resp.StatusCode, b, len(p.Requests()))
	}
	if resp, b := ask(8); resp.StatusCode != 200 || len(p.Requests()) != 1 {
		t.Fatalf("8 images: %d %s", resp.StatusCode, b)
	}
}

// TestBudgetRefusalInFlight: a request refused only because requests in
// flight hold the budget is told so, with a Retry-After of seconds, not
// the period's end (the SDKs give up on waits past a minute, so they did
// not retry at all), and fits once the holder settles.
func TestBudgetRefusalInFlight(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	p := s.Providers["p"]
	// 0.1 EUR an output token: 50 tokens hold 5 of the budget's 7.5 EUR.
	ask := func() (*http.Response, []byte) {
		return post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`,
			map[string]string{"Authorization": "Bearer sk-team-a"})
	}
	p.SetBehavior(mockllm.Behavior{FirstByteDelay: 1500 * time.Millisecond})
	done := make(chan int)
	go func() {
		resp, _ := ask()
		done <- resp.StatusCode
	}()
	for deadline := time.Now().Add(5 * time.Second); len(p.Requests()) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	resp, b := ask()
	e := decodeError(t, b).Error
	if resp.StatusCode != 429 || e.Code != "budget_exceeded" || resp.Header.Get("Retry-After") != "2" || !strings.Contains(e.Message, "held by requests in flight") ||
		!strings.Contains(e.Message, "charged when its lease ends, within") {
		t.Fatalf("while the first is in flight: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if code := <-done; code != 200 {
		t.Fatalf("the first: %d", code)
	}
	p.SetBehavior(mockllm.Behavior{})
	if resp, b := ask(); resp.StatusCode != 200 {
		t.Fatalf("after it settled: %d %s", resp.StatusCode, b)
	}
}

// TestTotalBudgetNotRetried: a total budget never resets, so its refusal
// says x-should-retry: false (there is no Retry-After); the Python SDK
// sent it three times (found by a helper).
func TestTotalBudgetNotRetried(t *testing.T) {
	t.Parallel()
	opts := budgetOptions()
	mutate := opts.Mutate
	opts.Mutate = func(c *config.Config) {
		mutate(c)
		c.Budgets.Limits = []config.BudgetRule{{Name: "pilot", Scope: "workspace", Subject: "default", AmountEUR: 1, Period: "total"}}
	}
	s := harness.Start(t, opts)
	// 0.1 EUR an output token: 50 tokens need 5 EUR of the 1.
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "Bearer sk-team-a"})
	if e := decodeError(t, b).Error; resp.StatusCode != 429 || e.Code != "budget_exceeded" || resp.Header.Get("x-should-retry") != "false" ||
		resp.Header.Get("Retry-After") != "" {
		t.Fatalf("%d x-should-retry %q Retry-After %q %s", resp.StatusCode, resp.Header.Get("x-should-retry"), resp.Header.Get("Retry-After"), b)
	}
}

// TestEachUserBudgetCapsAKeyWithoutAUser: a budget for each user caps a
// key that has no user as its own user (subject key:<id>), through Envoy
// and in /admin/budgets: such keys were skipped, uncapped (the FinOps probe
// of 2026-12-07).
func TestEachUserBudgetCapsAKeyWithoutAUser(t *testing.T) {
	t.Parallel()
	o := budgetOptions()
	mutate := o.Mutate
	o.Mutate = func(c *config.Config) {
		mutate(c)
		c.Budgets.Limits = append(c.Budgets.Limits, config.BudgetRule{Name: "each-user-day", Scope: "user", AmountEUR: 2.5, Period: "day"})
	}
	s := harness.Start(t, o)
	// 1 EUR worst case each, charged at the usage: a few fit in 2.5 EUR.
	var codes []int
	for len(codes) < 8 && (len(codes) == 0 || codes[len(codes)-1] == 200) {
		c, b, _ := fire(t, s, "sk-team-a", 1)
		codes = append(codes, c[0])
		if c[0] != 200 && !strings.Contains(string(b[0]), "each-user-day") {
			t.Errorf("refused by another budget: %s", b[0])
		}
	}
	if last := codes[len(codes)-1]; len(codes) < 3 || last != 429 {
		t.Errorf("statuses %v, want 200s, then 429 from each-user-day", codes)
	}
	if used, _ := budgetOf(t, s, "key=team-a", "each-user-day"); used > 2.5 || used < 1.5 {
		t.Errorf("each-user-day used %.2f EUR", used)
	}
	b := adminJSON(t, s, "/admin/budgets?key=team-a")
	found := false
	for _, x := range b["budgets"].([]any) {
		if m := x.(map[string]any); m["name"] == "each-user-day" && m["subject"] == "key:team-a" {
			found = true
		}
	}
	if !found {
		t.Errorf("/admin/budgets?key=team-a: %v", b)
	}
}

// TestBudgetAddedMidPeriodIsSeeded: a budget added to the config in the
// middle of its period starts from what its subject spent in the period
// (the spend ledger has it), not from zero: the team's new day budget
// shows the spend the workspace's budget counted live, and caps what is
// left (the FinOps probe: a budget added mid-month ignored the month's
// spend so far).
func TestBudgetAddedMidPeriodIsSeeded(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, budgetOptions())
	for range 3 {
		if c, b, _ := fire(t, s, "sk-team-a", 1); c[0] != 200 {
			t.Fatalf("%d %s", c[0], b[0])
		}
	}
	spent, _ := budgetOf(t, s, "key=team-a", "default-daily")
	if spent <= 0 {
		t.Fatalf("nothing spent: %.2f", spent)
	}
	cfg := *s.Config
	cfg.Budgets.Limits = append(slices.Clone(cfg.Budgets.Limits),
		config.BudgetRule{Name: "team-a-day", Scope: "team", Subject: "default/a", AmountEUR: spent + 0.5, Period: "day"})
	s.WriteConfig(&cfg)
	var used float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b := adminJSON(t, s, "/admin/budgets?key=team-a")
		for _, x := range b["budgets"].([]any) {
			if m := x.(map[string]any); m["name"] == "team-a-day" {
				used = m["used_eur"].(float64)
			}
		}
		if used > 0 {
			break
		}
	}
	if math.Abs(used-spent) > 1e-6 {
		t.Fatalf("team-a-day used %.6f EUR after the reload, want the %.6f the team spent today", used, spent)
	}
	// 0.5 EUR left: a request whose worst case is 1 EUR does not fit.
	c, b, _ := fire(t, s, "sk-team-a", 1)
	if c[0] != 429 || !strings.Contains(string(b[0]), "team-a-day") {
		t.Errorf("after the seed: %d %s", c[0], b[0])
	}
}

// A budget added to a key's own limits mid-period starts from what the key
// spent in the period (the spend ledger's sum), as a config budget does: it
// started from zero (a FinOps probe's key spent 2,565 µEUR on a day it was
// then given 1,000).
func TestKeyBudgetAddedMidPeriodIsSeeded(t *testing.T) {
	t.Parallel()
	s := budgetStack(t)
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"grown","workspace":"default","limits":{"budgets":[{"amount_eur":100,"period":"month"}]}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct{ Secret string }
	mustJSON(t, b, &created)
	served := 0
	for deadline := time.Now().Add(5 * time.Second); served < 3 && time.Now().Before(deadline); {
		c, body, _ := fire(t, s, created.Secret, 1)
		switch c[0] {
		case 401: // the key table refreshes within half a second
			time.Sleep(100 * time.Millisecond)
		case 200:
			served++
		default:
			t.Fatalf("%d %s", c[0], body[0])
		}
	}
	if served != 3 {
		t.Fatalf("the key never worked")
	}
	var sums struct {
		Total struct {
			Requests int64
			CostEUR  float64 `json:"cost_eur"`
		} `json:"total"`
	}
	for deadline := time.Now().Add(5 * time.Second); sums.Total.Requests < 3 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mustJSON(t, adminBody(t, s, "/admin/spend?key=grown"), &sums)
	}
	if sums.Total.Requests != 3 || sums.Total.CostEUR <= 0 {
		t.Fatalf("the spend ledger has %+v", sums.Total)
	}
	spent := sums.Total.CostEUR
	if resp, b := adminDo(t, s, "PUT", "/admin/keys/grown/limits",
		fmt.Sprintf(`{"budgets":[{"amount_eur":100,"period":"month"},{"amount_eur":%g,"period":"day"}]}`, spent+0.5)); resp.StatusCode != 200 {
		t.Fatalf("PUT limits: %d %s", resp.StatusCode, b)
	}
	var used float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, x := range adminJSON(t, s, "/admin/budgets?key=grown")["budgets"].([]any) {
			if m := x.(map[string]any); m["name"] == "key.grown.day" {
				used = m["used_eur"].(float64)
			}
		}
		if used > 0 {
			break
		}
	}
	if math.Abs(used-spent) > 1e-6 {
		t.Fatalf("key.grown.day used %.6f EUR after the change, want the %.6f the key spent today", used, spent)
	}
	// 0.5 EUR left: a request whose worst case is 1 EUR does not fit.
	if c, b, _ := fire(t, s, created.Secret, 1); c[0] != 429 || !strings.Contains(string(b[0]), "key.grown.day") {
		t.Errorf("after the seed: %d %s", c[0], b[0])
	}
}

// TestLimitsNarrowThePlan (the long-context probe), through Envoy with the
// OpenAI Python SDK: auto chooses "small" (1 EUR per million tokens, at
// most 1,000 out) and fails over to "dear" at another provider (100 and
// 1,000 EUR per million tokens). Under the workspace "tight"'s 0.05 EUR
// budget a small request was refused for dear's worst case (4.1 EUR at
// its 4,096-token default) and told to lower max_tokens; it is served by
// small with dear left out of its plan, and the reason says so. A prompt
// that small's own rate limit cannot take was refused although dear had
// room; it moves on to dear. A model pinned is refused as before.
func TestLimitsNarrowThePlan(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}, {Name: "q", Key: "sk-q"}},
		Models: []config.Model{
			{ID: "small", Provider: "p", ProviderModel: "small-upstream", ContextWindow: 200000, MaxOutputTokens: 1000,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 1}},
			{ID: "dear", Provider: "q", ProviderModel: "dear-upstream", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 100, OutputPerMTok: 1000}}},
		DefaultModel: "small",
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "tight"}, {Name: "open"}}
			c.Keys = []config.Key{
				{ID: "tight", SHA256: auth.Hash("sk-tight"), Workspace: "tight"},
				{ID: "open", SHA256: auth.Hash("sk-open"), Workspace: "open"},
			}
			c.Budgets.Limits = []config.BudgetRule{{Name: "tight-day", Scope: "workspace", Subject: "tight", AmountEUR: 0.05, Period: "day"}}
			c.RateLimits = []config.RateLimitRule{{Name: "small-tpm", Scope: "model", Subject: "small", TokensPerMinute: 20000}}
		},
	})
	py := harness.RequirePython(t)
	type seen struct {
		Status        int    `json:"status"`
		Model         string `json:"model"`
		Reason        string `json:"reason"`
		FallbackFrom  string `json:"fallback_from"`
		RoutingReason string `json:"routing_reason"`
		Code          string `json:"code"`
		Message       string `json:"message"`
		ShouldRetry   string `json:"should_retry"`
	}
	ask := func(key, model string, maxTokens, words int) seen {
		t.Helper()
		out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "plan_limits.py"), s.URL, key, model,
			strconv.Itoa(maxTokens), strconv.Itoa(words)).Output()
		var r seen
		if err != nil || json.Unmarshal(out, &r) != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		return r
	}

	r := ask("sk-tight", "auto", 0, 0)
	if r.Status != 200 || r.Model != "small" || !strings.Contains(r.Reason, `fallbacks left out for budget "tight-day": dear`) ||
		r.RoutingReason != r.Reason {
		t.Errorf("auto under the small budget: %+v", r)
	}
	r = ask("sk-tight", "dear", 0, 0)
	if r.Status != 429 || r.Code != "budget_exceeded" || r.ShouldRetry != "false" || !strings.Contains(r.Message, "on dear)") {
		t.Errorf("dear pinned under the small budget: %+v", r)
	}

	// ~30,000 tokens and 100 out: more than small-tpm's 20,000 a minute.
	r = ask("sk-open", "auto", 100, 30000)
	if r.Status != 200 || r.Model != "dear" || r.FallbackFrom != "small" || !strings.Contains(r.Reason, `moved past small (rate limit "small-tpm")`) {
		t.Errorf("auto past small's rate limit: %+v", r)
	}
	r = ask("sk-open", "small", 100, 30000)
	if r.Status != 429 || r.Code != "rate_limit_exceeded" || !strings.Contains(r.Message, "small-tpm") {
		t.Errorf("small pinned past its rate limit: %+v", r)
	}
	if n := len(s.Providers["q"].Requests()); n != 1 {
		t.Errorf("dear's provider got %d requests, want the one moved to it", n)
	}
}
