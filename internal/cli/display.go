package cli

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// hidden reports whether a terminal would draw r as something else than
// one visible character, or let it reorder or hide the text around it:
// controls (C0, C1), format characters (the bidi embeddings, overrides,
// isolates and marks, zero-width spaces and joiners, U+061C, U+FEFF, tag
// characters), line and paragraph separators, and the Hangul fillers,
// which draw as nothing. The console marks the same characters
// (internal/console/static/app.js, HIDDEN).
func hidden(r rune) bool {
	switch r {
	case 0x115F, 0x1160, 0x3164, 0xFFA0, 0x034F, 0x2800: // fillers, the grapheme joiner, the braille blank
		return true
	}
	if 0xFE00 <= r && r <= 0xFE0F || 0xE0100 <= r && r <= 0xE01EF { // variation selectors
		return true
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Cs)
}

// plain reports whether s prints as itself: valid UTF-8 without a hidden
// character, and not starting with a quote (which would read as shown's
// quoted form).
func plain(s string) bool {
	if strings.HasPrefix(s, `"`) {
		return false
	}
	for i, r := range s {
		if hidden(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return false
		}
	}
	return true
}

// shown is a string a client or an operator chose, as a human-readable
// output prints it: as it is when it prints as itself, else Go-quoted
// with each hidden character (and each byte that is not UTF-8) escaped,
// as strconv.QuoteToGraphic does, the Hangul fillers too. A user
// "admin\u202Etxt.exe" prints "admin\u202etxt.exe", not a line a
// terminal draws as "adminexe.txt" with the rest of the row reversed, and
// a quoted value cannot be taken for a plain one. --json and the other
// machine outputs keep the exact value.
func shown(s string) string {
	if plain(s) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	if !strings.ContainsFunc(q, hidden) { // what QuoteToGraphic leaves: the fillers, variation selectors, …
		return q
	}
	var b strings.Builder
	for _, r := range q {
		switch {
		case !hidden(r):
			b.WriteRune(r)
		case r > 0xFFFF:
			b.WriteString(`\U` + strconv.FormatInt(int64(r)|1<<32, 16)[1:]) // Go's escape of it
		default:
			b.WriteString(jsonEscape(r))
		}
	}
	return b.String()
}

// shownJSON is JSON text as a human-readable output prints it: each
// hidden character inside it written as the JSON escape of itself
// (\u202e, a tag character as its surrogate pair), so the text is the
// same JSON and draws as its characters are. A line break, tab or
// carriage return is JSON's own white space (inside a string JSON escapes
// them): it is kept.
func shownJSON(s string) string {
	esc := func(r rune) bool { return hidden(r) && r != '\n' && r != '\t' && r != '\r' }
	if !strings.ContainsFunc(s, esc) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !esc(r) {
			b.WriteRune(r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			b.WriteString(jsonEscape(r1) + jsonEscape(r2))
			continue
		}
		b.WriteString(jsonEscape(r))
	}
	return b.String()
}

// jsonEscape is r (at most U+FFFF) as \uXXXX.
func jsonEscape(r rune) string { return `\u` + strconv.FormatInt(int64(r)|0x10000, 16)[1:] }
