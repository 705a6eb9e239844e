package terms

import (
	"slices"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/stellwerk/stellwerk/internal/classify/runes"
)

// Folding makes matching case- and accent-insensitive and blind to how
// words are spaced: text and terms are both folded, then compared byte for
// byte. A folded text is lower case (simple Unicode case mapping), without
// combining marks (é → e, Å → a, ä → a), with a few letters that have no
// decomposition spelled out (ß → ss, æ → ae, œ → oe, ø → o, ł → l, đ → d,
// þ → th, ı → i), with every run of white space one ASCII space, and read
// as the PII pass reads it (package runes): full-width forms as ASCII
// (ＦＡＬＣＯＮ → falcon), every script's digits as ASCII digits, and the
// invisible characters (zero-width, bidi marks, variation selectors)
// dropped.

// foldTableSize covers Latin, Greek, Cyrillic and the other alphabetic
// scripts below U+3000; above it only the case mapping and mark removal
// apply.
const foldTableSize = 0x3000

var (
	foldTable [foldTableSize]string // folded form of each rune; "" drops it
)

var special = map[rune]string{'ß': "ss", 'ẞ': "ss", 'æ': "ae", 'Æ': "ae", 'œ': "oe", 'Œ': "oe", 'ø': "o", 'Ø': "o",
	'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'þ': "th", 'Þ': "th", 'ı': "i", 'ð': "d", 'Ð': "d"}

func init() {
	for c := range utf8.RuneSelf {
		b := byte(c)
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f' {
			asciiFold[c] = b
		}
		asciiStr[c] = string(rune(c))
	}
	for r := rune(utf8.RuneSelf); r < foldTableSize; r++ {
		foldTable[r] = foldSlow(r)
	}
}

// foldSlow decomposes r (NFD), drops the marks and lower-cases the rest.
func foldSlow(r rune) string {
	if s, ok := special[r]; ok {
		return s
	}
	if unicode.IsSpace(r) {
		return " "
	}
	if runes.Invisible(r) {
		return ""
	}
	if d, ok := runes.Digit(r); ok {
		return asciiStr[d]
	}
	var out []rune
	for _, d := range norm.NFD.String(string(r)) {
		if unicode.Is(unicode.Mn, d) {
			continue
		}
		out = append(out, unicode.ToLower(d))
	}
	return string(out)
}

// asciiFold is an ASCII byte lower-cased, 0 for white space; asciiStr is
// each ASCII byte as a string.
var (
	asciiFold [utf8.RuneSelf]byte
	asciiStr  [utf8.RuneSelf]string
)

// foldRune is the folded form of a non-ASCII rune: " " for white space,
// "" for a mark or an invisible character.
func foldRune(r rune) string {
	if f, ok := foldSpecial(r); ok {
		return f
	}
	return string(unicode.ToLower(r))
}

// foldSpecial is foldRune's answer when it is not r lower-cased (ok),
// which appendFold writes without making a string of it: one allocation
// for every Chinese or Japanese character a term list read.
func foldSpecial(r rune) (string, bool) {
	switch {
	case r < foldTableSize:
		return foldTable[r], true
	case r >= '\uff01' && r <= '\uff5e': // full-width ASCII
		return asciiStr[asciiFold[r-0xfee0]], true
	case runes.Invisible(r):
		return "", true
	}
	if d, ok := runes.Digit(r); ok {
		return asciiStr[d], true
	}
	switch {
	case unicode.Is(unicode.Mn, r):
		return "", true
	case unicode.IsSpace(r):
		return " ", true
	}
	return "", false
}

// appendFold appends the folded form of s to dst. ASCII, the common case,
// folds to one byte per byte, written in place into room made once.
func appendFold(dst []byte, s string) []byte {
	n := len(dst)
	b := slices.Grow(dst, len(s))[:n+len(s)]
	space := n > 0 && b[n-1] == ' '
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if f := asciiFold[c]; f != 0 {
				b[n] = f
				n++
				space = false
			} else if !space {
				b[n] = ' '
				n++
				space = true
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		f, special := foldSpecial(r)
		if !special {
			lower := unicode.ToLower(r)
			if n+utf8.RuneLen(lower) > len(b)-(len(s)-i) { // a fold longer than its rune
				b = slices.Grow(b[:n], utf8.UTFMax+len(s)-i)[:n+utf8.UTFMax+len(s)-i]
			}
			n += utf8.EncodeRune(b[n:], lower)
			space = false
			continue
		}
		switch {
		case f == "":
			continue
		case f == " ":
			if space {
				continue
			}
			space = true
		default:
			space = false
		}
		if n+len(f) > len(b)-(len(s)-i) { // a fold longer than its rune: make room for the rest
			b = slices.Grow(b[:n], len(f)+len(s)-i)[:n+len(f)+len(s)-i]
		}
		n += copy(b[n:], f)
	}
	return b[:n]
}

// Fold returns the folded form of s, as the matcher compares it.
func Fold(s string) string { return string(appendFold(nil, s)) }

// isWordAt reports whether the rune that starts (or, with last, ends) at
// b's edge is a letter or a digit of a script that spaces its words: a
// Chinese, Japanese, Korean, Thai, Lao, Khmer or Myanmar character is no
// word character, so a term borders on it ("zurich projekt" in
// "请汇报zurich projekt的进度") and a term written in one matches anywhere
// ("天鹅计划" in "请告诉我天鹅计划的进度"), as a reader of those scripts
// finds words without spaces.
func isWordAt(b []byte, last bool) bool {
	if len(b) == 0 {
		return false
	}
	var r rune
	if last {
		if c := b[len(b)-1]; c < utf8.RuneSelf {
			return isWordASCII(c)
		}
		r, _ = utf8.DecodeLastRune(b)
	} else {
		if c := b[0]; c < utf8.RuneSelf {
			return isWordASCII(c)
		}
		r, _ = utf8.DecodeRune(b)
	}
	return (unicode.IsLetter(r) || unicode.IsDigit(r)) && !unspaced(r)
}

// unspacedScripts write words without spaces between them.
var unspacedScripts = []*unicode.RangeTable{unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul,
	unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar}

func unspaced(r rune) bool {
	if r < 0x0e00 {
		return false
	}
	return r == 'ー' || r == '々' || unicode.In(r, unspacedScripts...)
}

func isWordASCII(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
