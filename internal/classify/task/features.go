package task

import (
	"math"
	"math/bits"
)

// Feature layout, shared with the generated weights (weights_gen.go) and the trainer
// (gen_test.go): numBuckets hashed n-gram features, then numCues dense cue features, then
// one bias; each feature has numClasses weights, stored feature-major. The n-gram weights
// are int16 with one scale (bucketScale) so that the table fits in L1 cache.
const (
	numBuckets  = 1400
	numFeatures = numBuckets + numCues + 1
	biasIndex   = numFeatures - 1

	// Analysis window: very long texts are read by head and tail only, keeping the cost per
	// request bounded and the instruction (usually at one end) in view.
	userHead   = 16 << 10
	userTail   = 4 << 10
	systemHead = 4 << 10

	// edgeWords is how many words at each end of the text count as the "instruction" zone.
	edgeWords = 12
)

// Cue features. Keyword groups come first: each has an "anywhere" and an "at either end"
// feature. Character-level cues follow.
const (
	gCodeVerb = iota
	gCodeWord
	gMathVerb
	gTranslate
	gLanguage
	gSummarize
	gExtract
	gFormat
	gClassify
	gLabel
	gWrite
	gCreative
	gReasoning
	gQuestion
	gGreeting
	gRoleplay
	gPersonal
	gAdvice
	numGroups
)

const (
	cCodeBlock = 2*numGroups + iota
	cCodeSyntax
	cIndent
	cMathOps
	cMathSymbols
	cBlank
	cChoices
	cQuestionEnd
	cQuestionMarks
	cShort
	cLong
	cManyLines
	cDollar
	cDigits
	cQuotes
	numCues
)

// cueNames are the Result.Cue values; both features of a keyword group share a name.
var cueNames = func() [numCues]string {
	g := [numGroups]string{
		gCodeVerb: "code_verb", gCodeWord: "code_syntax_word", gMathVerb: "math_verb",
		gTranslate: "translate_verb", gLanguage: "language_name", gSummarize: "summarize_verb",
		gExtract: "extract_verb", gFormat: "structured_output", gClassify: "classify_verb",
		gLabel: "label_set", gWrite: "write_verb", gCreative: "creative_form",
		gReasoning: "reasoning_cue", gQuestion: "question_word", gGreeting: "greeting",
		gRoleplay: "roleplay", gPersonal: "personal", gAdvice: "advice",
	}
	var n [numCues]string
	for i, s := range g {
		n[i], n[numGroups+i] = s, s
	}
	copy(n[2*numGroups:], []string{
		"code_block", "code_syntax", "indented_lines", "math_operators", "math_symbols",
		"fill_in_blank", "answer_options", "question_mark_end", "question_marks", "short_text",
		"long_text", "many_lines", "dollar_sign", "digits", "quotes",
	})
	return n
}()

// features is the extracted representation of one text. It lives on the caller's stack.
type features struct {
	set    [(numBuckets + 63) / 64]uint64 // active hashed n-grams
	active int
	words  int
	cues   [numCues]float32
}

func (f *features) cueSum() float32 {
	var s float32
	for _, v := range f.cues {
		s += v
	}
	return s
}

// addLogits adds scale times the feature evidence (without bias) to logits. Active n-grams
// share an L2 norm of 1 so that long pasted documents do not drown the cues.
func (f *features) addLogits(logits *[numClasses]float64, scale float64) {
	if scale == 0 {
		return
	}
	if f.active > 0 {
		var acc [numClasses]int32
		for wi, word := range f.set {
			for word != 0 {
				b := wi*64 + bits.TrailingZeros64(word)
				word &= word - 1
				w := (*[numClasses]int16)(bucketWeights[b*numClasses:])
				for c := range acc {
					acc[c] += int32(w[c])
				}
			}
		}
		v := scale * invSqrt(f.active) * bucketScale
		for c := range acc {
			logits[c] += v * float64(acc[c])
		}
	}
	for k, x := range f.cues {
		if x == 0 {
			continue
		}
		w := (*[numClasses]float32)(cueWeights[k*numClasses:])
		for c := range w {
			logits[c] += scale * float64(x) * float64(w[c])
		}
	}
}

func invSqrt(n int) float64 { return 1 / math.Sqrt(float64(n)) }

// Byte classes for the scanner.
const (
	bOther = iota
	bLower
	bUpper
	bDigit
	bHigh // any byte >= 0x80: part of a word (UTF-8 letters, or invalid bytes, alike)
	bSpace
	bNewline
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z':
			t[c] = bLower
		case c >= 'A' && c <= 'Z':
			t[c] = bUpper
		case c >= '0' && c <= '9':
			t[c] = bDigit
		case c >= 0x80:
			t[c] = bHigh
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			t[c] = bSpace
		case c == '\n':
			t[c] = bNewline
		}
	}
	return t
}()

var lower = func() (t [256]byte) {
	for c := range t {
		t[c] = byte(c)
		if c >= 'A' && c <= 'Z' {
			t[c] = byte(c) + 'a' - 'A'
		}
	}
	return t
}()

// punctBucket gives every ASCII punctuation byte its own hashed unigram feature.
var punctBucket = func() (t [128]uint16) {
	for c := 0; c < 128; c++ {
		t[c] = bucketOf(mix(uint64(c) ^ seedPunct))
	}
	return t
}()

const (
	seedStart = 0x9e3779b97f4a7c15
	seedEnd   = 0xc2b2ae3d27d4eb4f
	seedPunct = 0x165667b19e3779f9
	bigramMul = 0x94d049bb133111eb
)

// mix spreads a word hash over all 64 bits; bucketOf and the keyword table use its high
// and low bits respectively.
func mix(h uint64) uint64 {
	h ^= h >> 31
	h *= 0xff51afd7ed558ccd
	h ^= h >> 29
	return h
}

func bucketOf(m uint64) uint16 {
	hi, _ := bits.Mul64(m, numBuckets)
	return uint16(hi)
}

func bigram(prev, cur uint64) uint64 { return (prev * bigramMul) ^ cur ^ 0x5bd1e995 }

// scanner holds the state of one pass over a text.
type scanner struct {
	f         *features
	h         uint64 // hash of the word being read
	inWord    bool
	digit     bool // last byte added to the word was a digit (digit runs hash as one '0')
	c3        bool // last byte was 0xC3: fold Latin-1 capitals (À..Þ) to lower case
	prev      uint64
	groups    [numGroups]uint16
	start     uint32 // groups seen in the first edgeWords words
	ring      [edgeWords]uint64
	ringG     [edgeWords]uint32
	bytes     int
	lines     int
	punct     [8]int    // counts, see p* constants
	opState   uint8     // math operator state machine: 0 none, 1 after operand, 2 after operand+operator
	opDigit   bool      // the operand before the pending operator was a digit
	opsDig    int       // operand-operator-operand sequences involving a digit
	slot      int       // ring position of the next word
	punctSeen [2]uint64 // ASCII punctuation bytes seen, turned into features at the end
}

const (
	pSyntax = iota
	pFence
	pIndent
	pMathSym
	pBlank
	pChoice
	pQuestion
	pDollar
)

// extract fills f from text, reading at most head bytes from the start and tail bytes from
// the end (tail may be 0).
func (f *features) extract(text string, head, tail int) {
	if len(text) == 0 {
		return
	}
	s := scanner{f: f}
	digits := 0
	quotes := 0
	if len(text) <= head+tail {
		digits, quotes = s.scan(text)
	} else {
		d1, q1 := s.scan(text[:head])
		s.endWord()
		s.prev = 0
		d2, q2 := s.scan(text[len(text)-tail:])
		digits, quotes = d1+d2, q1+q2
	}
	s.endWord()
	s.finish(text, digits, quotes)
	f.count()
}

// scan reads one window byte by byte. Look-ahead is bounded (a few bytes), so the pass is
// linear whatever the input.
func (s *scanner) scan(t string) (digits, quotes int) {
	s.bytes += len(t)
	lineStart := true
	for i := 0; i < len(t); i++ {
		c := t[i]
		cls := byteClass[c]
		if lineStart && cls != bSpace && cls != bNewline {
			lineStart = false
			s.lineHead(t, i)
		}
		switch cls {
		case bUpper, bLower:
			// Fast path: hash the whole run of ASCII letters in a tight loop.
			h := s.h
			for ; i < len(t); i++ {
				c = t[i]
				if cl := byteClass[c]; cl != bLower && cl != bUpper {
					break
				}
				h = bits.RotateLeft64(h, 5) ^ uint64(lower[c])
			}
			i--
			s.h = h
			s.inWord, s.digit, s.c3 = true, false, false
			s.operand(false)
		case bDigit:
			digits++
			if !s.digit {
				s.h = bits.RotateLeft64(s.h, 5) ^ '0'
			}
			s.inWord, s.digit, s.c3 = true, true, false
			s.operand(true)
		case bHigh:
			if s.c3 && c >= 0x80 && c <= 0x9e && c != 0x97 {
				c += 0x20
			}
			s.highByte(t, i, c)
			s.h = bits.RotateLeft64(s.h, 5) ^ uint64(c)
			s.inWord, s.digit, s.c3 = true, false, c == 0xc3
		case bSpace:
			if s.inWord {
				s.endWord()
			}
			if c == '\t' && i > 0 && t[i-1] == '\n' {
				s.punct[pIndent]++
			}
			continue // spaces do not change the operator state
		case bNewline:
			if s.inWord {
				s.endWord()
			}
			s.prev = 0
			s.lines++
			lineStart = true
			if i+4 < len(t) && t[i+1] == ' ' && t[i+2] == ' ' && t[i+3] == ' ' && t[i+4] == ' ' {
				s.punct[pIndent]++
			}
			s.opState = 0
		default:
			if s.inWord {
				s.endWord()
			}
			if c == '.' || c == ',' {
				// the commonest punctuation: a feature, and no effect on other cues
				s.punctSeen[0] |= 1 << c
				continue
			}
			s.symbol(t, i, c)
			if c == '"' || c == '\'' {
				quotes++
			}
		}
	}
	return digits, quotes
}

// lineHead recognises answer-option lines: "A) …", "(b) …", "C. …", "- yes".
func (s *scanner) lineHead(t string, i int) {
	j := i
	if t[j] == '(' {
		j++
	}
	if j+1 < len(t) {
		c := t[j] | 0x20
		if c >= 'a' && c <= 'e' && (t[j+1] == ')' || (t[j+1] == '.' && j+2 < len(t) && t[j+2] == ' ')) {
			s.punct[pChoice]++
		}
	}
}

// operand advances the math-operator detector: operand, operator, operand counts once.
func (s *scanner) operand(digit bool) {
	if s.opState == 2 {
		if digit || s.opDigit {
			s.opsDig++
		}
	}
	s.opState = 1
	s.opDigit = digit
}

func (s *scanner) symbol(t string, i int, c byte) {
	s.punctSeen[(c>>6)&1] |= 1 << (c & 63)
	switch c {
	case '{', '}', ';', '[', ']', '<', '>', '=', '(', ')':
		s.punct[pSyntax]++
	case '?':
		s.punct[pQuestion]++
	case '$':
		s.punct[pDollar]++
	case '`':
		if i+2 < len(t) && t[i+1] == '`' && t[i+2] == '`' && (i == 0 || t[i-1] != '`') {
			s.punct[pFence]++
		}
	case '\\':
		if i+1 < len(t) && byteClass[t[i+1]] == bLower {
			s.punct[pMathSym]++ // LaTeX command
		}
	case '_':
		prevOK := i == 0 || byteClass[t[i-1]] == bSpace || t[i-1] == '"' || t[i-1] == '('
		if prevOK && (i+1 == len(t) || t[i+1] == '_' || byteClass[t[i+1]] == bSpace || byteClass[t[i+1]] == bNewline || t[i+1] == '.' || t[i+1] == ',' || t[i+1] == '?') {
			s.punct[pBlank]++
		}
	}
	switch c {
	case '+', '*', '/', '^', '=', '<', '>':
		if s.opState == 1 {
			s.opState = 2
		} else {
			s.opState = 0
		}
	case ')':
		// a closing parenthesis ends an operand: "(a+b) * c"
		if s.opState != 0 {
			s.opState = 1
		}
	case '-':
		// a minus between spaces or digits is an operator; in "step-by-step" it is not
		next := i+1 < len(t) && (t[i+1] == ' ' || byteClass[t[i+1]] == bDigit)
		if s.opState == 1 && next && i > 0 && (t[i-1] == ' ' || byteClass[t[i-1]] == bDigit) {
			s.opState = 2
		}
	case '(', '.', ',':
		// leave the state: "3.5", "1,000" and "f(x)" keep an expression going
	default:
		s.opState = 0
	}
}

// highByte spots a few multi-byte math symbols: U+2200..U+22FF (∑ ∫ √ ≤ …), ² ³ × ÷ and π.
func (s *scanner) highByte(t string, i int, c byte) {
	switch c {
	case 0xe2:
		if i+1 < len(t) && t[i+1] >= 0x88 && t[i+1] <= 0x8b {
			s.punct[pMathSym]++
		}
	case 0xc2:
		if i+1 < len(t) && (t[i+1] == 0xb2 || t[i+1] == 0xb3) {
			s.punct[pMathSym]++
		}
	case 0xc3:
		if i+1 < len(t) && (t[i+1] == 0x97 || t[i+1] == 0xb7) {
			s.punct[pMathSym]++
		}
	case 0xcf:
		if i+1 < len(t) && t[i+1] == 0x80 {
			s.punct[pMathSym]++
		}
	}
}

// setBucket marks an n-gram bucket active; features.count fills in active afterwards.
func (f *features) setBucket(b uint16) { f.set[b>>6] |= 1 << (b & 63) }

func (f *features) count() {
	n := 0
	for _, w := range f.set {
		n += bits.OnesCount64(w)
	}
	f.active = n
}

// endWord turns the word just read into features; scan calls it only inside a word, so
// that the check stays inlined at the call sites.
func (s *scanner) endWord() {
	if !s.inWord {
		return
	}
	w := s.h
	s.h, s.inWord, s.digit, s.c3 = 0, false, false, false
	f := s.f
	m := mix(w)
	f.setBucket(bucketOf(m))
	g := lookupKeyword(w, m)
	if s.prev != 0 {
		bg := bigram(s.prev, w)
		mb := mix(bg)
		f.setBucket(bucketOf(mb))
		g |= lookupKeyword(bg, mb)
	}
	if f.words < edgeWords {
		f.setBucket(bucketOf(mix(w ^ seedStart)))
		s.start |= g
	}
	s.ring[s.slot], s.ringG[s.slot] = w, g
	if s.slot++; s.slot == edgeWords {
		s.slot = 0
	}
	for g != 0 {
		k := bits.TrailingZeros32(g)
		g &= g - 1
		if s.groups[k] < 0xffff {
			s.groups[k]++
		}
	}
	s.prev = w
	f.words++
}

// finish turns counts into cue features, all in [0, 1].
func (s *scanner) finish(text string, digits, quotes int) {
	f := s.f
	n := f.words
	if n > edgeWords {
		n = edgeWords
	}
	var end uint32
	for i := 0; i < n; i++ {
		f.setBucket(bucketOf(mix(s.ring[i] ^ seedEnd)))
		end |= s.ringG[i]
	}
	for h, seen := range s.punctSeen {
		for seen != 0 {
			c := h*64 + bits.TrailingZeros64(seen)
			seen &= seen - 1
			f.setBucket(punctBucket[c])
		}
	}
	edge := s.start | end
	for k := 0; k < numGroups; k++ {
		f.cues[k] = sat(float32(s.groups[k]) / 2)
		if edge&(1<<k) != 0 {
			f.cues[numGroups+k] = 1
		}
	}
	nb := float32(s.bytes)
	f.cues[cCodeBlock] = sat(float32(s.punct[pFence]))
	f.cues[cCodeSyntax] = sat((float32(s.punct[pSyntax])/nb - 0.01) * 15)
	f.cues[cIndent] = sat(float32(s.punct[pIndent]) / 3)
	f.cues[cMathOps] = sat(float32(s.opsDig) / 2)
	f.cues[cMathSymbols] = sat(float32(s.punct[pMathSym]) / 2)
	f.cues[cBlank] = sat(float32(s.punct[pBlank]))
	f.cues[cChoices] = sat(float32(s.punct[pChoice]) / 3)
	f.cues[cQuestionEnd] = b2f(lastNonSpace(text) == '?')
	f.cues[cQuestionMarks] = sat(float32(s.punct[pQuestion]) / 2)
	f.cues[cShort] = b2f(len(text) < 80)
	f.cues[cLong] = b2f(len(text) > 1200)
	f.cues[cManyLines] = sat(float32(s.lines) / 8)
	f.cues[cDollar] = sat(float32(s.punct[pDollar]))
	f.cues[cDigits] = sat(float32(digits) / nb * 10)
	f.cues[cQuotes] = sat(float32(quotes) / 4)
}

func lastNonSpace(t string) byte {
	for i, n := len(t)-1, 0; i >= 0 && n < 64; i, n = i-1, n+1 {
		if c := byteClass[t[i]]; c != bSpace && c != bNewline {
			return t[i]
		}
	}
	return 0
}

func sat(x float32) float32 {
	if x < 0 || x != x {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}
