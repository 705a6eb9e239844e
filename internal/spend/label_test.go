package spend

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLabel(t *testing.T) {
	long := strings.Repeat("a", MaxLabel-1) + "é" + "tail" // é's two bytes straddle the bound
	for name, tc := range map[string]struct{ in, want string }{
		"empty":                {"", ""},
		"an id":                {"user-42", "user-42"},
		"an email, kept as is": {"ana@example.com", "ana@example.com"},
		"non-ASCII":            {"Zürich-Ω-漢字", "Zürich-Ω-漢字"},
		"exactly the bound":    {strings.Repeat("x", MaxLabel), strings.Repeat("x", MaxLabel)},
		"past the bound":       {strings.Repeat("x", MaxLabel+50), strings.Repeat("x", MaxLabel)},
		"cut before a character that does not fit": {long, strings.Repeat("a", MaxLabel-1)},
		"a newline":              {"ana\nINJECTED", ""},
		"a tab":                  {"a\tb", ""},
		"DEL":                    {"a\x7fb", ""},
		"a C1 control":           {"a\u0085b", ""},
		"not UTF-8":              {"Z\xfcrich", ""},
		"a control past the cut": {strings.Repeat("x", MaxLabel) + "\n", strings.Repeat("x", MaxLabel)},
	} {
		t.Run(name, func(t *testing.T) {
			got := Label(tc.in)
			if got != tc.want {
				t.Errorf("Label(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if len(got) > MaxLabel || !utf8.ValidString(got) {
				t.Errorf("Label(%q) = %q breaks its bound", tc.in, got)
			}
		})
	}
}

func TestLabelDoesNotAllocate(t *testing.T) {
	in := strings.Repeat("ü", 100)
	if n := testing.AllocsPerRun(100, func() { _ = Label(in) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzLabel(f *testing.F) {
	for _, s := range []string{"", "user-1", "a\nb", "Z\xfcrich", strings.Repeat("漢", 60)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Label(s)
		if len(got) > MaxLabel || !utf8.ValidString(got) || !strings.HasPrefix(s, got) {
			t.Fatalf("Label(%q) = %q", s, got)
		}
		for _, r := range got {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
				t.Fatalf("Label(%q) = %q keeps a control character", s, got)
			}
		}
	})
}
