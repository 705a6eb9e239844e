// Package jsonscan walks the raw text of JSON that is already known to be
// valid (request parsing checked it): where a value ends, and where an
// object's member or an array's element is, found without decoding
// anything (a closing quote by IndexByte). ForEach and String read values
// as gjson does on top of that, decoding a string's escapes in runs
// (a 32 KB prompt with a line break in every line costs one copy, not a
// byte-by-byte pass).
package jsonscan

import (
	"strings"

	"github.com/tidwall/gjson"
)

// SkipSpace is the index of the first byte at or after s[i] that is not
// JSON whitespace.
func SkipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// StringEnd is the index after the closing quote of the string opening at
// s[i], -1 when it is not closed: the next quote not escaped by an odd run
// of backslashes.
func StringEnd(s string, i int) int {
	for j := i + 1; j < len(s); {
		k := strings.IndexByte(s[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		n := 0
		for b := j - 1; b > i && s[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		j++
	}
	return -1
}

// ValueEnd is the index after the object, array, number or literal that
// starts at s[i], -1 when an object or array is not closed.
func ValueEnd(s string, i int) int {
	if s[i] != '{' && s[i] != '[' {
		j := i
		for j < len(s) && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] > ' ' {
			j++
		}
		return j
	}
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return j + 1
			}
		case '"':
			if j = StringEnd(s, j); j < 0 {
				return -1
			}
			j--
		}
	}
	return -1
}

// Members calls fn with the raw text of each member of the object obj
// (the text of a valid JSON object, as gjson.Result.Raw): the key with its
// quotes, and the value as written. Nothing is decoded. It stops when fn
// returns false, and at the first byte that cannot continue an object.
func Members(obj string, fn func(key, val string) bool) {
	i := SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = SkipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return
		}
		if obj[i] == ',' {
			i++
			continue
		}
		if obj[i] != '"' {
			return
		}
		kend := StringEnd(obj, i)
		if kend < 0 {
			return
		}
		key := obj[i:kend]
		i = SkipSpace(obj, kend)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		if i = SkipSpace(obj, i+1); i >= len(obj) {
			return
		}
		end := -1
		if obj[i] == '"' {
			end = StringEnd(obj, i)
		} else {
			end = ValueEnd(obj, i)
		}
		if end < 0 || !fn(key, obj[i:end]) {
			return
		}
		i = end
	}
}

// Elements calls fn with the raw text of each element of the array arr
// (the text of a valid JSON array), as written. Nothing is decoded. It
// stops when fn returns false, and at the first byte that cannot continue
// an array.
func Elements(arr string, fn func(val string) bool) {
	i := SkipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	i++
	for {
		i = SkipSpace(arr, i)
		if i >= len(arr) || arr[i] == ']' {
			return
		}
		if arr[i] == ',' {
			i++
			continue
		}
		end := -1
		if arr[i] == '"' {
			end = StringEnd(arr, i)
		} else {
			end = ValueEnd(arr, i)
		}
		if end <= i || !fn(arr[i:end]) {
			return
		}
		i = end
	}
}

// ForEach is v.ForEach — each member of an object, each element of an
// array, as gjson reads them (an element's key its index, a Number) —
// with each value's end found by Members or Elements: a long string is
// skipped with IndexByte, not byte by byte, and the object or array's
// text is walked once where gjson's ForEach walks a value once to find
// its end and the caller again to read it. Strings are decoded by String
// (escape-free runs copied whole, where gjson decodes byte by byte),
// exactly as gjson decodes them. v is valid JSON (request parsing checked
// the body); TestForEach and FuzzForEach hold it to gjson's ForEach.
// Anything but an object or array goes to v.ForEach.
func ForEach(v gjson.Result, fn func(key, val gjson.Result) bool) {
	switch {
	case v.IsObject():
		Members(v.Raw, func(k, val string) bool { return fn(String(k), value(val)) })
	case v.IsArray():
		key := gjson.Result{Type: gjson.Number, Num: -1}
		Elements(v.Raw, func(val string) bool {
			key.Num++
			return fn(key, value(val))
		})
	default:
		v.ForEach(fn)
	}
}

// value is gjson's reading of the raw JSON value raw.
func value(raw string) gjson.Result {
	if raw[0] == '"' {
		return String(raw)
	}
	return gjson.Parse(raw)
}

// Member is the raw text of the first member named key of the object obj,
// found without decoding any value — what obj.Get(key).Raw is, without the
// copy gjson makes of a string value that has escapes. A key written with
// escapes is compared decoded. ok is false when obj is not an object or has
// no such member.
func Member(obj, key string) (raw string, ok bool) {
	Members(obj, func(k, v string) bool {
		name := k[1 : len(k)-1]
		if name == key || strings.IndexByte(name, '\\') >= 0 && gjson.Parse(k).Str == key {
			raw, ok = v, true
			return false
		}
		return true
	})
	return raw, ok
}

// KeyValue is one member of an object, by its key.
type KeyValue struct {
	Key   string
	Value gjson.Result
}

// PlainName reports a member name of lower-case letters and underscores,
// at most 40 bytes, as every parameter's is: one no detector of personal
// data or secrets can match. Request parsing keeps the other names for the
// classifier, which reads them.
func PlainName(k string) bool {
	if len(k) > 40 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}
