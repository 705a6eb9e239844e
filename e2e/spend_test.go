package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/stellwerk/stellwerk/internal/store"
)

// spendStack: two providers with one model each, integer prices per
// million tokens (so a request's cost in µEUR is an integer: m1 costs
// 2·in + 10·out, m2 3·in + 15·out), one key, and a team budget far above
// what the test spends (budgets kept in memory, their spend in the state
// store: no spend file, no Redis).
func spendStack(t *testing.T) *harness.Stack {
	return harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}, {Name: "q", Key: "sk-q"}},
		Models: []config.Model{
			{ID: "m1", Provider: "p", ProviderModel: "m1-upstream", ContextWindow: 8000, Price: config.Price{InputPerMTok: 2, OutputPerMTok: 10}},
			{ID: "m2", Provider: "q", ProviderModel: "m2-upstream", ContextWindow: 8000, Price: config.Price{InputPerMTok: 3, OutputPerMTok: 15}},
		},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default", Teams: []config.Team{{Name: "fin"}}}}
			c.Keys = []config.Key{{ID: "fin-key", SHA256: auth.Hash("sk-fin"), Workspace: "default", Team: "fin"}}
			c.Budgets.Limits = []config.BudgetRule{{Name: "fin-month", Scope: "team", Subject: "default/fin", AmountEUR: 1000, Period: "month"}}
		},
	})
}

type usageOf struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

func spendChat(t *testing.T, s *harness.Stack, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk-fin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestSpendLedgerThroughEnvoy (issue 13): requests through Envoy (JSON,
// streamed, one every provider fails, one the client abandons) each leave
// one row in the spend ledger; GET /admin/spend grouped by model shows the
// providers' reported usage at the catalog's prices, exactly, and the
// stellwerk spend CLI reads the same from the running server's store.
func TestSpendLedgerThroughEnvoy(t *testing.T) {
	t.Parallel()
	s := spendStack(t)
	start := time.Now().Add(-time.Minute).UTC()
	want := map[string]*struct{ requests, in, out, cost int64 }{"m1": {}, "m2": {}}
	add := func(model string, u usageOf) {
		w := want[model]
		price := map[string][2]int64{"m1": {2, 10}, "m2": {3, 15}}[model]
		w.requests++
		w.in += u.PromptTokens
		w.out += u.CompletionTokens
		w.cost += price[0]*u.PromptTokens + price[1]*u.CompletionTokens
	}

	// Three JSON answers from m1.
	for i := 0; i < 3; i++ {
		resp := spendChat(t, s, `{"model":"m1","messages":[{"role":"user","content":"hello number `+strings.Repeat("x ", i*20)+`"}]}`)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r struct {
			Usage usageOf `json:"usage"`
		}
		mustJSON(t, b, &r)
		if resp.StatusCode != 200 || r.Usage.PromptTokens == 0 || r.Usage.CompletionTokens == 0 {
			t.Fatalf("json %d: %s", resp.StatusCode, b)
		}
		add("m1", r.Usage)
	}
	// Two streams from m2, the client asking for the usage chunk.
	for i := 0; i < 2; i++ {
		resp := spendChat(t, s, `{"model":"m2","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream please"}]}`)
		var u *usageOf
		for _, ev := range readSSE(t, resp.Body) {
			var c struct {
				Usage *usageOf `json:"usage"`
			}
			if json.Unmarshal([]byte(ev.data), &c) == nil && c.Usage != nil {
				u = c.Usage
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || u == nil {
			t.Fatalf("stream %d: no usage", resp.StatusCode)
		}
		add("m2", *u)
	}
	// Every provider fails: 503 to the client, a failed row at no cost.
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{Status: 503})
	}
	resp := spendChat(t, s, `{"model":"m1","messages":[{"role":"user","content":"doomed"}]}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("all providers failing: %d %s", resp.StatusCode, b)
	}
	// A stream the client abandons after its first words: interrupted,
	// charged the estimate of what was generated. The client reads until
	// an event carries content (the first event is the role alone), so
	// stellwerk has followed at least that event: Envoy passes a chunk on
	// only once stellwerk has answered it.
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{ChunkDelay: 300 * time.Millisecond})
	}
	resp = spendChat(t, s, `{"model":"m2","stream":true,"messages":[{"role":"user","content":"a long story please"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("abandoned stream: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("abandoned stream ended before any content: %q %v", line, err)
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok &&
			json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			break
		}
	}
	resp.Body.Close()

	// The rows arrive within the writer's flush interval (1 s).
	type group struct {
		Model        string  `json:"model"`
		Status       string  `json:"status"`
		Key          string  `json:"key"`
		Team         string  `json:"team"`
		Requests     int64   `json:"requests"`
		TokensIn     int64   `json:"tokens_in"`
		TokensOut    int64   `json:"tokens_out"`
		CostMicroEUR int64   `json:"cost_micro_eur"`
		CostEUR      float64 `json:"cost_eur"`
		Estimated    int64   `json:"estimated"`
	}
	var rep struct {
		Data  []group `json:"data"`
		Total group   `json:"total"`
	}
	rangeQ := "since=" + start.Format(time.RFC3339) + "&until=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	deadline := time.Now().Add(10 * time.Second)
	for {
		get, err := s.AdminGet("/admin/spend?" + rangeQ + "&group_by=model,status,key,team")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(get.Body)
		get.Body.Close()
		if get.StatusCode != 200 {
			t.Fatalf("GET /admin/spend: %d %s", get.StatusCode, b)
		}
		mustJSON(t, b, &rep)
		if rep.Total.Requests >= 7 || time.Now().After(deadline) {
			t.Logf("%s", b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rep.Total.Requests != 7 {
		t.Fatalf("%d rows, want 7 (3 JSON, 2 streams, 1 failed, 1 abandoned)", rep.Total.Requests)
	}
	var failed, interrupted int
	for _, g := range rep.Data {
		if g.Key != "fin-key" || g.Team != "fin" {
			t.Errorf("row without its principal: %+v", g)
		}
		switch g.Status {
		case "served":
			w := want[g.Model]
			if w == nil || g.Requests != w.requests || g.TokensIn != w.in || g.TokensOut != w.out || g.CostMicroEUR != w.cost || g.Estimated != 0 {
				t.Errorf("%s served: %+v; the providers reported %+v", g.Model, g, w)
			}
		case "failed":
			failed++
			if g.Requests != 1 || g.CostMicroEUR != 0 || g.TokensOut != 0 {
				t.Errorf("failed: %+v", g)
			}
		case "interrupted":
			interrupted++
			if g.Model != "m2" || g.Requests != 1 || g.Estimated != 1 || g.CostMicroEUR <= 0 || g.TokensOut < 1 {
				t.Errorf("interrupted: %+v (charged what was generated, estimated, never zero)", g)
			}
		default:
			t.Errorf("group %+v", g)
		}
	}
	if failed != 1 || interrupted != 1 {
		t.Errorf("%d failed and %d interrupted groups, want 1 each", failed, interrupted)
	}

	// Grouped by model alone, as CSV, through the admin API and the CLI
	// (the CLI opens the running server's SQLite store beside it).
	req, _ := http.NewRequest(http.MethodGet, s.AdminURL+"/admin/spend?"+rangeQ+"&group_by=model", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Accept", "text/csv")
	csvResp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csvBody, _ := io.ReadAll(csvResp.Body)
	csvResp.Body.Close()
	if !strings.HasPrefix(csvResp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(string(csvBody), "model,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\nm1,") {
		t.Errorf("CSV: %s\n%s", csvResp.Header.Get("Content-Type"), csvBody)
	}
	// The ledger and the budget agree, and the budget's spend is in the
	// state store (budget_totals), saved within its flush interval.
	if used, reserved := budgetOf(t, s, "workspace=default&team=fin", "fin-month"); math.Abs(used-rep.Total.CostEUR) > 1e-9 || reserved != 0 {
		t.Errorf("the budget shows %v EUR used (%v reserved), the ledger %v EUR", used, reserved, rep.Total.CostEUR)
	}
	db, err := store.OpenSQLite(context.Background(), filepath.Join(s.Dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var saved int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := db.SQL.QueryRow(`SELECT COALESCE(SUM(used_micro_eur), 0) FROM budget_totals WHERE budget = 'fin-month'`).Scan(&saved); err == nil &&
			saved == rep.Total.CostMicroEUR {
			break
		}
	}
	if saved != rep.Total.CostMicroEUR {
		t.Errorf("budget_totals holds %d µEUR, the ledger %d", saved, rep.Total.CostMicroEUR)
	}

	cli := exec.Command(harness.Binary(t), "spend", "--config", filepath.Join(s.Dir, "stellwerk.yaml"), "--group-by", "model",
		"--format", "csv", "--since", start.Format(time.RFC3339), "--until", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	out, err := cli.CombinedOutput()
	if err != nil || string(out) != string(csvBody) {
		t.Errorf("stellwerk spend: %v\n%s\nthe API said:\n%s", err, out, csvBody)
	}
}

// TestCachedPromptPricing: prompt tokens the provider read from its cache
// are charged at the catalog's cached input price (OpenAI's cached input,
// Anthropic's cache reads), for an OpenAI-wire and an Anthropic-wire
// model; they were charged at the full input price (found by a helper).
func TestCachedPromptPricing(t *testing.T) {
	t.Parallel()
	price := config.Price{InputPerMTok: 1000, CachedInputPerMTok: 100} // 1,000 µEUR a token, 100 cached
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "openai", Key: "sk-openai"}, {Name: "claude", Key: "sk-ant", WireFormat: "anthropic"}},
		Models: []config.Model{
			{ID: "gpt-c", Provider: "openai", ProviderModel: "gpt-upstream", ContextWindow: 128000, Price: price},
			{ID: "claude-c", Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 128000, Price: price},
		},
		Mutate: func(c *config.Config) { c.Currency.USDToEUR = 1 },
	})
	start := time.Now().Add(-time.Minute).UTC()
	prompt := strings.Repeat("word ", 1200)
	for _, model := range []string{"gpt-c", "claude-c"} {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","max_tokens":50,"messages":[{"role":"user","content":"`+prompt+`"}]}`,
			map[string]string{"x-mock-cached": "900"})
		if resp.StatusCode != 200 || gjson.GetBytes(b, "usage.prompt_tokens_details.cached_tokens").Int() != 900 {
			t.Fatalf("%s: %d %s", model, resp.StatusCode, b)
		}
	}
	rows := spendByModel(t, s, start, 2)
	if len(rows) != 2 {
		t.Fatalf("spend rows %v", rows)
	}
	for _, g := range rows {
		in, cached, out := g.Get("tokens_in").Int(), g.Get("tokens_cached").Int(), g.Get("tokens_out").Int()
		if want := (in-900)*1000 + 900*100; cached != 900 || out == 0 || g.Get("cost_micro_eur").Int() != want || g.Get("estimated").Int() != 0 {
			t.Errorf("%s: %s; want 900 cached, %d µEUR", g.Get("model").Str, g.Raw, want)
		}
	}
}

// TestCachedWritePricing: prompt tokens Anthropic wrote to its cache are
// charged at the cache write prices, by default 1.25× the input for five
// minutes and 2× for an hour, on the Messages API and on chat translated
// to Anthropic, JSON and streamed; a usage without the split (older API
// versions) is all five-minute writes. They were charged at the input
// price, 26 % under the invoice in the FinOps probe's case. The spend
// ledger, the answer's routing.cost and the audit record's usage agree.
func TestCachedWritePricing(t *testing.T) {
	t.Parallel()
	price := config.Price{InputPerMTok: 1000, CachedInputPerMTok: 100} // µEUR a token: 1,000 in, 100 read, 1,250 and 2,000 written
	cases := []struct{ model, path, write string }{
		{"claude-msg", "/v1/messages", "600,400"},
		{"claude-msg-stream", "/v1/messages", "600,400"},
		{"claude-chat", "/v1/chat/completions", "600,400"},
		{"claude-chat-stream", "/v1/chat/completions", "600,400"},
		{"claude-total", "/v1/messages", "1000"},
		// Cut after its first token: the provider's prompt count, and its
		// parts, are charged as it reported them in message_start.
		{"claude-cut-stream", "/v1/messages", "600,400"},
	}
	var models []config.Model
	for _, c := range cases {
		models = append(models, config.Model{ID: c.model, Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 128000, Price: price})
	}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "claude", Key: "sk-ant", WireFormat: "anthropic"}},
		Models:    models,
		Mutate:    func(c *config.Config) { c.Currency.USDToEUR = 1 },
	})
	start := time.Now().Add(-time.Minute).UTC()
	prompt := strings.Repeat("word ", 3000)
	ids := map[string]string{}
	for _, c := range cases {
		stream := strings.HasSuffix(c.model, "-stream")
		body := `{"model":"` + c.model + `","max_tokens":50,"stream":` + strconv.FormatBool(stream) +
			`,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + prompt + `"}]}`
		if c.path == "/v1/messages" {
			body = `{"model":"` + c.model + `","max_tokens":50,"stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"` + prompt + `"}]}`
		}
		hdr := map[string]string{"x-mock-cached": "900", "x-mock-cache-write": c.write, "anthropic-version": "2023-06-01"}
		if c.model == "claude-cut-stream" {
			hdr["x-mock-reset"] = "truncate"
		}
		resp, b := post(t, s.URL+c.path, body, hdr)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.model, resp.StatusCode, b)
		}
		ids[c.model] = resp.Header.Get("x-stellwerk-decision-id")
		if !stream && c.path == "/v1/chat/completions" {
			// The chat answer says what was written, in Anthropic's names.
			if u := gjson.GetBytes(b, "usage"); u.Get("cache_creation_input_tokens").Int() != 1000 ||
				u.Get("cache_creation.ephemeral_1h_input_tokens").Int() != 400 {
				t.Errorf("%s: usage %s", c.model, u.Raw)
			}
		}
		if !stream {
			// routing.cost is the charge.
			in := gjson.GetBytes(b, "usage.prompt_tokens").Int()
			if in == 0 {
				u := gjson.GetBytes(b, "usage")
				in = u.Get("input_tokens").Int() + u.Get("cache_read_input_tokens").Int() + u.Get("cache_creation_input_tokens").Int()
			}
			if got, want := gjson.GetBytes(b, "routing.cost.eur").Float(), float64(writeCost(in, c.write))/1e6; math.Abs(got-want) > 1e-9 {
				t.Errorf("%s: routing.cost.eur %v, want %v", c.model, got, want)
			}
		}
	}
	rows := spendByModel(t, s, start, len(cases))
	if len(rows) != len(cases) {
		t.Fatalf("spend rows %v", rows)
	}
	for _, g := range rows {
		model := g.Get("model").Str
		write := "600,400"
		if model == "claude-total" {
			write = "1000"
		}
		in, cached, out := g.Get("tokens_in").Int(), g.Get("tokens_cached").Int(), g.Get("tokens_out").Int()
		estimated := g.Get("estimated").Int() != 0 && model != "claude-cut-stream"
		if want := writeCost(in, write); cached != 900 || out == 0 || g.Get("cost_micro_eur").Int() != want || estimated {
			t.Errorf("%s: %s; want 900 cached, %d µEUR (%d at the input price)", model, g.Raw, want, (in-900)*1000+900*100)
		}
		// The audit record keeps the parts of the prompt it was charged for.
		var rec gjson.Result
		waitFor(t, "the record of "+model, func() bool {
			p := auditPage(t, s, "kind=decision&decision_id="+ids[model])
			if len(p.Records) == 1 {
				rec = gjson.ParseBytes(p.Records[0].Record)
			}
			return len(p.Records) == 1
		})
		u := rec.Get("usage")
		w1h := int64(400)
		if write == "1000" {
			w1h = 0
		}
		if u.Get("prompt_tokens").Int() != in || u.Get("cached_tokens").Int() != 900 || u.Get("cache_write_tokens").Int() != 1000-w1h ||
			u.Get("cache_write_1h_tokens").Int() != w1h || math.Abs(rec.Get("cost.eur").Float()-float64(g.Get("cost_micro_eur").Int())/1e6) > 1e-9 {
			t.Errorf("%s: audit usage %s cost %s", model, u.Raw, rec.Get("cost").Raw)
		}
	}
}

// writeCost is TestCachedWritePricing's charge in µEUR: in prompt tokens,
// 900 read from the cache, write ("600,400" or a total) written to it.
func writeCost(in int64, write string) int64 {
	if write == "1000" {
		return (in-1900)*1000 + 900*100 + 1000*1250
	}
	return (in-1900)*1000 + 900*100 + 600*1250 + 400*2000
}

// TestCachedWriteAfterFailover: a chat request whose first provider fails
// is translated to Anthropic by the egress listener, which passes the
// cache writes on in the chat usage; the edge charges them at their
// prices, JSON and streamed.
func TestCachedWriteAfterFailover(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "primary", Key: "sk-primary"}, {Name: "claude", Key: "sk-ant", WireFormat: "anthropic"}},
		Models: []config.Model{
			{ID: "primary-mini", Provider: "primary", ProviderModel: "primary-upstream", ContextWindow: 128000, Price: config.Price{InputPerMTok: 1}},
			{ID: "claude-c", Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 1000, CachedInputPerMTok: 100}},
		},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Failover.FailuresBeforeCooldown = 1000
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	s.Providers["primary"].SetBehavior(mockllm.Behavior{Status: 503})
	prompt := strings.Repeat("word ", 3000)
	for _, stream := range []bool{false, true} {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","max_tokens":50,"stream":`+strconv.FormatBool(stream)+
			`,"messages":[{"role":"user","content":"`+prompt+`"}]}`, map[string]string{"x-mock-cached": "900", "x-mock-cache-write": "600,400"})
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "claude-c" || resp.Header.Get("x-stellwerk-attempts") != "2" {
			t.Fatalf("stream %v: %d %v %.300s", stream, resp.StatusCode, resp.Header, b)
		}
		id := resp.Header.Get("x-stellwerk-decision-id")
		var rec gjson.Result
		waitFor(t, "the record", func() bool {
			p := auditPage(t, s, "kind=decision&decision_id="+id)
			if len(p.Records) == 1 {
				rec = gjson.ParseBytes(p.Records[0].Record)
			}
			return len(p.Records) == 1
		})
		u := rec.Get("usage")
		if want := float64(writeCost(u.Get("prompt_tokens").Int(), "600,400")) / 1e6; u.Get("cache_write_tokens").Int() != 600 ||
			u.Get("cache_write_1h_tokens").Int() != 400 || math.Abs(rec.Get("cost.eur").Float()-want) > 1e-9 {
			t.Errorf("stream %v: usage %s cost %s; want %v EUR", stream, u.Raw, rec.Get("cost").Raw, want)
		}
	}
}

// spendByModel is /admin/spend grouped by model since start, once it has
// want groups (or after 10 s, with what it has).
func spendByModel(t *testing.T, s *harness.Stack, start time.Time, want int) []gjson.Result {
	t.Helper()
	rangeQ := "since=" + start.Format(time.RFC3339) + "&until=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var rows []gjson.Result
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		get, err := s.AdminGet("/admin/spend?group_by=model&" + rangeQ)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(get.Body)
		get.Body.Close()
		rows = gjson.GetBytes(b, "data").Array()
		if len(rows) >= want || time.Now().After(deadline) {
			return rows
		}
	}
}

// TestSpendByEndUserAndTag (the peer-switcher probe): one service key
// serves many end users; the official Python SDK's `user` and `metadata`
// (chat completions and the Responses API), and the x-stellwerk-metadata
// header, reach the spend ledger, and GET /admin/spend groups by end user
// and by the tag spend.tag names.
func TestSpendByEndUserAndTag(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, harness.Options{
		// In the EU: an email in `user` is personal data, which the
		// default workspace keeps there.
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p", Residency: "eu"}},
		Models: []config.Model{{ID: "m1", Provider: "p", ProviderModel: "m1-upstream", ContextWindow: 8000,
			Price: config.Price{InputPerMTok: 2, OutputPerMTok: 10}}},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default"}}
			c.Keys = []config.Key{{ID: "svc", SHA256: auth.Hash("sk-svc"), Workspace: "default"}}
			c.Spend.Tag = "project"
		},
	})
	start := time.Now().Add(-time.Minute).UTC()
	out, err := exec.Command(py, "-c", `import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-svc", max_retries=0)
msgs = [{"role": "user", "content": "hello"}]
c.chat.completions.create(model="m1", messages=msgs, user="ana@example.com", metadata={"project": "p1", "feature": "chat"})
c.chat.completions.create(model="m1", messages=msgs, user="ana@example.com", metadata={"project": "p2"})
for ch in c.chat.completions.create(model="m1", messages=msgs, user="bob", stream=True, metadata={"project": "p1"}):
    pass
c.responses.create(model="m1", input="hello", user="carol", metadata={"project": "p2"})
c.chat.completions.create(model="m1", messages=msgs, extra_headers={"x-stellwerk-metadata": '{"project": "p3"}'})
c.chat.completions.create(model="m1", messages=msgs, user="x" * 300)
print("ok")`, s.URL).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python SDK: %v\n%s", err, out)
	}
	rangeQ := "since=" + start.Format(time.RFC3339) + "&until=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	report := func(q string, rows int64) gjson.Result {
		t.Helper()
		var r gjson.Result
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			get, err := s.AdminGet("/admin/spend?" + rangeQ + "&" + q)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(get.Body)
			get.Body.Close()
			if get.StatusCode != 200 {
				t.Fatalf("GET /admin/spend?%s: %d %s", q, get.StatusCode, b)
			}
			r = gjson.ParseBytes(b)
			if r.Get("total.requests").Int() >= rows || time.Now().After(deadline) {
				return r
			}
		}
	}
	counts := func(r gjson.Result, dim string) map[string]int64 {
		got := map[string]int64{}
		for _, g := range r.Get("data").Array() {
			got[g.Get(dim).Str] = g.Get("requests").Int()
			if g.Get("cost_micro_eur").Int() <= 0 {
				t.Errorf("%s %q: no cost: %s", dim, g.Get(dim).Str, g.Raw)
			}
		}
		return got
	}
	byUser := report("group_by=end_user", 6)
	if got, want := counts(byUser, "end_user"), map[string]int64{"ana@example.com": 2, "bob": 1, "carol": 1, "": 1, strings.Repeat("x", 128): 1}; !equalCounts(got, want) {
		t.Errorf("by end user %v, want %v\n%s", got, want, byUser.Raw)
	}
	if g := byUser.Get("group_by").Raw; g != `["workspace","end_user"]` {
		t.Errorf("group_by %s: end users are grouped with their workspace", g)
	}
	byTag := report("group_by=tag", 6)
	if got, want := counts(byTag, "tag"), map[string]int64{"p1": 2, "p2": 2, "p3": 1, "": 1}; !equalCounts(got, want) {
		t.Errorf("by tag %v, want %v\n%s", got, want, byTag.Raw)
	}
	filtered := report("group_by=tag&end_user=ana@example.com", 2)
	if got, want := counts(filtered, "tag"), map[string]int64{"p1": 1, "p2": 1}; !equalCounts(got, want) {
		t.Errorf("ana's tags %v, want %v\n%s", got, want, filtered.Raw)
	}
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestThinkingIsChargedWhenCut (the reasoning probe): Claude streams its
// extended thinking before its answer and bills it as output. A stream the
// provider cut after the first words of the answer was charged the 1
// output token message_start announces, as if the provider had said so:
// the thinking streamed before it is output too, and is charged, estimated.
// The stream run to its end is charged the provider's count.
func TestThinkingIsChargedWhenCut(t *testing.T) {
	t.Parallel()
	price := config.Price{InputPerMTok: 1000, OutputPerMTok: 5000} // µEUR a token
	var models []config.Model
	for _, id := range []string{"claude-think", "claude-think-cut"} {
		models = append(models, config.Model{ID: id, Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 200000,
			MaxOutputTokens: 64000, Price: price})
	}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "claude", Key: "sk-ant", WireFormat: "anthropic"}},
		Models:    models,
		Mutate:    func(c *config.Config) { c.Currency.USDToEUR = 1 },
	})
	start := time.Now().Add(-time.Minute).UTC()
	for _, model := range []string{"claude-think", "claude-think-cut"} {
		body := `{"model":"` + model + `","max_tokens":8000,"stream":true,"thinking":{"type":"enabled","budget_tokens":4000},` +
			`"messages":[{"role":"user","content":"Which reading of the contract is right?"}]}`
		hdr := map[string]string{"anthropic-version": "2023-06-01"}
		if model == "claude-think-cut" {
			hdr["x-mock-reset"] = "truncate"
		}
		resp, b := post(t, s.URL+"/v1/messages", body, hdr)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"thinking_delta"`) {
			t.Fatalf("%s: %d %.300s", model, resp.StatusCode, b)
		}
	}
	rows := spendByModel(t, s, start, 2)
	if len(rows) != 2 {
		t.Fatalf("spend rows %v", rows)
	}
	const thought = 40 * 12 // the mock's thinking, in its count
	for _, g := range rows {
		out, estimated := g.Get("tokens_out").Int(), g.Get("estimated").Int() != 0
		switch g.Get("model").Str {
		case "claude-think": // the provider's count: the thinking and the answer
			if out <= thought || estimated {
				t.Errorf("complete: %s, want more than %d output tokens, counted by the provider", g.Raw, thought)
			}
		case "claude-think-cut": // what was streamed, thinking included, estimated
			if out < thought/2 || !estimated || g.Get("cost_micro_eur").Int() < thought/2*5000 {
				t.Errorf("cut: %s, want the thinking streamed (about %d tokens) charged, estimated", g.Raw, thought)
			}
		}
	}
}

// TestWebSearchesCharged (the reasoning probe): Anthropic bills each search
// its web_search server tool runs (10 USD per 1,000) beside the tokens, and
// counts them in usage.server_tool_use. They were neither held nor charged:
// a request with 20 searches was charged 2 % of its bill. At a token price
// of 0 every µEUR here is a search, 10,000 each at usd_to_eur 1.
func TestWebSearchesCharged(t *testing.T) {
	t.Parallel()
	var models []config.Model
	for _, id := range []string{"claude-json", "claude-stream", "claude-cut"} {
		models = append(models, config.Model{ID: id, Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 200000,
			MaxOutputTokens: 1000, Price: config.Price{Currency: "USD"}})
	}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "claude", Key: "sk-ant", WireFormat: "anthropic"}},
		Models:    models,
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default"}}
			c.Keys = []config.Key{{ID: "app", SHA256: auth.Hash("sk-app"), Workspace: "default"}, {ID: "tight", SHA256: auth.Hash("sk-tight"), Workspace: "default"}}
			c.Budgets.Limits = []config.BudgetRule{{Name: "tight", Scope: "key", Subject: "tight", AmountEUR: 0.015, Period: "day"}}
		},
	})
	start := time.Now().Add(-time.Minute).UTC()
	tool := "web_search_20250305"
	send := func(key, model string, stream bool, maxUses int, hdr map[string]string) (int, string) {
		body := `{"model":"` + model + `","max_tokens":100,"stream":` + strconv.FormatBool(stream) +
			`,"tools":[{"type":"` + tool + `","name":"web_search","max_uses":` + strconv.Itoa(maxUses) + `}],` +
			`"messages":[{"role":"user","content":"Find recent reviews of the Fairphone 5."}]}`
		h := map[string]string{"Authorization": "Bearer " + key, "anthropic-version": "2023-06-01"}
		for k, v := range hdr {
			h[k] = v
		}
		resp, b := post(t, s.URL+"/v1/messages", body, h)
		return resp.StatusCode, string(b)
	}
	// Held: two searches are 0.02 EUR, past the tight key's 0.015; one fits.
	if code, b := send("sk-tight", "claude-json", false, 2, nil); code != 429 || !strings.Contains(b, "budget_exceeded") {
		t.Errorf("two searches against 0.015 EUR: %d %.300s; want 429 budget_exceeded", code, b)
	}
	tool = `web\u005fsearch_20250305` // the same type to Anthropic, and to the hold (the red-team probe)
	if code, b := send("sk-tight", "claude-json", false, 2, nil); code != 429 || !strings.Contains(b, "budget_exceeded") {
		t.Errorf("two searches, the tool's type escaped, against 0.015 EUR: %d %.300s; want 429 budget_exceeded", code, b)
	}
	tool = "web_search_20250305"
	if code, b := send("sk-tight", "claude-json", false, 1, nil); code != 200 {
		t.Errorf("one search against 0.015 EUR: %d %.300s", code, b)
	}
	// Charged: the JSON answer's and the stream's count, and a stream cut
	// after its searches (the usage that counts them never came).
	for _, c := range []struct {
		model  string
		stream bool
		hdr    map[string]string
	}{{"claude-json", false, nil}, {"claude-stream", true, nil}, {"claude-cut", true, map[string]string{"x-mock-reset": "truncate"}}} {
		if code, b := send("sk-app", c.model, c.stream, 2, c.hdr); code != 200 {
			t.Fatalf("%s: %d %.300s", c.model, code, b)
		}
	}
	rows := spendByModel(t, s, start, 3)
	got := map[string]int64{}
	for _, g := range rows {
		got[g.Get("model").Str] = g.Get("cost_micro_eur").Int()
	}
	// claude-json: one search for the tight key, two for the app key.
	if got["claude-json"] != 30000 || got["claude-stream"] != 20000 || got["claude-cut"] != 20000 {
		t.Errorf("charged %v µEUR; want 30000 (three searches), 20000 and 20000", got)
	}
}
