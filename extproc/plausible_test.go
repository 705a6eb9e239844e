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
