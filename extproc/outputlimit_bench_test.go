package extproc

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

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

// FuzzOutputLimitFor: any body, valid JSON or not, is renamed without a
// panic, and valid JSON stays valid with the limit under the provider's name.
func FuzzOutputLimitFor(f *testing.F) {
	for _, s := range []string{`{"model":"m","max_tokens":5}`, `{"max_completion_tokens" : 7,"x":1}`, `{"a":{"max_tokens":1}}`,
		`{"max_completion\u005ftokens":3}`, `{"max_tokens":1,"max_completion_tokens":2}`, `"max_tokens":`, `{}`} {
		f.Add([]byte(s))
	}
	ps := []*catalog.Provider{{MaxTokensParam: "max_tokens"}, {MaxTokensParam: "max_completion_tokens"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, p := range ps {
			out, err := outputLimitFor(p, body)
			if err != nil || !gjson.ValidBytes(body) {
				continue
			}
			if !gjson.ValidBytes(out) {
				t.Fatalf("%s → %s: not JSON", body, out)
			}
		}
	})
}
