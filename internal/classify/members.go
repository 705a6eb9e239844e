package classify

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/jsonscan"
)

// eachMember calls fn with each member of the JSON object obj, as
// obj.ForEach does, but a string value's text is decoded by unescape
// (escape-free runs copied whole) instead of gjson's byte-by-byte decoding,
// which was the largest part of reading a long prompt. Other values are
// gjson's. obj is valid JSON (request parsing checked the body);
// TestEachMember and FuzzEachMember hold it to ForEach on any valid JSON.
func eachMember(obj gjson.Result, fn func(key, val gjson.Result) bool) {
	if !obj.IsObject() {
		obj.ForEach(fn)
		return
	}
	jsonscan.Members(obj.Raw, func(key, val string) bool {
		if val[0] == '"' {
			return fn(stringResult(key), stringResult(val))
		}
		return fn(stringResult(key), gjson.Parse(val))
	})
}

// eachElement calls fn with each element of the JSON array arr, as
// arr.ForEach does with its values, the array's text walked once with the
// closing quotes of strings found by IndexByte (jsonscan) instead of
// gjson's byte-by-byte skipping, and strings decoded as eachMember does.
// Anything but an array goes to ForEach. TestEachElement and
// FuzzEachElement hold it to ForEach on any valid JSON.
func eachElement(arr gjson.Result, fn func(val gjson.Result) bool) {
	if !arr.IsArray() {
		arr.ForEach(func(_, v gjson.Result) bool { return fn(v) })
		return
	}
	jsonscan.Elements(arr.Raw, func(val string) bool {
		if val[0] == '"' {
			return fn(stringResult(val))
		}
		return fn(gjson.Parse(val))
	})
}

// stringResult is the gjson string result of a quoted JSON string.
func stringResult(q string) gjson.Result {
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
	x := load8(s, i)
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
