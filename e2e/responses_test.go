package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// responsesStack has a native Responses provider that keeps stored
// responses (oai, US), a native one that does not (zdr, EU), a chat-only
// OpenAI-wire provider (alpha, US) and an Anthropic-wire one (claude, EU).
func responsesStack(t *testing.T) *harness.Stack { return responsesStackWith(t, nil) }

func responsesStackWith(t *testing.T, mutate func(*config.Config)) *harness.Stack {
	price := func(in, out float64) config.Price { return config.Price{InputPerMTok: in, OutputPerMTok: out} }
	native := []string{"chat", "responses", "tools", "json_mode", "streaming"}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "oai", Key: "sk-oai"}, {Name: "zdr", Key: "sk-zdr", Residency: "eu"},
			{Name: "alpha", Key: "sk-alpha"}, {Name: "claude", Key: "sk-claude", Residency: "eu", WireFormat: "anthropic"}},
		Models: []config.Model{
			{ID: "gpt-native", Provider: "oai", ProviderModel: "gpt-up", ContextWindow: 128000, Price: price(1, 2), Capabilities: native},
			{ID: "native-eu", Provider: "zdr", ProviderModel: "gpt-eu", ContextWindow: 128000, Price: price(2, 4), Capabilities: native},
			{ID: "chat-us", Provider: "alpha", ProviderModel: "alpha-chat", ContextWindow: 128000, Price: price(0.5, 1)},
			{ID: "claude-eu", Provider: "claude", ProviderModel: "claude-upstream", ContextWindow: 200000, Price: price(3, 15),
				Capabilities: []string{"chat", "tools", "streaming"}},
		},
		DefaultModel: "gpt-native",
		Mutate: func(c *config.Config) {
			for i := range c.Providers {
				c.Providers[i].StoredResponses = c.Providers[i].Name == "oai"
			}
			if mutate != nil {
				mutate(c)
			}
		},
	})
	s.Providers["oai"].StoreResponses(true)
	return s
}

// TestResponsesPythonSDK: client.responses.create and .stream with the
// official openai Python SDK through Envoy, served natively, translated to
// chat and translated to Anthropic Messages, with tools; stored responses;
// the policy denying a secret; residency.
func TestResponsesPythonSDK(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := responsesStack(t)
	checkResponses(t, s, exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "responses.py"), s.URL), "python")
}

// TestResponsesNodeSDK is TestResponsesPythonSDK with the openai npm package.
func TestResponsesNodeSDK(t *testing.T) {
	t.Parallel()
	node := harness.RequireNodeClient(t)
	s := responsesStack(t)
	checkResponses(t, s, exec.Command(node, filepath.Join(harness.Root(), "e2e", "clients", "node", "responses.mjs"), s.URL), "node")
}

func checkResponses(t *testing.T, s *harness.Stack, cmd *exec.Cmd, lang string) {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s client failed: %v\n%s\n%s", lang, err, out, stderr)
	}
	r := gjson.ParseBytes(out)
	t.Logf("%s openai %s", lang, r.Get("sdk_version").Str)
	want := func(path, value string) {
		t.Helper()
		if got := r.Get(path); got.String() != value {
			t.Errorf("%s = %s, want %s", path, got.Raw, value)
		}
	}
	textEvents := `["response.created","response.in_progress","response.output_item.added","response.content_part.added",` +
		`"response.output_text.delta","response.output_text.done","response.content_part.done","response.output_item.done","response.completed"]`
	calls := `[["get_weather",{"city":"example"}],["get_time",{"tz":"UTC"}]]`
	for model, provider := range map[string]string{"gpt-native": "oai", "chat-us": "alpha", "claude-eu": "claude"} {
		by := "by." + model + "."
		want(by+"text.headers.model", model)
		want(by+"text.headers.provider", provider)
		want(by+"text.routing_model", model)
		if !strings.Contains(r.Get(by+"text.output_text").Str, "Hello from "+provider+". You said: hello responses") ||
			r.Get(by+"text.input_tokens").Int() < 1 || r.Get(by+"text.routing_prompt_tokens").Int() != r.Get(by+"text.input_tokens").Int() ||
			r.Get(by+"text.cost_eur").Float() <= 0 {
			t.Errorf("%s text: %s", model, r.Get(by+"text").Raw)
		}
		if model != "gpt-native" { // a translated answer repeats the request, as OpenAI's does (the native one is the provider's)
			want(by+"text.metadata", `{"ticket":"T-1"}`)
			want(by+"text.instructions", "be brief")
			want(by+"stream.metadata", `{"ticket":"T-2"}`)
		}
		want(by+"tools", calls)
		want(by+"stream_tools", calls)
		if !strings.Contains(r.Get(by+"after_tools").Str, "Hello from "+provider) {
			t.Errorf("%s after tools: %s", model, r.Get(by+"after_tools").Raw)
		}
		want(by+"stream.types", textEvents)
		want(by+"stream.status", "completed")
		if !strings.Contains(r.Get(by+"stream.output_text").Str, "Hello from "+provider+". You said: stream responses") || r.Get(by+"stream.output_tokens").Int() < 1 {
			t.Errorf("%s stream: %s", model, r.Get(by+"stream").Raw)
		}
	}
	want("by.gpt-native.json", `{"city":"example"}`)
	want("by.chat-us.json", `{"city":"example"}`)

	// Stored responses: served by the provider that keeps them; the fake
	// provider answers a previous_response_id it does not know with a 404,
	// so a 200 proves the id reached the provider that stored it.
	want("stored.headers.model", "gpt-native")
	if r.Get("stored.input_tokens").Int() <= r.Get("stored.first_input_tokens").Int() || !strings.Contains(r.Get("stored_stream").Str, "Hello from oai") {
		t.Errorf("stored: %s %s", r.Get("stored").Raw, r.Get("stored_stream").Raw)
	}
	for _, k := range []string{"stored_chat", "stored_anthropic", "stored_not_kept"} {
		want(k+".status", "400")
		want(k+".code", "model_unsuitable")
	}
	if !strings.Contains(r.Get("stored_chat.message").Str, "previous_response_id needs a provider that serves the Responses API natively") ||
		!strings.Contains(r.Get("stored_not_kept.message").Str, "provider zdr keeps no stored responses") {
		t.Errorf("reasons: %s / %s", r.Get("stored_chat.message").Str, r.Get("stored_not_kept.message").Str)
	}
	want("stored_eu.status", "503")
	want("stored_eu.code", "no_eligible_model")

	for _, k := range []string{"secret", "secret_native", "secret_tool_output"} {
		want(k+".status", "403")
		want(k+".code", "policy_denied")
	}
	want("eu.residency", "eu")
	if p := r.Get("eu.headers.provider").Str; p != "zdr" && p != "claude" || !strings.Contains(r.Get("eu_stream").Str, "Hello from "+p) {
		t.Errorf("eu: %s %s", r.Get("eu").Raw, r.Get("eu_stream").Raw)
	}

	// What the providers received: the Responses API itself at the native
	// ones, chat completions and Anthropic Messages at the others, the
	// upstream model names, never the secret.
	for name, wantPath := range map[string]string{"oai": "/v1/responses", "zdr": "/v1/responses", "alpha": "/v1/chat/completions", "claude": "/v1/messages"} {
		for _, rq := range s.Providers[name].Requests() {
			if rq.Path != wantPath {
				t.Errorf("%s got %s", name, rq.Path)
			}
			if strings.Contains(string(rq.Body), "AKIAIOSFODNN7EXAMPLE") {
				t.Errorf("%s received the secret: %s", name, rq.Body)
			}
			if gjson.GetBytes(rq.Body, "policy").Exists() {
				t.Errorf("%s received stellwerk's policy: %s", name, rq.Body)
			}
		}
	}
	var native, previous int
	for _, rq := range s.Providers["oai"].Requests() {
		native++
		if gjson.GetBytes(rq.Body, "model").Str != "gpt-up" {
			t.Errorf("oai got model %s", gjson.GetBytes(rq.Body, "model").Raw)
		}
		if gjson.GetBytes(rq.Body, "previous_response_id").Exists() {
			previous++
		}
	}
	if native < 7 || previous != 2 {
		t.Errorf("oai: %d requests, %d with previous_response_id", native, previous)
	}

	// The Anthropic provider got the function tools in its own shape.
	found := false
	for _, rq := range s.Providers["claude"].Requests() {
		found = found || gjson.GetBytes(rq.Body, "tools.1.input_schema").Exists()
	}
	if !found {
		t.Error("claude never got the tools as Anthropic tools")
	}
}

// TestResponsesPipeline: Responses requests go through what chat goes
// through: the budget (a request whose worst case does not fit is
// refused), the audit record with the usage the native answer reported
// (input_tokens, output_tokens), the metrics, and a replay of each
// decision from its record gives the same explanation — stored-response
// refusals included.
func TestResponsesPipeline(t *testing.T) {
	t.Parallel()
	s := responsesStackWith(t, func(c *config.Config) {
		c.Currency.USDToEUR = 1
		c.Budgets.Limits = []config.BudgetRule{{Name: "daily", Scope: "global", AmountEUR: 0.05, Period: "day"}}
		c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: "prometheus", Role: config.RoleViewer, SHA256: auth.Hash("prom-viewer-token")})
	})
	type want struct {
		status        int
		code, served  string
		prompt, compl int64 // the usage the answer reported, 0: none
	}
	wants := map[string]want{}
	send := func(body string, status int) []byte {
		t.Helper()
		resp, b := post(t, s.URL+"/v1/responses", body, nil)
		if resp.StatusCode != status || resp.Header.Get(header.DecisionID) == "" {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
		w := want{status: status, code: gjson.GetBytes(b, "error.code").Str, served: resp.Header.Get(header.Model)}
		if status == 200 && gjson.GetBytes(b, "usage").Exists() {
			w.prompt, w.compl = gjson.GetBytes(b, "usage.input_tokens").Int(), gjson.GetBytes(b, "usage.output_tokens").Int()
			if gjson.GetBytes(b, "routing.usage.prompt_tokens").Int() != w.prompt || gjson.GetBytes(b, "routing.cost.source").Str != "provider_usage" {
				t.Errorf("routing %s, usage %s", gjson.GetBytes(b, "routing").Raw, gjson.GetBytes(b, "usage").Raw)
			}
		}
		wants[resp.Header.Get(header.DecisionID)] = w
		return b
	}
	// 0.05 EUR a day: what claude-eu may write (4,096 tokens at 15 EUR per
	// million) does not fit; 100 tokens do, and so does anything else.
	first := send(`{"model":"auto","input":"remember the word kiwi","max_output_tokens":100}`, 200)
	send(`{"model":"auto","input":"and then?","max_output_tokens":100,"previous_response_id":"`+gjson.GetBytes(first, "id").Str+`"}`, 200)
	send(`{"model":"chat-us","input":"hello chat"}`, 200)
	send(`{"model":"claude-eu","input":"hello claude","max_output_tokens":100}`, 200)
	send(`{"model":"chat-us","input":"x","previous_response_id":"resp_1"}`, 400)
	// A background response could never be fetched (GET /v1/responses/{id}
	// is not routed): refused for the native model too (the SDK probe).
	if b := send(`{"model":"gpt-native","input":"hi","background":true}`, 400); gjson.GetBytes(b, "error.param").Str != "background" {
		t.Errorf("background: %s", b)
	}
	send(`{"model":"claude-eu","input":"write a long story"}`, 429)
	send(`{"model":"auto","input":"my key is AKIAIOSFODNN7EXAMPLE"}`, 403)
	// A built-in tool's members are the caller's text too: an MCP server's
	// header with a key was not classified, and reached the provider.
	send(`{"model":"auto","input":"hi","tools":[{"type":"mcp","server_label":"x","server_url":"https://mcp.example","headers":{"Authorization":"Bearer AKIAIOSFODNN7EXAMPLE"}}]}`, 403)
	// As are safety_identifier and prompt_cache_key, which a native provider
	// gets as sent.
	send(`{"model":"auto","input":"hi","safety_identifier":"AKIAIOSFODNN7EXAMPLE"}`, 403)
	// An IBAN in one is restricted data: only the US provider serves
	// built-in tools here.
	if b := send(`{"model":"auto","input":"hi","tools":[{"type":"web_search","user_location":{"type":"approximate","city":"DE89 3704 0044 0532 0130 00"}}]}`, 503); !strings.Contains(gjson.GetBytes(b, "error.message").Str, "restricted data requires eu") {
		t.Errorf("an IBAN in a built-in tool: %s", b)
	}

	// What a native provider gets as sent and the chat translation has no
	// field for is read too: include, reasoning.summary, an output_text
	// part's annotations, an item's id (a helper's finding: each reached
	// the US native model).
	send(`{"model":"auto","input":"hi","include":["AKIAIOSFODNN7EXAMPLE"]}`, 403)
	send(`{"model":"auto","input":"hi","reasoning":{"summary":"AKIAIOSFODNN7EXAMPLE"}}`, 403)
	send(`{"model":"auto","input":[{"role":"assistant","content":[{"type":"output_text","text":"ok","annotations":[{"type":"url_citation","url":"https://x.example/?k=AKIAIOSFODNN7EXAMPLE"}]}]},{"role":"user","content":"and?"}]}`, 403)
	resetAll(s)
	// An IBAN in an item's id is restricted data: no US model (and the EU
	// ones lack the assurance tier it needs).
	if b := send(`{"model":"auto","max_output_tokens":100,"input":[{"type":"message","id":"DE89 3704 0044 0532 0130 00","role":"user","content":"hi"}]}`, 503); !strings.Contains(gjson.GetBytes(b, "error.message").Str, "restricted data requires eu") {
		t.Errorf("an IBAN in an item's id: %s", b)
	}
	send(`{"model":"chat-us","input":[{"type":"message","id":"msg_1","status":"completed","role":"user","content":"hi"}]}`, 200)
	// A file sent inline wherever a native provider reads one is decoded
	// and classified as a file in input is: in a prompt template's
	// variables, in a function call's output parts (the red-team probe:
	// both reached the US native model unread).
	const keyFile, ibanFile = "data:text/plain;base64,a2V5IEFLSUFJT1NGT0ROTjdFWEFNUExF", "data:text/csv;base64,bmFtZSxpYmFuCkFubmEsREU4OSAzNzA0IDAwNDQgMDUzMiAwMTMwIDAwCg=="
	send(`{"model":"auto","input":"summarise {{x}}","prompt":{"id":"pmpt_1","variables":{"x":{"type":"input_file","filename":"a.txt","file_data":"`+keyFile+`"}}}}`, 403)
	if b := send(`{"model":"auto","max_output_tokens":100,"input":"summarise {{x}}","prompt":{"id":"pmpt_1","variables":{"x":{"type":"input_file","filename":"c.csv","file_data":"`+ibanFile+`"}}}}`, 503); !strings.Contains(gjson.GetBytes(b, "error.message").Str, "restricted data requires eu") {
		t.Errorf("an IBAN in a prompt variable's file: %s", b)
	}
	send(`{"model":"auto","input":[{"type":"function_call","call_id":"c1","name":"read","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":[{"type":"input_file","filename":"a.txt","file_data":"`+keyFile+`"}]}]}`, 403)
	send(`{"model":"auto","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","file_id":"file-1","note":"AKIAIOSFODNN7EXAMPLE"}]}]}`, 403)
	for name, p := range s.Providers {
		for _, rq := range p.Requests() {
			if strings.Contains(string(rq.Body), "DE89") {
				t.Errorf("an IBAN in an item's id reached %s: %s", name, rq.Body)
			}
			if strings.Contains(string(rq.Body), "x_stellwerk_unread") {
				t.Errorf("%s got the decision copy's unread member: %s", name, rq.Body)
			}
		}
	}
	if n := len(s.Providers["alpha"].Requests()); n != 1 {
		t.Errorf("chat-us got %d requests, want the pinned one", n)
	}

	var page admin.AuditPage
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page = auditPage(t, s, "kind=decision&limit=1000")
		if len(page.Records) >= len(wants) || time.Now().After(deadline) {
			break
		}
	}
	if len(page.Records) != len(wants) {
		t.Fatalf("%d decision records, want %d", len(page.Records), len(wants))
	}
	for _, v := range page.Records {
		w, ok := wants[v.ID]
		if !ok {
			t.Fatalf("a record of an unknown request %s", v.ID)
		}
		var rec audit.Record
		mustJSON(t, v.Record, &rec)
		if rec.Status != w.status || rec.ErrorCode != w.code || (w.status == 200 && rec.Served != w.served) {
			t.Errorf("%s: status %d %q served %q; want %+v", v.ID, rec.Status, rec.ErrorCode, rec.Served, w)
		}
		if w.prompt > 0 && (rec.Usage == nil || int64(rec.Usage.PromptTokens) != w.prompt || int64(rec.Usage.CompletionTokens) != w.compl ||
			rec.Cost == nil || rec.Cost.EUR <= 0) {
			t.Errorf("%s: usage %+v cost %+v, want %d/%d", v.ID, rec.Usage, rec.Cost, w.prompt, w.compl)
		}
	}
	text, _ := scrape(t, s)
	for _, line := range []string{
		`stellwerk_requests_total{error_code="",model="gpt-native",provider="oai",status_class="2xx",workspace="default"} 2`,
		`stellwerk_requests_total{error_code="",model="chat-us",provider="alpha",status_class="2xx",workspace="default"} 2`,
		`stellwerk_requests_total{error_code="",model="claude-eu",provider="claude",status_class="2xx",workspace="default"} 1`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	s.Stop("stellwerk")
	cfgPath := filepath.Join(s.Dir, "stellwerk.yaml")
	for id, w := range wants {
		if w.code == "unsupported_parameter" {
			continue // refused as it was read, before a decision: nothing to replay
		}
		if out, code := replayCLI(t, cfgPath, id); code != 0 || !out.Identical {
			t.Errorf("replay %s: exit %d %+v", id, code, out)
		}
	}
}

// TestResponsesFailover: when the native provider fails, the request goes
// to the next model of its plan, rewritten by that attempt's egress for
// its provider (chat completions or Anthropic Messages), and the client
// still gets a response object, or the Responses API's events.
func TestResponsesFailover(t *testing.T) {
	t.Parallel()
	s := responsesStack(t)
	s.Providers["oai"].SetBehavior(mockllm.Behavior{Status: 503})
	resp, b := post(t, s.URL+"/v1/responses", `{"model":"auto","input":"hello failover","max_output_tokens":50}`, nil)
	served := resp.Header.Get(header.Model)
	if resp.StatusCode != 200 || resp.Header.Get(header.FallbackFrom) != "gpt-native" || gjson.GetBytes(b, "object").Str != "response" ||
		!strings.Contains(gjson.GetBytes(b, "output.0.content.0.text").Str, "You said: hello failover") ||
		gjson.GetBytes(b, "routing.attempts.#").Int() != 2 || gjson.GetBytes(b, "usage.input_tokens").Int() < 1 {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
	resp, b = post(t, s.URL+"/v1/responses", `{"model":"auto","input":"stream failover","stream":true}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get(header.Model) != served {
		t.Fatalf("stream: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	var lastEvent, lastData string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			lastEvent = v
		} else if v, ok := strings.CutPrefix(line, "data: "); ok {
			lastData = v
		}
	}
	if lastEvent != "response.completed" || !strings.Contains(gjson.Get(lastData, "response.output.0.content.0.text").Str, "You said: stream failover") {
		t.Fatalf("stream events: %s", b)
	}
	provider := resp.Header.Get(header.Provider)
	t.Logf("served by %s (%s) after gpt-native failed", served, provider)
	wantPath := map[string]string{"alpha": "/v1/chat/completions", "claude": "/v1/messages", "zdr": "/v1/responses"}[provider]
	got := s.Providers[provider].Requests()
	if wantPath == "" || len(got) != 2 || got[0].Path != wantPath || got[1].Path != wantPath {
		t.Fatalf("%s (%s) got %d requests: %+v", provider, wantPath, len(got), got)
	}
}
