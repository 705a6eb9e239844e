package classify

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stellwerk/stellwerk/internal/classify/secrets"
)

func TestRedact(t *testing.T) {
	counts := map[string]int{}
	in := "Mail jane.doe@example.com or call +49 30 1234567; key AKIAIOSFODNN7EXAMPLE, IBAN DE89370400440532013000."
	got := Redact(in, counts)
	for _, gone := range []string{"jane.doe@example.com", "AKIAIOSFODNN7EXAMPLE", "DE89370400440532013000"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q left in %q", gone, got)
		}
	}
	for _, placeholder := range []string{"[EMAIL]", "[PHONE]", "[SECRET:aws_access_key_id]", "[IBAN]"} {
		if !strings.Contains(got, placeholder) {
			t.Errorf("no %s in %q", placeholder, got)
		}
	}
	if counts["email"] != 1 || counts["secret:aws_access_key_id"] != 1 || counts["phone"] != 1 || counts["iban"] != 1 {
		t.Errorf("counts %v", counts)
	}
	if plain := "nothing personal here"; Redact(plain, nil) != plain {
		t.Error("text without findings changed")
	}
}

// FuzzRedact: redaction never panics, yields valid UTF-8 for valid input,
// and leaves no secret it found behind (detection depends on context, so
// the redacted text may hold new matches: "000000000=[PHONE]").
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"", "jane@example.com", "AKIAIOSFODNN7EXAMPLE", "ü@ü.de AKIA", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s, map[string]int{})
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("redacting %q gave invalid UTF-8 %q", s, out)
		}
		for _, m := range secrets.Detect(s, nil) {
			if found := s[m.Start:m.End]; strings.Count(s, found) == 1 && strings.Contains(out, found) {
				t.Fatalf("secret %q left in %q", found, out)
			}
		}
	})
}

// TestHasPlaceholder: what Redact wrote reads as redacted, a value it left
// alone does not (replay warns about the former).
func TestHasPlaceholder(t *testing.T) {
	for in, want := range map[string]bool{
		"jane.doe@example.com":         true,
		"ops AKIAIOSFODNN7EXAMPLE":     true,
		"call +49 30 1234567 tomorrow": true,
		"team-a":                       false,
		"[draft] notes":                false,
		"":                             false,
	} {
		if got := HasPlaceholder(Redact(in, nil)); got != want {
			t.Errorf("HasPlaceholder(Redact(%q)) = %v, want %v (%q)", in, got, want, Redact(in, nil))
		}
	}
}
