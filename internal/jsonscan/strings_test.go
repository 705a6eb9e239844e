package jsonscan

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// unescapeBytewise is unescape as it was before it skipped eight bytes at
// a time: the reference TestUnescapeWords and FuzzUnescape hold it to.
func unescapeBytewise(s string) string {
	b := make([]byte, 0, len(s))
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' {
			return string(append(b, s[run:i]...))
		}
		if c != '\\' {
			continue
		}
		b = append(b, s[run:i]...)
		if i++; i == len(s) {
			return string(b)
		}
		switch c = s[i]; c {
		case '\\', '/', '"':
			b = append(b, c)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if i+5 > len(s) {
				return string(b)
			}
			r := hexRune(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) && i+7 <= len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				r = utf16.DecodeRune(r, hexRune(s[i+3:]))
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			return string(b)
		}
		run = i + 1
	}
	return string(append(b, s[run:]...))
}

// TestUnescapeWords: unescape decodes as the byte-by-byte loop did, with
// escapes, control characters, cut escapes and multi-byte text at every
// offset from the eight-byte words it skips (lengths 0–40, random mixes).
func TestUnescapeWords(t *testing.T) {
	pieces := []string{`a`, `bcdefgh`, `é`, `中`, `\n`, `\"`, `\\`, `\/`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\u12`, `\x`, "\x00", "\x1f", "\t", " ", "\x7f", "\xff", `\`}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 100000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := unescape(s), unescapeBytewise(s); got != want {
			t.Fatalf("unescape(%q) = %q, want %q", s, got, want)
		}
	}
	for n := range 41 {
		for at := range n {
			for _, special := range []string{`\n`, "\x01", `\`, `\u0041`} {
				s := strings.Repeat("x", at) + special + strings.Repeat("y", n-at)
				if got, want := unescape(s), unescapeBytewise(s); got != want {
					t.Fatalf("unescape(%q) = %q, want %q", s, got, want)
				}
			}
		}
	}
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`plain text of some length`, `a\nb\"c\\d`, `\ud83d\ude00 and more text`, "ctl\x01here", `cut\u00`, `end\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := unescape(s), unescapeBytewise(s); got != want {
			t.Fatalf("unescape(%q) = %q, want %q", s, got, want)
		}
	})
}

// BenchmarkUnescape: 32 KB of a message as a JSON body carries it —
// paragraphs of prose, a quoted word in each, a blank line between them
// (documents), and the same with an escape every 50 bytes (dialogue).
func BenchmarkUnescape(b *testing.B) {
	sentence := "The committee reviewed the figures and asked for a summary of the changes since the last meeting. "
	for _, c := range []struct{ name, para string }{
		{"documents", strings.Repeat(sentence, 3) + `It called them \"encouraging\". ` + strings.Repeat(sentence, 3) + `\n\n`},
		{"dialogue", `\"The committee reviewed the figures,\" she said.\n`},
	} {
		s := strings.Repeat(c.para, 32<<10/len(c.para))
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				unescape(s)
			}
		})
	}
}
