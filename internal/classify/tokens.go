package classify

import (
	"unicode"
	"unicode/utf8"
)

// EstimateTokens approximates the number of tokens the GPT-4o tokenizer
// (o200k_base) produces for text, in one allocation-free pass. It mimics the
// tokenizer's pre-split — words, digit groups of up to three, punctuation
// runs, whitespace runs — and charges each piece with coefficients fitted by
// least squares against the real tokenizer on English prose and Go and
// Python source (tokens_accuracy_test.go measures it; docs/classify.md
// reports the error).
func EstimateTokens(text string) int {
	var t float64
	i, n := 0, len(text)
	for i < n {
		c := text[i]
		switch {
		case c == ' ':
			j := i
			for j < n && text[j] == ' ' {
				j++
			}
			if run := j - i; run > 1 { // indentation; a single space joins the next word
				t += max(costSpaceRunMin, costSpaceRun-costSpaceEach*float64(run))
			}
			i = j
		case c == '\n' || c == '\r' || c == '\t':
			j := i
			for j < n && (text[j] == '\n' || text[j] == '\r' || text[j] == '\t') {
				j++
			}
			t += costNewlineRun
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < n && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			t += costDigitGroup * float64((j-i+2)/3)
			i = j
		case isASCIILetter(c):
			// Most words are ASCII letters only: counted here, without
			// scanWord's checks for accented letters.
			j := i + 1
			for j < n && isASCIILetter(text[j]) {
				j++
			}
			if j == n || text[j] < utf8.RuneSelf {
				t += wordCost(j - i)
				i = j
				break
			}
			var letters, accented int
			i, letters, accented = scanWord(text, i)
			t += wordCost(letters) + costAccented*float64(accented)
		case c < utf8.RuneSelf:
			j := i
			for j < n && isPunct(text[j]) {
				j++
			}
			if j == i { // control character
				j++
			}
			t += costPunctRun + costPunctChar*float64(j-i)
			i = j
		default:
			r, size := utf8.DecodeRuneInString(text[i:])
			switch {
			case r >= 0x2E80 && unicode.IsLetter(r): // CJK and other wide scripts
				t += costWideRune
				i += size
			case unicode.IsLetter(r): // a word starting with an accented letter
				var letters, accented int
				i, letters, accented = scanWord(text, i)
				t += wordCost(letters) + costAccented*float64(accented)
			default: // symbols, emoji, typographic punctuation, invalid bytes
				t += costSymbolRune
				i += size
			}
		}
	}
	return int(t + 0.5)
}

// scanWord consumes a run of letters (ASCII or non-wide Unicode letters)
// starting at i and returns the end, the number of letters and how many of
// them were non-ASCII.
func scanWord(text string, i int) (end, letters, accented int) {
	n := len(text)
	for i < n {
		c := text[i]
		if isASCIILetter(c) {
			letters++
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if r >= 0x2E80 || !unicode.IsLetter(r) {
			break
		}
		letters++
		accented++
		i += size
	}
	return i, letters, accented
}

// Coefficients fitted against o200k_base (see the calibration note in
// tokens_accuracy_test.go).
const (
	costSpaceRun     = 0.92
	costSpaceEach    = 0.095
	costSpaceRunMin  = 0.15
	costNewlineRun   = 0.65
	costDigitGroup   = 1.70
	costPunctRun     = 0.71
	costPunctChar    = 0.14
	costShortWord    = 1.04 // up to 7 letters
	costLongWord     = 0.71 // 8 letters or more: base …
	costLongPerChar  = 0.254
	costAccented     = 0.35 // extra per non-ASCII letter in a word
	costWideRune     = 1.0
	costSymbolRune   = 1.3
	shortWordLetters = 7
)

func wordCost(letters int) float64 {
	if letters <= shortWordLetters {
		return costShortWord
	}
	return costLongWord + costLongPerChar*float64(letters-shortWordLetters)
}

func isASCIILetter(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

func isPunct(c byte) bool {
	return c > ' ' && c < utf8.RuneSelf && !isASCIILetter(c) && (c < '0' || c > '9')
}
