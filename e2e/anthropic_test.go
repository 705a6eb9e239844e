package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestAnthropicWireFormat: an OpenAI client reaches a provider that speaks
// Anthropic's Messages API, streamed and not, and gets OpenAI answers.
func TestAnthropicWireFormat(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"}},
		Models: []config.Model{{ID: "claude-sonnet", Provider: "claude", ProviderModel: "claude-sonnet-4-5", ContextWindow: 200000,
			Price: config.Price{InputPerMTok: 3, OutputPerMTok: 15}}},
	})
	p := s.Providers["claude"]

	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"claude-sonnet","max_tokens":300,"messages":[
		{"role":"system","content":"Be brief."},{"role":"user","content":"bonjour à tous"}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Object  string `json:"object"`
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Routing struct {
			Cost struct{ Amount float64 } `json:"cost"`
		} `json:"routing"`
	}
	mustJSON(t, b, &out)
	if out.Object != "chat.completion" || out.Choices[0].Message.Content != "Hello from claude. You said: bonjour à tous" ||
		out.Choices[0].FinishReason != "stop" || out.Usage.CompletionTokens == 0 || out.Routing.Cost.Amount == 0 {
		t.Errorf("answer %s", b)
	}
	rq := p.Requests()[0]
	if !strings.HasSuffix(rq.Path, "/v1/messages") || rq.Header.Get("x-api-key") != "sk-ant-fake" || rq.Header.Get("anthropic-version") == "" ||
		rq.Header.Get("Authorization") != "" {
		t.Errorf("upstream request %s %v", rq.Path, rq.Header)
	}
	var sent struct {
		Model     string `json:"model"`
		System    any    `json:"system"`
		MaxTokens int    `json:"max_tokens"`
	}
	mustJSON(t, rq.Body, &sent)
	if sent.Model != "claude-sonnet-4-5" || sent.System == nil || sent.MaxTokens != 300 {
		t.Errorf("translated request %s", rq.Body)
	}

	// One tool call at a time, on chat and on the Responses API: Anthropic's
	// tool choice says it (found with the SDKs: it was dropped, and an agent
	// that handles one call at a time got several).
	for path, body := range map[string]string{
		"/v1/chat/completions": `{"model":"claude-sonnet","parallel_tool_calls":false,"messages":[{"role":"user","content":"weather?"}],
			"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}`,
		"/v1/responses": `{"model":"claude-sonnet","parallel_tool_calls":false,"input":"weather?",
			"tools":[{"type":"function","name":"a"},{"type":"function","name":"b"}]}`,
	} {
		if resp, b := post(t, s.URL+path, body, nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		reqs := p.Requests()
		if got := gjson.GetBytes(reqs[len(reqs)-1].Body, "tool_choice").Raw; got != `{"type":"auto","disable_parallel_tool_use":true}` {
			t.Errorf("%s: tool_choice as sent %s", path, got)
		}
	}

	// Streaming: OpenAI chunks, usage recorded, no usage chunk unless asked.
	resp2, data := streamReq(t, s, `{"model":"claude-sonnet","stream":true,"messages":[{"role":"user","content":"stream it"}]}`, nil)
	if resp2.StatusCode != 200 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("stream: %d %v", resp2.StatusCode, data)
	}
	var text strings.Builder
	for _, d := range data[:len(data)-1] {
		if strings.Contains(d, `"usage"`) {
			t.Errorf("unrequested usage chunk: %s", d)
		}
		var c struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		mustJSON(t, []byte(d), &c)
		if c.Object != "chat.completion.chunk" {
			t.Fatalf("not an OpenAI chunk: %s", d)
		}
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
	}
	if text.String() != "Hello from claude. You said: stream it" {
		t.Errorf("streamed text %q", text.String())
	}
	rec := finished(t, s, resp2.Header.Get("x-stellwerk-decision-id"))
	if rec["usage_estimated"] != false || rec["completion_tokens"].(float64) < 1 {
		t.Errorf("usage record %v", rec)
	}

	// Errors come back in the OpenAI shape; Anthropic's overloaded keeps
	// its 529 (TestOverloadedEverywhereIs529).
	resp3, b3 := post(t, s.URL+"/v1/chat/completions", `{"model":"claude-sonnet","messages":[{"role":"user","content":"x"}]}`, map[string]string{"x-mock-status": "529"})
	if resp3.StatusCode != 529 {
		t.Fatalf("error status %d: %s", resp3.StatusCode, b3)
	}
	if e := decodeError(t, b3); !strings.Contains(e.Error.Message, "injected failure 529") {
		t.Errorf("error %+v", e.Error)
	}

	// The official Python SDK reads the translated stream.
	py := harness.RequirePython(t)
	cmd := exec.Command(py, "-c", `
import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="x", max_retries=0)
text = "".join((ch.choices[0].delta.content or "") for ch in c.chat.completions.create(
    model="claude-sonnet", stream=True, messages=[{"role": "user", "content": "from python"}]) if ch.choices)
print(text)`, s.URL)
	outPy, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(outPy)) != "Hello from claude. You said: from python" {
		t.Errorf("python SDK: %v %s", err, outPy)
	}
	_ = filepath.Join
}

// TestAutoKeepsToWhatAnthropicCanTake: with model auto, a chat request
// carrying what the translation to Anthropic's Messages API cannot carry
// goes to an OpenAI-wire model even where an Anthropic-wire one would be
// chosen; it was a 400 blaming a valid request (custom tools, allowed_tools,
// a BMP image), or audio output and web search dropped unsaid (the SDK
// feature probe). Pinned to the Anthropic model it is 400 model_unsuitable
// saying why.
func TestAutoKeepsToWhatAnthropicCanTake(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"}, {Name: "gpt", Key: "sk-gpt"}},
		Models: []config.Model{
			{ID: "claude-cheap", Provider: "claude", ProviderModel: "claude-haiku-4-5", ContextWindow: 200000, Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.1}},
			{ID: "gpt-dear", Provider: "gpt", ProviderModel: "gpt-upstream", ContextWindow: 128000, Price: config.Price{InputPerMTok: 5, OutputPerMTok: 15}},
		},
		Mutate: func(c *config.Config) {
			c.Routing.DefaultModel = "claude-cheap"
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	const msgs = `"messages":[{"role":"user","content":"hello"}]`
	var decisions []string // to replay
	model := func(body string) (int, string, []byte) {
		t.Helper()
		resp, b := post(t, s.URL+"/v1/chat/completions", body, nil)
		decisions = append(decisions, resp.Header.Get("x-stellwerk-decision-id"))
		return resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b
	}
	if code, m, b := model(`{"model":"auto",` + msgs + `}`); code != 200 || m != "claude-cheap" {
		t.Fatalf("plain: %d %s %s", code, m, b)
	}
	const bmp = `"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]`
	for name, extra := range map[string]string{
		"custom tool":   `"tools":[{"type":"custom","custom":{"name":"code_exec"}}],` + msgs,
		"allowed_tools": `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"f"}}]}},` + msgs,
		"audio output":  `"modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},` + msgs,
		"web search":    `"web_search_options":{},` + msgs,
		"a BMP image":   bmp,
	} {
		if code, m, b := model(`{"model":"auto",` + extra + `}`); code != 200 || m != "gpt-dear" {
			t.Errorf("%s, auto: %d %s %s", name, code, m, b)
		}
	}
	// The Responses API reaches Anthropic through the same translation.
	resp, b := post(t, s.URL+"/v1/responses", `{"model":"auto","input":[{"role":"user","content":[{"type":"input_text","text":"what is this"},{"type":"input_image","image_url":"data:image/bmp;base64,Qk0="}]}]}`, nil)
	if m := resp.Header.Get("x-stellwerk-model"); resp.StatusCode != 200 || m != "gpt-dear" {
		t.Errorf("a BMP image, Responses API, auto: %d %s %s", resp.StatusCode, m, b)
	}
	code, _, b := model(`{"model":"claude-cheap","tools":[{"type":"custom","custom":{"name":"code_exec"}}],` + msgs + `}`)
	if e := decodeError(t, b).Error; code != 400 || e.Code != "model_unsuitable" || !strings.Contains(e.Message, "tools of type custom") {
		t.Errorf("pinned: %d %s", code, b)
	}
	// Each decision replays as it was made: the record keeps what kept
	// the request off the Anthropic model (it replayed to it: the upgrade
	// probe).
	s.Stop("stellwerk")
	for _, id := range decisions {
		if out, code := replayCLI(t, filepath.Join(s.Dir, "stellwerk.yaml"), id); code != 0 || !out.Identical {
			t.Errorf("replay %s: exit %d %+v", id, code, out)
		}
	}
}

// TestCacheMarkersReachAnthropic (the prompt-cache probe): the OpenAI
// Python SDK with Anthropic's cache_control on chat content parts and a
// tool, the convention LiteLLM and OpenRouter pass on. An Anthropic-wire
// provider gets each marker on the block it was on (the system prompt as
// text blocks); an OpenAI-wire one gets the request as sent; a marker
// Anthropic would refuse is a 400 naming it. The translation dropped them,
// so the prompt was never cached.
func TestCacheMarkersReachAnthropic(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "claude", Key: "sk-ant-fake", WireFormat: "anthropic"},
			{Name: "oai", Key: "sk-oai"},
		},
		Models: []config.Model{
			{ID: "claude-sonnet", Provider: "claude", ProviderModel: "claude-sonnet-4-5", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 3, OutputPerMTok: 15}},
			{ID: "gpt", Provider: "oai", ProviderModel: "gpt-upstream", ContextWindow: 200000,
				Price: config.Price{InputPerMTok: 3, OutputPerMTok: 15}},
		},
	})
	out, err := exec.Command(py, "-c", `import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0)
msgs = [
    {"role": "system", "content": [
        {"type": "text", "text": "Answer from the manual."},
        {"type": "text", "text": "<manual>signals</manual>", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
    {"role": "user", "content": [
        {"type": "text", "text": "What does red mean?", "cache_control": {"type": "ephemeral"}}]},
]
tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
          "cache_control": {"type": "ephemeral"}}]
for model in ("claude-sonnet", "gpt"):
    c.chat.completions.create(model=model, messages=msgs, tools=tools, max_tokens=50)
msgs[1]["content"][0]["cache_control"] = {"type": "ephemeral", "ttl": "24h"}
try:
    c.chat.completions.create(model="claude-sonnet", messages=msgs, max_tokens=50)
    print("accepted")
except openai.BadRequestError as e:
    print(e.body["param"])
`, s.URL).CombinedOutput()
	if err != nil {
		t.Fatalf("python SDK: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "messages[1].content[0].cache_control.ttl" {
		t.Errorf("a ttl of 24h: %s, want a 400 naming messages[1].content[0].cache_control.ttl", got)
	}

	reqs := s.Providers["claude"].Requests()
	if len(reqs) != 1 {
		t.Errorf("claude got %d requests, want 1 (the refused one is not sent)", len(reqs))
	}
	sent := gjson.ParseBytes(reqs[0].Body)
	for path, want := range map[string]string{
		"system":                             `[{"type":"text","text":"Answer from the manual."},{"type":"text","text":"<manual>signals</manual>","cache_control":{"type":"ephemeral","ttl":"1h"}}]`,
		"messages.0.content.0.cache_control": `{"type":"ephemeral"}`,
		"tools.0.cache_control":              `{"type":"ephemeral"}`,
	} {
		if got := sent.Get(path).Raw; got != want {
			t.Errorf("claude got %s = %s, want %s", path, got, want)
		}
	}
	oai := s.Providers["oai"].Requests()
	if len(oai) != 1 {
		t.Fatalf("oai got %d requests, want 1", len(oai))
	}
	o := gjson.ParseBytes(oai[0].Body)
	if got := o.Get("messages.0.content.1.cache_control").Raw; got != `{"type":"ephemeral","ttl":"1h"}` ||
		o.Get("tools.0.cache_control.type").Str != "ephemeral" {
		t.Errorf("the OpenAI-wire provider did not get the request as sent: %s", oai[0].Body)
	}
}
