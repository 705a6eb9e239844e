// Package jsonw writes JSON values by appending to a byte slice, exactly as
// encoding/json encodes them with HTML escaping off (json.Encoder with
// SetEscapeHTML(false)), for the encoders on hot paths that cannot afford
// reflection: the translated streams and the audit record. Its fuzz tests
// hold it to encoding/json's bytes.
package jsonw

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// ErrUnsupportedFloat is AppendFloat's error for NaN and ±Inf, which JSON
// cannot represent (encoding/json refuses them too).
var ErrUnsupportedFloat = errors.New("json: unsupported float value (NaN or Inf)")

// AppendString appends s as a JSON string: control characters escaped,
// invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped, <, > and & as they
// are.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && plain8(s, i) {
			i += 8
			continue
		}
		if b := s[i]; b < utf8.RuneSelf {
			if b >= ' ' && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plain8 says whether the eight bytes of s from i are all copied as they
// are: printable ASCII other than '"' and '\\'. It tests them as one word:
// with no byte below 0x20, equal to '"' or '\\', or from 0x80 on, no
// subtraction borrows and no lane's top bit survives; with one, that
// byte's lane keeps its top bit (the standard "has a byte less than n" and
// "has a zero byte" tests, exact for the word as a whole).
func plain8(s string, i int) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	_ = s[i+7]
	x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	special := (x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs | x
	return special&highs == 0
}

// AppendFloat appends a float64 as encoding/json writes it: the shortest
// representation that reads back exactly, in exponent form only below
// 1e-6 or from 1e21 on (with a one-digit negative exponent as e-7, not
// e-07). NaN and ±Inf leave dst as it was and return ErrUnsupportedFloat.
func AppendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, ErrUnsupportedFloat
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// AppendInt appends an integer.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
