package translate

import (
	"strings"
	"testing"
)

// BenchmarkToAnthropicRequest is what a chat request to an Anthropic-wire
// model costs to translate: a system prompt and a 2 KB question, as sent
// and with the system prompt marked for the cache.
func BenchmarkToAnthropicRequest(b *testing.B) {
	question := strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30)
	for name, body := range map[string]string{
		"plain": `{"model":"auto","max_tokens":300,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` + question + `"}]}`,
		"cache_marked": `{"model":"auto","max_tokens":300,"messages":[{"role":"system","content":[{"type":"text","text":"You are helpful.",` +
			`"cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"` + question + `"}]}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ToAnthropicRequest([]byte(body), "claude"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
