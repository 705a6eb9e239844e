package runes

import (
	"testing"
	"unicode"
)

// TestDigitsOfEveryScript: a digit a model reads as four is read as '4',
// whatever its script.
func TestDigitsOfEveryScript(t *testing.T) {
	for _, r := range []rune{'٤', '۴', '४', '৪', '๔', '၄', '４', '𝟜', '߄', '໔', '༤'} {
		if d, ok := Digit(r); !ok || d != '4' {
			t.Errorf("%U: %q %v, want '4'", r, d, ok)
		}
	}
	for _, r := range []rune{'4', 'a', '²', '½', 'Ⅳ', '四', 'é', '\u200b'} {
		if d, ok := Digit(r); ok {
			t.Errorf("%U (%c) read as digit %q", r, r, d)
		}
	}
	n := 0
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		d, ok := Digit(r)
		if ok != unicode.Is(unicode.Nd, r) {
			t.Fatalf("%U: digit %v, Nd %v", r, ok, !ok)
		}
		if ok && d == '0' {
			n++
			for k := rune(1); k < 10; k++ { // a set is ten in a row
				if e, _ := Digit(r + k); e != '0'+byte(k) {
					t.Fatalf("%U: %q, want %q", r+k, e, '0'+byte(k))
				}
			}
		}
	}
	if n < 60 {
		t.Errorf("%d digit sets", n)
	}
}

func TestInvisible(t *testing.T) {
	for _, r := range []rune{0xad, 0x200b, 0x200e, 0x200f, 0x061c, 0x2066, 0x2069, 0x202a, 0x202e, 0x034f,
		0xfe0f, 0xe0100, 0x180e, 0x2062, 0xe0041, 0x3164, 0x115f, 0x1160, 0xfeff, 0x2060} {
		if !Invisible(r) {
			t.Errorf("%U visible", r)
		}
	}
	for _, r := range []rune{'a', ' ', 0xa0, 'é', 0x2013, 0x2019, 'ا', 'ก', '中', 0x200a, 0x2028} {
		if Invisible(r) {
			t.Errorf("%U (%c) invisible", r, r)
		}
	}
}
