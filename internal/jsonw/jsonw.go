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
	if out, ok := appendShortDecimal(dst, f); ok {
		return out, nil
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

// decimalScales are the scales appendShortDecimal tries, fewest decimals
// first.
var decimalScales = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// appendShortDecimal writes f when it is a decimal of at most six
// fractional digits below 1e6 (a quality of 0.85, a latency of 412.5, a
// price per million tokens of 0.15) without strconv's shortest-digit
// search, which costs ten times as much. k/s == f, with k = round(f·s),
// says that the decimal k/s reads back as f (the division is correctly
// rounded, as parsing is); trying the scales in order finds the one with
// the fewest digits, which is strconv's answer: two decimals of as many
// digits are 10⁻⁶ or more apart, far more than f's spacing below 1e6, so
// no other reads back as f (TestAppendFloatDecimals). Most other floats
// (a cost of 0.00024508799999999997) leave at the first test: f·10⁶ of
// such a decimal is within 10⁻³ of an integer (f's error and the
// product's rounding stay below 3·10⁻⁴ under 1e12).
func appendShortDecimal(dst []byte, f float64) ([]byte, bool) {
	neg := f < 0
	a := math.Abs(f)
	if !(a >= 1e-6 && a < 1e6) {
		return dst, false
	}
	if m := a * 1e6; math.Abs(m-math.Round(m)) > 1e-3 {
		return dst, false
	}
	for i, s := range decimalScales {
		k := math.Round(a * s)
		if k/s != a {
			continue
		}
		if neg {
			dst = append(dst, '-')
		}
		n := uint64(k)
		if i == 0 {
			return strconv.AppendUint(dst, n, 10), true
		}
		pow := uint64(1)
		for range i {
			pow *= 10
		}
		dst = strconv.AppendUint(dst, n/pow, 10)
		dst = append(dst, '.')
		frac := n % pow
		for p := pow / 10; p > frac && p > 1; p /= 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendUint(dst, frac, 10), true
	}
	return dst, false
}

// AppendInt appends an integer.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
