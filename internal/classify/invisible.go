package classify

import (
	"strings"
	"unicode/utf8"

	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
)

// A value can be written so that a model reads it and a detector does not:
// with invisible characters between its letters (a zero-width space, a
// joiner, a soft hyphen) or in full-width forms (ＤＥ８９…, ＠). plain reads
// such a text once more with the invisible characters dropped and the
// full-width forms as ASCII, and reports where each byte of that reading
// came from, so findings still point into the text as sent.

// invisible reports whether r is dropped from the plain reading.
func invisible(r rune) bool {
	switch r {
	case '\u00ad', '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff':
		return true
	}
	return false
}

// plain is text's plain reading, with from[i] and to[i] the span of text
// the plain byte i came from; ok is false when text has nothing to fold
// (almost always: the bytes that start these characters are looked for
// first).
func plain(text string) (out string, from, to []int32, ok bool) {
	if strings.IndexByte(text, 0xc2) < 0 && strings.IndexByte(text, 0xe2) < 0 && strings.IndexByte(text, 0xef) < 0 {
		return "", nil, nil, false
	}
	var b []byte
	for i := 0; i < len(text); {
		if b == nil && text[i] < 0xc2 { // ASCII, or a continuation byte: nothing to fold yet
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(text[i:])
		switch {
		case invisible(r):
			if b == nil {
				b, from, to = startPlain(text, i)
			}
		case r >= '\uff01' && r <= '\uff5e': // full-width ASCII
			if b == nil {
				b, from, to = startPlain(text, i)
			}
			b = append(b, byte(r-0xfee0))
			from, to = append(from, int32(i)), append(to, int32(i+w))
		default:
			if b != nil {
				for k := 0; k < w; k++ {
					b = append(b, text[i+k])
					from, to = append(from, int32(i)), append(to, int32(i+w))
				}
			}
		}
		i += w
	}
	if b == nil {
		return "", nil, nil, false
	}
	return string(b), from, to, true
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
