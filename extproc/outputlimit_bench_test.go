package extproc

import (
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
)

// BenchmarkOutputLimitFor: a 2 KB request whose output limit its provider
// reads under the name sent (kept) or the other (renamed).
func BenchmarkOutputLimitFor(b *testing.B) {
	body := []byte(`{"model":"auto","messages":[{"role":"user","content":"` + strings.Repeat("hello world ", 170) + `"}],"max_tokens":100}`)
	for _, tc := range []struct{ name, param string }{{"kept", "max_tokens"}, {"renamed", "max_completion_tokens"}} {
		p := &catalog.Provider{MaxTokensParam: tc.param}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := outputLimitFor(p, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
