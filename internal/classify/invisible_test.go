package classify

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stellwerk/stellwerk/internal/classify/runes"
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
		// Other scripts' digits and bidi marks (the non-English probe,
		// 2026-12-07: each went to the US model as public).
		{"رقم البطاقة ٤١١١ ١١١١ ١١١١ ١١١١ من فضلك", "pii", "٤١١١ ١١١١ ١١١١ ١١١١"},
		{"شماره کارت ۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱ است", "pii", "۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱"},
		{"खाता DE८९ ३७०४ ००४४ ०५३२ ०१३० ०० है", "pii", "DE८९ ३७०४ ००४४ ०५३२ ०१३० ००"},
		{"কার্ড ৪১১১ ১১১১ ১১১১ ১১১১", "pii", "৪১১১ ১১১১ ১১১১ ১১১১"},
		{"บัตร ๔๑๑๑ ๑๑๑๑ ๑๑๑๑ ๑๑๑๑ ครับ", "pii", "๔๑๑๑ ๑๑๑๑ ๑๑๑๑ ๑๑๑๑"},
		{"מספר IBAN: \u200eIL62\u200e \u200e0108\u200e \u200e0000\u200e \u200e0009\u200e \u200e9999\u200e \u200e999\u200e תודה", "pii",
			"IL62\u200e \u200e0108\u200e \u200e0000\u200e \u200e0009\u200e \u200e9999\u200e \u200e999"},
		{"card \u20664111\u2069 \u20661111\u2069 \u20661111\u2069 \u20661111\u2069", "pii", "4111\u2069 \u20661111\u2069 \u20661111\u2069 \u20661111"},
		{"mail jan\u200f.kowalski@exam\u061cple.de now", "pii", "jan\u200f.kowalski@exam\u061cple.de"},
		{"key AKIA\U000E0041IOSFODNN7\uFE0FEXAMPLE", "secret", "AKIA\U000E0041IOSFODNN7\uFE0FEXAMPLE"},
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

// TestFoldLeads: plain decodes only the characters that start with a
// foldLead byte; every character it folds does.
func TestFoldLeads(t *testing.T) {
	var buf [4]byte
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		_, digit := runes.Digit(r)
		if digit || runes.Invisible(r) || r >= '\uff01' && r <= '\uff5e' {
			utf8.EncodeRune(buf[:], r)
			if !foldLead[buf[0]] {
				t.Fatalf("%U starts with %#x, not a foldLead", r, buf[0])
			}
		}
	}
}
