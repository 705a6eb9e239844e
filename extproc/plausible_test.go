package extproc

import (
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/meter"
)

// TestPlausibleCacheWrites: cache writes are parts of the prompt, as cache
// reads are: negative ones, or reads and writes past the prompt, are a
// broken provider's usage, charged as an answer without usage (written
// 2× the input price, a made-up write count would have been dearer than
// the prompt).
func TestPlausibleCacheWrites(t *testing.T) {
	m := &catalog.Model{ContextWindow: 200000, MaxOutputTokens: 8000}
	for name, tc := range map[string]struct {
		u    meter.Usage
		want bool
	}{
		"reads and writes within the prompt": {meter.Usage{PromptTokens: 3100, CachedTokens: 2000, CacheWriteTokens: 600, CacheWrite1hTokens: 400, CompletionTokens: 50}, true},
		"the whole prompt written":           {meter.Usage{PromptTokens: 1000, CacheWrite1hTokens: 1000}, true},
		"writes past the prompt":             {meter.Usage{PromptTokens: 3000, CachedTokens: 2000, CacheWriteTokens: 600, CacheWrite1hTokens: 401}, false},
		"negative five-minute writes":        {meter.Usage{PromptTokens: 3000, CacheWriteTokens: -1}, false},
		"negative one-hour writes":           {meter.Usage{PromptTokens: 3000, CacheWrite1hTokens: -5}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := plausibleUsage(tc.u, m, 20000, output{perChoice: 100, choices: 1}); got != tc.want {
				t.Errorf("plausibleUsage(%+v) = %v", tc.u, got)
			}
		})
	}
}

// TestPlausiblePromptByBody: a prompt is bounded by the request's body
// (twice its bytes and 4,096 tokens of slack), the context window only for
// a request whose prompt the body does not hold (a stored response, a file
// by id, a server tool's results); a 10-token prompt reported as 200,000
// was charged 1,000 times its hold (the hostile-upstream probe).
func TestPlausiblePromptByBody(t *testing.T) {
	m := &catalog.Model{ContextWindow: 128000, MaxOutputTokens: 16384}
	for name, tc := range map[string]struct {
		prompt, body int
		o            output
		want         bool
	}{
		"tiny prompt claimed as 200,000": {200000, 60, output{choices: 1}, false},
		"tiny prompt claimed as 10,000":  {10000, 60, output{choices: 1}, false},
		"tiny prompt, preamble in slack": {4000, 60, output{choices: 1}, true},
		"a byte a token":                 {100000, 100000, output{choices: 1}, true},
		"continuing a stored response":   {200000, 60, output{choices: 1, opaque: true}, true},
		"past twice the window, stored":  {256001 + 4096, 60, output{choices: 1, opaque: true}, false},
		"an image on a tiny prompt":      {2500, 60, output{choices: 1, images: 1}, true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := plausibleUsage(meter.Usage{PromptTokens: tc.prompt, CompletionTokens: 10}, m, tc.body, tc.o); got != tc.want {
				t.Errorf("plausibleUsage(prompt %d, body %d) = %v", tc.prompt, tc.body, got)
			}
		})
	}
}

// TestUsageOf: an answer's usage is ambiguous when it comes twice, or a
// name within it does (escaped or not): gjson reads the first, the Python
// SDK the last (the hostile-upstream probe).
func TestUsageOf(t *testing.T) {
	for name, tc := range map[string]struct {
		body      string
		prompt    int64
		dup, none bool
	}{
		"one":                {`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`, 3, false, false},
		"none":               {`{"choices":[]}`, 0, false, true},
		"twice":              {`{"usage":{"prompt_tokens":1,"completion_tokens":1},"choices":[],"usage":{"prompt_tokens":10000,"completion_tokens":10000}}`, 1, true, false},
		"twice, escaped":     {`{"usage":{"prompt_tokens":1,"completion_tokens":1},"us\u0061ge":{"prompt_tokens":10000,"completion_tokens":1}}`, 1, true, false},
		"a count twice":      {`{"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens":9000}}`, 1, true, false},
		"a count, escaped":   {`{"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt\u005ftokens":9000}}`, 1, true, false},
		"a detail twice":     {`{"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0,"cached_tokens":9}}}`, 9, true, false},
		"usage in a message": {`{"choices":[{"message":{"content":"{\"usage\":1}","usage":2}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`, 5, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			u, dup := usageOf([]byte(tc.body))
			if dup != tc.dup || u.Exists() == tc.none || u.Get("prompt_tokens").Int() != tc.prompt {
				t.Errorf("usageOf = %s, %v", u.Raw, dup)
			}
		})
	}
}
