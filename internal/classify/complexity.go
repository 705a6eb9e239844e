package classify

import (
	"math/bits"
	"strings"
)

// Complexity levels.
const (
	Low    = "low"
	Medium = "medium"
	High   = "high"
)

// ComplexitySignals are the measurements behind a complexity level, kept so
// an explanation can say what drove it.
type ComplexitySignals struct {
	InputTokens     int     `json:"input_tokens"`     // of the user text
	Questions       int     `json:"questions"`        // question marks: sub-questions
	ListItems       int     `json:"list_items"`       // numbered or bulleted lines
	CodeBlocks      int     `json:"code_blocks"`      // fenced blocks
	ReasoningCues   int     `json:"reasoning_cues"`   // "step by step", "prove", "trade-offs", …
	CodeDensity     float64 `json:"code_density"`     // share of code punctuation
	MathDensity     float64 `json:"math_density"`     // share of math symbols
	RequestedOutput int     `json:"requested_output"` // tokens asked for (max_tokens or "in 2000 words")
	Turns           int     `json:"turns"`            // messages in the conversation
}

// cueSample bounds the phrase search; counts of characters cover the whole text.
const cueSample = 16 << 10

// reasoningCues are lower-case phrases that signal multi-step work.
var reasoningCues = []string{
	"step by step", "step-by-step", "prove", "proof", "derive", "justify", "trade-off", "tradeoff",
	"analyze", "analyse", "compare", "evaluate", "design a", "architecture", "in detail", "thoroughly",
	"why does", "why is", "reason about", "implications", "optimi", "edge case", "complexity of",
	"schritt für schritt", "beweise", "begründe", "analysiere", "vergleiche",
	"étape par étape", "démontre",
	"paso a paso", "demuestra", "analiza", "passo dopo passo", "dimostra", "analizza",
}

// Character kinds for the complexity scan.
const (
	kindPlain = iota
	kindSpace
	kindNewline
	kindQuestion
	kindCode
	kindMath
	kindMathLead
	kindMarker // may start a list item or a code fence
)

var charKind = func() (t [256]uint8) {
	for c := 0; c <= ' '; c++ {
		t[c] = kindSpace
	}
	t['\n'] = kindNewline
	t['?'] = kindQuestion
	for _, c := range "{};()[]<>=_" {
		t[c] = kindCode
	}
	for _, c := range "+^/%" {
		t[c] = kindMath
	}
	t['*'] = kindMath
	t[0xE2] = kindMathLead
	for _, c := range "-`0123456789" {
		t[c] = kindMarker
	}
	return t
}()

// measureComplexity reads the user text of the request.
func measureComplexity(user string, userTokens, turns, maxTokens int) ComplexitySignals {
	s := ComplexitySignals{InputTokens: userTokens, Turns: turns, RequestedOutput: maxTokens}
	var codeChars, mathChars, visible int
	lineStart := true
	for i := 0; i < len(user); i++ {
		c := user[i]
		k := charKind[c]
		if k == kindPlain {
			lineStart = false
			visible++
			continue
		}
		switch k {
		case kindSpace:
			continue
		case kindNewline:
			lineStart = true
			continue
		case kindQuestion:
			s.Questions++
		case kindCode:
			codeChars++
		case kindMath:
			mathChars++
		case kindMathLead: // U+2200–U+22FF mathematical operators: E2 88 80 – E2 8B BF
			if i+1 < len(user) && user[i+1] >= 0x88 && user[i+1] <= 0x8B {
				mathChars++
			}
		}
		visible++
		if lineStart {
			if isListMarker(user, i) {
				s.ListItems++
			}
			if c == '`' && strings.HasPrefix(user[i:], "```") {
				s.CodeBlocks++
			}
		}
		lineStart = false
	}
	s.CodeBlocks /= 2 // a block has an opening and a closing fence
	if visible > 0 {
		s.CodeDensity = float64(codeChars) / float64(visible)
		s.MathDensity = float64(mathChars) / float64(visible)
	}
	sample := user
	if len(sample) > cueSample {
		sample = sample[:cueSample]
	}
	s.ReasoningCues = countCues(sample)
	if n := requestedWords(sample); n > 0 && n*4/3 > s.RequestedOutput {
		s.RequestedOutput = n * 4 / 3
	}
	return s
}

// level turns the signals into low/medium/high and names what drove it.
func (s ComplexitySignals) level() (string, []string) {
	points := 0
	var drivers []string
	add := func(p int, why string) {
		points += p
		drivers = append(drivers, why)
	}
	switch {
	case s.InputTokens > 1500:
		add(2, "long_input")
	case s.InputTokens > 400:
		add(1, "medium_input")
	}
	switch {
	case s.Questions >= 6:
		add(2, "many_questions")
	case s.Questions >= 3:
		add(1, "several_questions")
	}
	if s.ListItems >= 3 {
		add(1, "structured_list")
	}
	if s.CodeBlocks >= 1 || s.CodeDensity > 0.06 {
		add(1, "code")
	}
	switch {
	case s.ReasoningCues >= 3:
		add(2, "reasoning_cues")
	case s.ReasoningCues >= 1:
		add(1, "reasoning_cue")
	}
	if s.MathDensity > 0.03 {
		add(1, "math")
	}
	switch {
	case s.RequestedOutput > 3000:
		add(2, "long_output_requested")
	case s.RequestedOutput > 1000:
		add(1, "long_output_requested")
	}
	if s.Turns > 8 {
		add(1, "long_conversation")
	}
	switch {
	case points >= 4:
		return High, drivers
	case points >= 2:
		return Medium, drivers
	default:
		return Low, drivers
	}
}

func isListMarker(s string, i int) bool {
	c := s[i]
	if (c == '-' || c == '*') && i+1 < len(s) && s[i+1] == ' ' {
		return true
	}
	if strings.HasPrefix(s[i:], "• ") {
		return true
	}
	j := i
	for j < len(s) && j-i < 3 && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	return j > i && j+1 < len(s) && (s[j] == '.' || s[j] == ')') && s[j+1] == ' '
}

// cuesByFirst indexes reasoningCues by their first byte, with their
// second and third bytes, so one pass over the text compares a cue only
// where its first three bytes are.
var cuesByFirst = func() (idx [256][]cueRef) {
	for i, c := range reasoningCues {
		idx[c[0]] = append(idx[c[0]], cueRef{next: [2]byte{c[1], c[2]}, i: uint8(i)})
	}
	return idx
}()

// cueTriples has a bit for a hash of the first three bytes of every cue
// (cueTriple), so a word whose start begins no cue (most words of a text,
// "the", "and" and "which" too) costs one test that is seldom wrong.
var cueTriples = func() (set [cueTripleBits / 64]uint64) {
	for _, c := range reasoningCues {
		h := cueTriple(c[0], c[1], c[2])
		set[h>>6] |= 1 << (h & 63)
	}
	return set
}()

const cueTripleLog, cueTripleBits = 12, 1 << 12

func cueTriple(a, b, c byte) uint32 {
	return (uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 0x9E3779B1 >> (32 - cueTripleLog)
}

// cueRef is a cue in cuesByFirst: its second and third bytes, its index.
type cueRef struct {
	next [2]byte
	i    uint8
}

// countCues counts the distinct reasoning cues that start a word in s: at
// the text's start or after any byte that is not an ASCII letter
// (TestCountCues holds it to that definition, byte by byte). Every cue
// starts with a lower-case ASCII letter or 0xC3 (é), so only the first
// letter of a word and a 0xC3 after no letter are tried; both are found
// eight bytes at a time (cueStarts8).
func countCues(s string) int {
	var seen uint64
	n := 0
	var after uint64 // 0x80 when the byte before the block is an ASCII letter
	for base := 0; base+2 < len(s); base += 8 {
		x := load8(s, base)
		letters := letters8(x)
		lead := (letters << 8) | after // the bytes that follow a letter
		after = (letters >> 56) & 0x80
		for m := (letters | bytes8(x, 0xC3)) &^ lead; m != 0; m &= m - 1 {
			i := base + bits.TrailingZeros64(m)/8
			if i+2 >= len(s) {
				break
			}
			c := s[i]
			if c != 0xC3 {
				c |= 0x20
			}
			next := [2]byte{lowerASCII(s[i+1]), lowerASCII(s[i+2])}
			if h := cueTriple(c, next[0], next[1]); cueTriples[h>>6]&(1<<(h&63)) != 0 {
				for _, ref := range cuesByFirst[c] {
					if ref.next == next && seen&(1<<ref.i) == 0 && hasPrefixFold(s[i:], reasoningCues[ref.i]) {
						seen |= 1 << ref.i
						n++
					}
				}
			}
		}
	}
	return n
}

// load8 reads s[i:i+8] as a little-endian word, zeros past the end of s.
func load8(s string, i int) uint64 {
	if i+8 <= len(s) {
		_ = s[i+7]
		return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	}
	return loadTail(s, i)
}

// loadTail is load8 for the last bytes of s, fewer than eight.
func loadTail(s string, i int) uint64 {
	var x uint64
	for j := len(s) - 1; j >= i; j-- {
		x = x<<8 | uint64(s[j])
	}
	return x
}

// letters8 has the high bit set in each byte of x that is an ASCII letter
// (isASCIILetter).
func letters8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	low := (x | ones*0x20) &^ highs // folded, seven bits: no carry between bytes below
	return (low + ones*(0x80-'a')) &^ (low + ones*(0x80-'z'-1)) &^ x & highs
}

// bytes8 has the high bit set in each byte of x equal to c.
func bytes8(x uint64, c byte) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	y := x ^ ones*uint64(c)
	return ^((y&^highs + ones*0x7F) | y) & highs
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c | 0x20
	}
	return c
}

// wordUnits are the nouns that make "N words" a requested output length.
var wordUnits = []string{"words", "word", "wörter", "mots", "palabras", "parole", "woorden", "palavras", "słów"}

// requestedWords finds "N words" (or Wörter/mots/palabras/parole/…) and
// returns the largest N, or 0.
func requestedWords(s string) int {
	best := 0
	for i := nextDigit(s, 0); i < len(s); i = nextDigit(s, i) {
		// i starts a run of digits: the text's start, or after a byte
		// that is none.
		n, j := 0, i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			if j-i < 6 {
				n = n*10 + int(s[j]-'0')
			}
			j++
		}
		k := j
		for k < len(s) && k-j < 2 && (s[k] == ' ' || s[k] == '-') {
			k++
		}
		if k > j && n > best {
			for _, w := range wordUnits {
				if hasPrefixFold(s[k:], w) {
					best = n
					break
				}
			}
		}
		i = j
	}
	return best
}

// nextDigit returns the index of the first ASCII digit in s from i on, or
// len(s). Prose has few digits, so it tests eight bytes at a time.
func nextDigit(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if m := digits8(s, i); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return i
		}
	}
	return len(s)
}

// digits8 has the top bit of a byte's lane set where the byte of s at i+lane
// is an ASCII digit, and no other bit: a byte b below 0x80 is a digit when
// 127+':'-b and b+127-'/' both reach 0x80 (neither can borrow from or carry
// into the next lane), and a byte from 0x80 on is cleared by &^ x.
func digits8(s string, i int) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	_ = s[i+7]
	x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	low := x &^ highs
	return (ones*(127+'9'+1) - low) &^ x & (low + ones*(127-('0'-1))) & highs
}

// hasPrefixFold reports whether s starts with the lower-case prefix,
// ignoring ASCII case in s, without allocating.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for k := 0; k < len(prefix); k++ {
		if lowerASCII(s[k]) != prefix[k] {
			return false
		}
	}
	return true
}
