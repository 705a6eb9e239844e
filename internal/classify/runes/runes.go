// Package runes says how a detector reads a character a model reads
// through: an invisible one (a zero-width space, a bidi mark, a variation
// selector) is not there, and a decimal digit of any script (٤, ۴, ४, ৪,
// ๔, ４) is its ASCII digit. The PII and secret pass (classify's plain
// reading) and the term lists fold text with the same answers.
package runes

import (
	"unicode"
	"unicode/utf8"
)

// LowSize bounds the runes Low answers for: past the last decimal digit
// below the CJK blocks (Ol Chiki, U+1C50–1C59).
const LowSize = 0x1c60

// Low's answers besides a digit's value.
const (
	Invisible8 = 0xfe
	Other8     = 0xff
)

// Low is, for r below LowSize, the value of the decimal digit r (0–9),
// Invisible8 or Other8: one load, for a loop over text in the alphabetic
// scripts. ASCII is Other8.
func Low(r rune) uint8 { return low[r] }

// low is Low's table: most non-ASCII text is below LowSize (Latin, Greek,
// Cyrillic, Arabic, the Indic scripts, Thai).
var low [LowSize]uint8

// high are the decimal digit ranges from LowSize on, each starting at a
// zero (Unicode keeps every decimal digit set ten in a row, 0 to 9).
var high []unicode.Range32

func init() {
	for r := range low {
		low[r] = Other8
	}
	for _, t := range unicode.Nd.R16 {
		for r := rune(t.Lo); r <= rune(t.Hi); r += rune(t.Stride) {
			digit(r, rune(t.Lo))
		}
	}
	for _, t := range unicode.Nd.R32 {
		for r := rune(t.Lo); r <= rune(t.Hi); r += rune(t.Stride) {
			digit(r, rune(t.Lo))
		}
	}
	for r := range rune(LowSize) {
		if invisibleSlow(r) {
			low[r] = Invisible8
		}
	}
	for r := range utf8.RuneSelf {
		low[r] = Other8 // ASCII digits are themselves
	}
}

func digit(r, zero rune) {
	if r < LowSize {
		low[r] = uint8((r - zero) % 10)
		return
	}
	if n := len(high); n > 0 && high[n-1].Hi+1 == uint32(r) {
		high[n-1].Hi++
		return
	}
	high = append(high, unicode.Range32{Lo: uint32(r), Hi: uint32(r), Stride: 1})
}

// Invisible reports whether r is a character a model reads through and a
// reader does not see: the soft hyphen, zero-width space, non-joiner and
// joiner, word joiner, byte-order mark, the bidi marks, embeddings,
// overrides and isolates, the combining grapheme joiner, the Mongolian
// vowel separator, the invisible operators, the variation selectors, the
// tag characters and the Hangul fillers.
func Invisible(r rune) bool {
	if r < LowSize {
		return low[r] == Invisible8
	}
	return invisibleSlow(r)
}

func invisibleSlow(r rune) bool {
	switch {
	case r < 0x00ad:
		return false
	case r == 0x00ad, r == 0x034f, r == 0x061c, r == 0x115f, r == 0x1160, r == 0x180e:
		return true
	case r < 0x200b:
		return false
	case r <= 0x200f, 0x202a <= r && r <= 0x202e, r == 0x2060, 0x2061 <= r && r <= 0x2064, 0x2066 <= r && r <= 0x2069:
		return true
	case r == 0x3164, 0xfe00 <= r && r <= 0xfe0f, r == 0xfeff, r == 0xffa0:
		return true
	case 0xe0000 <= r && r <= 0xe007f, 0xe0100 <= r && r <= 0xe01ef:
		return true
	}
	return false
}

// Digit is the ASCII digit a decimal digit of any script stands for ('٤'
// and '४' are '4'); ok is false for the rest, ASCII digits included.
func Digit(r rune) (d byte, ok bool) {
	if r < LowSize {
		if v := low[r]; v < 10 {
			return '0' + v, true
		}
		return 0, false
	}
	return digitHigh(r)
}

func digitHigh(r rune) (d byte, ok bool) {
	if r < 0xa620 || 0xabfa <= r && r < 0xff10 { // the CJK, kana and Hangul blocks have none
		return 0, false
	}
	lo, hi := 0, len(high)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case uint32(r) < high[m].Lo:
			hi = m
		case uint32(r) > high[m].Hi:
			lo = m + 1
		default:
			return '0' + byte((uint32(r)-high[m].Lo)%10), true
		}
	}
	return 0, false
}
