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
// reports the error), and a word of another script by that script's costs
// (scriptCosts; tokens_scripts_test.go). Bytes below 0x80 never look a
// script up.
func EstimateTokens(text string) int { return int(estimateTokens(text) + 0.5) }

func estimateTokens(text string) float64 {
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
			if sc := scriptOf(r); sc != nil {
				var letters, marks int
				i, letters, marks = scanScript(text, i, sc)
				t += sc.word + sc.letter*float64(letters) + sc.mark*float64(marks)
				break
			}
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
	return t
}

// scanWord consumes a run of letters (ASCII, or non-wide Unicode letters of
// no script in scriptCosts) starting at i and returns the end, the number of
// letters and how many of them were non-ASCII. A combining diacritic (Latin
// text written decomposed) ends it and costs a symbol's 1.3: o200k_base
// charges about a token for each.
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
		if r >= 0x2E80 || !unicode.IsLetter(r) || r >= 0x0370 && scriptOf(r) != nil {
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

// scriptCost is what o200k_base charges for a word of one script: its
// vocabulary holds whole words of some scripts (Cyrillic, Greek), pieces of
// a few characters of others (Devanagari, Tamil: a vowel sign or virama
// merges with its letter), and single bytes of the rarest (Ethiopic, Lao:
// two or three tokens a character). A word is a run of characters of the
// script's block; letters and combining marks (vowel signs, viramas) are
// counted apart.
type scriptCost struct {
	lo, hi             rune
	word, letter, mark float64
}

// scriptCosts, sorted by block, are fitted against o200k_base on the
// sentences of testdata/tokens (TestTokenEstimateScripts reports the error;
// go test -run TestFitScriptCosts -tokens.fit refits them). A script not
// listed is costed as Latin below U+2E80 and a token a character above.
var scriptCosts = [...]scriptCost{
	{0x0370, 0x03FF, 0.01, 0.39, 0.39}, // Greek
	{0x0400, 0x052F, 0.67, 0.19, 0.19}, // Cyrillic
	{0x0530, 0x058F, 0.74, 0.27, 0.27}, // Armenian
	{0x0590, 0x05FF, 0.37, 0.31, 0.31}, // Hebrew
	{0x0600, 0x06FF, 0.41, 0.27, 0.27}, // Arabic
	{0x0900, 0x097F, 0.41, 0.37, 0.17}, // Devanagari
	{0x0980, 0x09FF, 0.00, 0.50, 0.25}, // Bengali
	{0x0A00, 0x0A7F, 0.00, 0.69, 0.58}, // Gurmukhi
	{0x0A80, 0x0AFF, 0.52, 0.21, 0.38}, // Gujarati
	{0x0B80, 0x0BFF, 0.44, 0.37, 0.19}, // Tamil
	{0x0C00, 0x0C7F, 0.03, 0.49, 0.26}, // Telugu
	{0x0C80, 0x0CFF, 0.56, 0.16, 0.43}, // Kannada
	{0x0D00, 0x0D7F, 0.87, 0.38, 0.00}, // Malayalam
	{0x0D80, 0x0DFF, 0.00, 0.82, 0.20}, // Sinhala
	{0x0E00, 0x0E7F, 0.00, 0.37, 0.51}, // Thai
	{0x0E80, 0x0EFF, 0.00, 1.83, 1.96}, // Lao
	{0x0F00, 0x0FFF, 0.00, 1.36, 1.82}, // Tibetan
	{0x1000, 0x109F, 0.00, 0.76, 0.39}, // Myanmar
	{0x10A0, 0x10FF, 0.42, 0.30, 0.30}, // Georgian
	{0x1200, 0x139F, 0.95, 1.99, 1.99}, // Ethiopic
	{0x1780, 0x17FF, 0.00, 1.06, 0.00}, // Khmer
	{0x3000, 0x303F, 0.00, 1.00, 1.00}, // CJK punctuation
	{0x3040, 0x30FF, 0.39, 0.53, 0.53}, // Hiragana, Katakana
	{0x3400, 0x9FFF, 0.39, 0.67, 0.67}, // Han
	{0xAC00, 0xD7AF, 0.49, 0.54, 0.54}, // Hangul
	{0xFF00, 0xFFEF, 0.00, 1.00, 1.00}, // full-width forms
}

// scriptOf returns the cost of r's script, or nil for one not listed.
func scriptOf(r rune) *scriptCost {
	lo, hi := 0, len(scriptCosts)
	for lo < hi {
		m := (lo + hi) / 2
		switch sc := &scriptCosts[m]; {
		case r < sc.lo:
			hi = m
		case r > sc.hi:
			lo = m + 1
		default:
			return sc
		}
	}
	return nil
}

// scanScript consumes the characters of sc's block starting at i, and the
// zero-width joiners between them (Persian, Sinhala and Indic scripts write
// them inside words), and returns the end and how many were letters and
// combining marks (a joiner counts as a mark).
func scanScript(text string, i int, sc *scriptCost) (end, letters, marks int) {
	n := len(text)
	for i < n && text[i] >= utf8.RuneSelf {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r >= sc.lo && r <= sc.hi:
			if unicode.IsMark(r) {
				marks++
			} else {
				letters++
			}
		case r == 0x200C || r == 0x200D:
			marks++
		default:
			return i, letters, marks
		}
		i += size
	}
	return i, letters, marks
}
