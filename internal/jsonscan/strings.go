package jsonscan

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// String is gjson's reading of the quoted JSON string q (its Raw), its
// text decoded by unescape when it has escapes.
func String(q string) gjson.Result {
	body := q[1 : len(q)-1]
	r := gjson.Result{Type: gjson.String, Raw: q, Str: body}
	if strings.IndexByte(body, '\\') >= 0 {
		r.Str = unescape(body)
	}
	return r
}

// unescape decodes a JSON string's escapes exactly as gjson does (a control
// character, an unknown or cut escape ends the text there; a surrogate
// pair's second half is taken as it is), copying the runs between escapes
// whole.
func unescape(s string) string {
	b := make([]byte, 0, len(s))
	run := 0 // start of the bytes not yet copied
	for i := 0; i < len(s); i++ {
		for i+8 <= len(s) && clean8(s, i) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < ' ' {
			return bytesString(append(b, s[run:i]...))
		}
		if c != '\\' {
			continue
		}
		b = append(b, s[run:i]...)
		if i++; i == len(s) {
			return bytesString(b)
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
				return bytesString(b)
			}
			r := hexRune(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) && i+7 <= len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				r = utf16.DecodeRune(r, hexRune(s[i+3:]))
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			return bytesString(b)
		}
		run = i + 1
	}
	return bytesString(append(b, s[run:]...))
}

// clean8 says whether none of the eight bytes of s from i ends unescape's
// run: no backslash, no control character. Prose runs for hundreds of
// bytes between escapes; this tests eight at a time (the "has a zero
// byte" and "has a byte less than n" word tests, exact for the word as a
// whole: a lane's top bit survives only when some byte matches).
func clean8(s string, i int) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	_ = s[i+7]
	x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	bs := x ^ (ones * '\\')
	return ((x-ones*0x20)&^x|(bs-ones)&^bs)&highs == 0
}

// bytesString is b as a string without a copy: b is unescape's own, never
// written after.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// hexRune reads four hex digits as gjson does (anything else: 0).
func hexRune(s string) rune {
	n, _ := strconv.ParseUint(s[:4], 16, 64)
	return rune(n)
}
