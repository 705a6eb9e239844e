package classify

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestHiddenValuesAreFound: a value written with invisible characters
// between its letters, or in full-width forms, is found, at the span of
// the text as sent (a helper's findings: each of these had gone to the US
// model as public).
func TestHiddenValuesAreFound(t *testing.T) {
	cl := defaultClassifier(t)
	for _, tc := range []struct{ text, kind, value string }{
		{"IBAN DE89\u200b3704\u200b0044\u200b0532\u200b0130\u200b00 please", "pii", "DE89\u200b3704\u200b0044\u200b0532\u200b0130\u200b00"},
		{"mail jan\u200b.kowalski@example\u200b.de now", "pii", "jan\u200b.kowalski@example\u200b.de"},
		{"key AKIA\u200dIOSFODNN7EXAMPLE", "secret", "AKIA\u200dIOSFODNN7EXAMPLE"},
		{"key AKIA\u00adIOSFODNN7EXAMPLE", "secret", "AKIA\u00adIOSFODNN7EXAMPLE"},
		{"IBAN ＤＥ８９３７０４００４４０５３２０１３０００", "pii", "ＤＥ８９３７０４００４４０５３２０１３０００"},
		{"write to jan.kowalski＠example.de", "pii", "jan.kowalski＠example.de"},
	} {
		body := `{"messages":[{"role":"user","content":"` + tc.text + `"}]}`
		r := cl.Classify(bodyRequest(gjson.Parse(body)))
		fs := r.PII
		if tc.kind == "secret" {
			fs = r.Secrets
		}
		if len(fs) != 1 || tc.text[fs[0].Start:fs[0].End] != tc.value {
			t.Errorf("%q: %s findings %+v, want one at %q", tc.text, tc.kind, fs, tc.value)
		}
	}
	// Text with nothing hidden reads as before; typographic quotes and
	// no-break spaces are nothing to fold.
	if _, _, _, ok := plain("It’s a “quote” — and\u00a0more"); ok {
		t.Error("typography folded")
	}
	if r := cl.Classify(bodyRequest(gjson.Parse(`{"messages":[{"role":"user","content":"` + strings.Repeat("ＡＢＣ ", 20) + `"}]}`))); len(r.PII)+len(r.Secrets) != 0 {
		t.Errorf("full-width letters: %+v %+v", r.PII, r.Secrets)
	}
}
