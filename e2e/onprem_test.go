package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// onpremScript calls stellwerk with the openai Python SDK and prints what
// the application sees: "served <model> <provider>" or "<status> <code>".
const onpremScript = `import openai, sys
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-client-key", max_retries=0)
try:
    r = c.chat.completions.with_raw_response.create(model=sys.argv[2], max_tokens=20,
        messages=[{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * int(sys.argv[3])}])
    print("served", r.headers.get("x-stellwerk-model"), r.headers.get("x-stellwerk-provider"), r.parse().choices[0].message.content != "")
except openai.APIStatusError as e:
    print(e.status_code, e.code, e.message)`

func runOnprem(t *testing.T, py, url, model string, repeat int) string {
	t.Helper()
	out, err := exec.Command(py, "-c", onpremScript, url, model, strconv.Itoa(repeat)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSelfHostedOverflowFailsOver: vLLM's and llama.cpp's answers to a
// prompt larger than the model's window carry no OpenAI code (vLLM: code
// 400, type BadRequestError; llama.cpp: type exceed_context_size_error).
// They fail over to a larger model of the plan like OpenAI's, and with no
// larger model the application gets context_length_exceeded. Until
// 2026-12-08 the raw 400 reached the client after one attempt (the
// on-prem probe).
func TestSelfHostedOverflowFailsOver(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "vllm"}, {Name: "llamacpp"}, {Name: "big"}},
		Models: []config.Model{
			{ID: "vllm-small", Provider: "vllm", ProviderModel: "Qwen/Qwen2.5-7B-Instruct", ContextWindow: 4096,
				Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.1}},
			{ID: "llamacpp-small", Provider: "llamacpp", ProviderModel: "qwen2.5-7b", ContextWindow: 4096,
				Price: config.Price{InputPerMTok: 0.2, OutputPerMTok: 0.2}},
			{ID: "big-model", Provider: "big", ProviderModel: "big-upstream", ContextWindow: 128000,
				Price: config.Price{InputPerMTok: 3, OutputPerMTok: 6}},
		},
		Mutate: func(c *config.Config) {
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	for name, mode := range map[string]string{"vllm": "overflow-vllm", "llamacpp": "overflow-llamacpp"} {
		s.Providers[name].SetBehavior(mockllm.Behavior{Reset: mode})
	}
	// About 3,400 tokens: near the 4,096-token window, as a prompt the
	// server counts past it is.
	if got := runOnprem(t, py, s.URL, "auto", 340); !strings.HasPrefix(got, "served big-model big True") {
		t.Errorf("auto, vLLM's overflow: %q, want served by the larger model", got)
	}
	if n := len(s.Providers["vllm"].Requests()); n != 1 {
		t.Errorf("vLLM got %d requests, want 1", n)
	}
	// Pinned, no larger model after it: the code the SDKs know.
	for _, m := range []string{"vllm-small", "llamacpp-small"} {
		if got := runOnprem(t, py, s.URL, m, 340); !strings.HasPrefix(got, "400 context_length_exceeded ") {
			t.Errorf("%s: %q, want 400 context_length_exceeded", m, got)
		}
	}
}

// TestModelNotFoundFailsOver: an Ollama that has not pulled the model
// answers 404 `model "…" not found`. stellwerk chose the path and the
// model name, so that is the provider's configuration, not the client's
// request: auto fails over to the next provider and is served, the model
// cools, and when no provider serves its model the client gets 502
// provider_model_not_found, which does not quote the provider's own model
// name. Until 2026-12-08 auto got the 404 every time (the on-prem probe).
func TestModelNotFoundFailsOver(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "ollama-a"}, {Name: "ollama-b"}},
		Models: []config.Model{
			{ID: "llama-a", Provider: "ollama-a", ProviderModel: "secret-upstream-a", ContextWindow: 8192,
				Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.1}},
			{ID: "llama-b", Provider: "ollama-b", ProviderModel: "secret-upstream-b", ContextWindow: 8192,
				Price: config.Price{InputPerMTok: 0.2, OutputPerMTok: 0.2}},
		},
		Mutate: func(c *config.Config) {
			c.Failover.FailuresBeforeCooldown = 2
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	for _, p := range []string{"ollama-a", "ollama-b"} {
		s.Providers[p].SetBehavior(mockllm.Behavior{Reset: "model-not-found"})
	}
	got := runOnprem(t, py, s.URL, "auto", 1)
	if !strings.HasPrefix(got, "502 provider_model_not_found ") || strings.Contains(got, "secret-upstream") {
		t.Errorf("auto, no provider with its model: %q, want 502 provider_model_not_found without the provider's model name", got)
	}
	s.Providers["ollama-b"].SetBehavior(mockllm.Behavior{})
	if got := runOnprem(t, py, s.URL, "auto", 1); got != "served llama-b ollama-b True" {
		t.Errorf("auto, the cheaper provider without the model: %q, want served by the other", got)
	}
	// The model cooled (after its second 404): the next request goes
	// straight to the other provider.
	before := len(s.Providers["ollama-a"].Requests())
	if got := runOnprem(t, py, s.URL, "auto", 1); got != "served llama-b ollama-b True" {
		t.Errorf("auto, again: %q", got)
	}
	if n := len(s.Providers["ollama-a"].Requests()) - before; n != 0 {
		t.Errorf("the model that was not found got %d more requests, want it cooled", n)
	}
	// Pinned (tried while it cools: the caller asked for it).
	got = runOnprem(t, py, s.URL, "llama-a", 1)
	if !strings.HasPrefix(got, "502 provider_model_not_found ") || strings.Contains(got, "secret-upstream") {
		t.Errorf("pinned, its provider without the model: %q, want 502 provider_model_not_found without the provider's model name", got)
	}
}

// TestOllamaTagModelID: a model id with Ollama's tag (llama3.1:8b) is
// served end to end: pinned and by auto, listed and retrieved by the
// openai SDK, named in the answer's headers and routing object. Until
// 2026-12-08 config validation refused it (the on-prem probe).
func TestOllamaTagModelID(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "ollama", Residency: "on_prem"}},
		Models: []config.Model{{ID: "llama3.1:8b", Provider: "ollama", ProviderModel: "llama3.1:8b", ContextWindow: 8192,
			Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.1}}},
	})
	for _, m := range []string{"llama3.1:8b", "auto"} {
		if got := runOnprem(t, py, s.URL, m, 1); got != "served llama3.1:8b ollama True" {
			t.Errorf("%s: %q", m, got)
		}
	}
	if reqs := s.Providers["ollama"].Requests(); len(reqs) == 0 || !strings.Contains(string(reqs[0].Body), `"model":"llama3.1:8b"`) {
		t.Errorf("sent upstream: %v", reqs)
	}
	out, err := exec.Command(py, "-c", `import openai, sys
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-client-key", max_retries=0)
print(c.models.retrieve("llama3.1:8b").id, "llama3.1:8b" in [m.id for m in c.models.list()])`, s.URL).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "llama3.1:8b True" {
		t.Errorf("models: %v %s", err, out)
	}
}
