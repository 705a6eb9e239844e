package classify

import (
	"unicode/utf8"

	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/runes"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
)

// A value can be written so that a model reads it and a detector does not:
// with invisible characters between its letters (a zero-width space, a
// soft hyphen, a bidi mark around each group), in full-width forms
// (ＤＥ８９…, ＠) or in another script's digits (٤١١١ ١١١١ …, ४१११). plain
// reads such a text once more with the invisible characters dropped and
// the full-width forms and digits as ASCII (see package runes), and
// reports where each byte of that reading came from, so findings still
// point into the text as sent.

// plain is text's plain reading, with from[i] and to[i] the span of text
// the plain byte i came from; ok is false when text has nothing to fold
// (almost always: ASCII text is passed over a word at a time).
func plain(text string) (out string, from, to []int32, ok bool) {
	i := firstNonASCII(text)
	if i < 0 {
		return "", nil, nil, false
	}
	var b []byte
	for i < len(text) {
		c := text[i]
		switch {
		case b == nil && c < utf8.RuneSelf: // nothing folded yet: on to the next non-ASCII byte
			j := firstNonASCII(text[i:])
			if j < 0 {
				return "", nil, nil, false
			}
			i += j
			continue
		case b == nil && c >= 0xc2 && c < 0xe0 && skipTwo(text, i) > i:
			i = skipTwo(text, i)
			continue
		case b == nil && !foldLead[c]: // a byte of a character that reads as itself
			i++
			continue
		case c < 0xc2: // ASCII, or a continuation byte
			b = append(b, c)
			from, to = append(from, int32(i)), append(to, int32(i+1))
			i++
			continue
		}
		var r rune
		var w int
		if c < 0xe0 && i+1 < len(text) && text[i+1]&0xc0 == 0x80 { // two bytes (Latin, Arabic): decoded here
			r, w = rune(c&0x1f)<<6|rune(text[i+1]&0x3f), 2
		} else {
			r, w = utf8.DecodeRuneInString(text[i:])
		}
		c = 0 // the ASCII r reads as, 0 for itself
		drop := false
		if r < runes.LowSize {
			switch k := runes.Low(r); {
			case k < 10:
				c = '0' + k
			case k == runes.Invisible8:
				drop = true
			}
		} else {
			switch {
			case r >= '\uff01' && r <= '\uff5e': // full-width ASCII
				c = byte(r - 0xfee0)
			case runes.Invisible(r):
				drop = true
			default:
				if d, ok := runes.Digit(r); ok {
					c = d
				}
			}
		}
		switch {
		case drop || c != 0:
			if b == nil {
				b, from, to = startPlain(text, i)
			}
			if c != 0 {
				b = append(b, c)
				from, to = append(from, int32(i)), append(to, int32(i+w))
			}
		case b != nil:
			for k := 0; k < w; k++ {
				b = append(b, text[i+k])
				from, to = append(from, int32(i)), append(to, int32(i+w))
			}
		}
		i += w
	}
	if b == nil {
		return "", nil, nil, false
	}
	return string(b), from, to, true
}

// skipTwo passes over the two-byte characters from text[i] on (accented
// Latin, Greek, Cyrillic, Hebrew, Arabic) that read as themselves.
func skipTwo(text string, i int) int {
	for i+1 < len(text) {
		c := text[i]
		if c < 0xc2 || c >= 0xe0 || text[i+1]&0xc0 != 0x80 ||
			runes.Low(rune(c&0x1f)<<6|rune(text[i+1]&0x3f)) != runes.Other8 {
			break
		}
		i += 2
	}
	return i
}

// foldLead marks the bytes that start a character plain folds (a test
// checks every one): text in other scripts (accented Latin, Greek,
// Cyrillic, Hebrew, Chinese, Japanese, Korean) is passed over without
// decoding it.
var foldLead = [256]bool{0xc2: true, 0xcd: true, 0xd8: true, 0xd9: true, 0xdb: true, 0xdf: true,
	0xe0: true, 0xe1: true, 0xe2: true, 0xe3: true, 0xea: true, 0xef: true, 0xf0: true, 0xf3: true}

// firstNonASCII is the index of text's first byte from 0x80 on, -1 for
// none; sixteen bytes at a time, as fast as the three IndexByte scans it
// replaces.
func firstNonASCII(text string) int {
	i := 0
	for ; i+16 <= len(text); i += 16 {
		s := text[i : i+16]
		if (word(s[:8])|word(s[8:]))&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(text); i++ {
		if text[i] >= utf8.RuneSelf {
			return i
		}
	}
	return -1
}

// word is s's first eight bytes as one load.
func word(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// startPlain begins a plain reading with text[:i], which maps to itself.
func startPlain(text string, i int) (b []byte, from, to []int32) {
	b = make([]byte, i, len(text))
	copy(b, text[:i])
	from, to = make([]int32, i, len(text)), make([]int32, i, len(text))
	for k := 0; k < i; k++ {
		from[k], to[k] = int32(k), int32(k+1)
	}
	return b, from, to
}

// detectPlain adds what the detectors find in text's plain reading and not
// in text itself, at the spans of text the values came from.
func detectPlain(text string, sec []secrets.Match, found []pii.Match) ([]secrets.Match, []pii.Match) {
	p, from, to, ok := plain(text)
	if !ok {
		return sec, found
	}
	for _, m := range secrets.Detect(p, nil) {
		s, e := int(from[m.Start]), int(to[m.End-1])
		if !overlapsSecret(sec, s, e) {
			sec = append(sec, secrets.Match{Type: m.Type, Start: s, End: e})
		}
	}
	for _, m := range pii.Detect(p, nil) {
		s, e := int(from[m.Start]), int(to[m.End-1])
		known := false
		for _, o := range found {
			known = known || (o.Start < e && s < o.End)
		}
		if !known {
			found = append(found, pii.Match{Type: m.Type, Start: s, End: e})
		}
	}
	return sec, found
}
