package translate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// addGoldenSeeds seeds f with every golden input matching pattern.
func addGoldenSeeds(f *testing.F, pattern string, add func([]byte)) {
	paths, err := filepath.Glob(filepath.Join(goldenDir, pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds for %s: %v", pattern, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// FuzzToAnthropicRequest: any body gives valid JSON or an *apierr.Error 400,
// never a panic.
func FuzzToAnthropicRequest(f *testing.F) {
	addGoldenSeeds(f, "request/*.openai.json", func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := ToAnthropicRequest(body, testModel)
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Kind != apierr.KindInvalid || ae.Message == "" {
				t.Fatalf("error %v is not an *apierr.Error 400 with a message", err)
			}
			if out != nil {
				t.Fatal("output returned with an error")
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}

// FuzzAnthropicStream: any Anthropic SSE byte stream produces only
// well-formed OpenAI data: frames.
func FuzzAnthropicStream(f *testing.F) {
	addGoldenSeeds(f, "stream/*.sse", func(b []byte) { f.Add(b, true); f.Add(b, false) })
	f.Fuzz(func(t *testing.T, in []byte, includeUsage bool) {
		_, out := runStream(in, includeUsage)
		if err := checkFrames(out); err != nil {
			t.Fatalf("%v\n%q", err, out)
		}
	})
}

// FuzzProviderErrors: a provider's error body, any bytes (it decides whether
// a request fails over, egress.go), gives FromAnthropicError's OpenAI error
// as JSON, and ContextOverflow agrees with it: an Anthropic error it reads
// as an overflow reaches the client as context_length_exceeded.
func FuzzProviderErrors(f *testing.F) {
	addGoldenSeeds(f, "error/*.anthropic.json", func(b []byte) { f.Add(b) })
	f.Add([]byte(`{"error":{"message":"This model's maximum context length is 200000 tokens.","code":"context_length_exceeded"}}`))
	f.Add([]byte(`{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 207504 tokens > 200000 maximum"}}`))
	f.Add([]byte(`{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 4490 tokens.","type":"BadRequestError","param":null,"code":400}`))
	f.Add([]byte(`{"error":{"message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}}`))
	f.Add([]byte(`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}`))
	f.Add([]byte(`{"object":"error","message":"The model does not exist.","type":"NotFoundError","param":null,"code":404}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out := FromAnthropicError(body)
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("FromAnthropicError(%q) = %q: %v", body, out, err)
		}
		if json.Valid(body) && ContextOverflow(body) && gjson.GetBytes(body, "error.code").Str != "context_length_exceeded" &&
			e.Error.Code != "context_length_exceeded" {
			t.Fatalf("ContextOverflow(%q) but the client is told %q", body, e.Error.Code)
		}
	})
}
