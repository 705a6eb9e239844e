package classify

import (
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Languages stellwerk recognises; anything else is "unknown".
var Languages = []string{"en", "de", "fr", "it", "es", "nl", "pt", "pl"}

// LangUnknown is returned when no language clearly wins.
const LangUnknown = "unknown"

// langSample bounds the text examined: the language of a prompt is clear
// from its first few kilobytes, and this keeps the cost constant.
const langSample = 4 << 10

// maxLangWord is the longest listed word in bytes; longer words skip the lookup.
const maxLangWord = 16

// function words per language: short, frequent and fairly distinctive.
// A word listed for several languages counts for each, divided between them.
var langWords = map[int]string{
	0: "the and is are was were of to that it for with on this you what how be have has not can please from by which will would my your i me do does an or there their they about write explain",
	1: "der die das und ist nicht ich sie es ein eine einen mit für auf den dem zu von wie was bitte auch sind wir werden kann oder aber nach bei noch mir mich dass schreibe erkläre über diese ihr",
	2: "le la les et est une des du que qui pour dans pas ce cette vous je nous avec sur sont mais ou au aux il elle comment quel quelle moi mon votre plus être fait écris explique peux",
	3: "il lo gli della delle che è non per una sono con del come questo questa anche ma più mi ti ci cosa quando perché alla nel nella degli scrivi spiega puoi grazie essere io tu voi loro sua",
	4: "el los las que es una por para con del está son como pero más este esta qué cómo yo tú usted muy también hay puedes escribe explica gracias sobre cuando porque todo ser al su sus mi le",
	5: "de het een en is van dat niet ik je zijn op te met voor die er maar ook wat hoe kun kunt jij wij bij naar dit deze heb heeft worden wordt alsjeblieft schrijf leg uit geen mijn ze",
	6: "o os as um uma não que é para com do da dos das em no na por mais como mas você eu ele ela isso este esta muito também está são obrigado escreva explique pode sobre quando porque seu sua",
	7: "i w z na się nie to jest że do jak co o ale czy tak dla po od ja ty mi mnie jego jej są być może proszę napisz wyjaśnij który która które przez przy tylko już bardzo",
}

// langIndex maps a lower-case word to a bit set of languages.
var langIndex = func() map[string]uint16 {
	m := map[string]uint16{}
	for li, words := range langWords {
		for _, w := range strings.Fields(words) {
			m[w] |= 1 << li
		}
	}
	return m
}()

// langTable holds langIndex in open addressing: a prompt's words are
// looked up one by one, and a map lookup per word was most of
// DetectLanguage's time (TestLangTable holds it to langIndex). A slot is
// a word packed into two words (langWord): 16 KB of slots, where the
// table of strings, sets and shares it replaced took 64 KB and did not
// stay in a core's first-level cache between two words. A word's
// languages are in langSets, read only when the word is listed.
const langTableBits = 10 // 1,024 slots for ~330 words: probes are short

var (
	langTable [1 << langTableBits]langWord
	langSets  [1 << langTableBits]uint8
)

// langWord is a lower-cased word of at most maxLangWord bytes, its bytes
// in order from the low end of lo and then hi, the rest zero. UTF-8 has
// no zero byte in a letter, so the two words tell every listed word from
// every other (and the zero value is an empty slot).
type langWord struct{ lo, hi uint64 }

// langShare is the share of a word's evidence each of its languages gets,
// by how many languages list it.
var langShare = func() (s [9]float64) {
	for n := 1; n < len(s); n++ {
		s[n] = 1 / float64(n)
	}
	return s
}()

func init() {
	for w, set := range langIndex {
		k, ok := packLangWord([]byte(w))
		if !ok {
			panic("classify: listed word longer than maxLangWord: " + w)
		}
		i := k.slot()
		for langTable[i] != (langWord{}) {
			i = (i + 1) & (1<<langTableBits - 1)
		}
		langTable[i], langSets[i] = k, uint8(set)
	}
}

// packLangWord is w as a langWord, packed as DetectLanguage packs a word
// it reads (add); ok is false when it is longer than maxLangWord bytes.
func packLangWord(w []byte) (k langWord, ok bool) {
	if len(w) > maxLangWord {
		return k, false
	}
	for i, c := range w {
		k.add(i, c)
	}
	return k, true
}

// slot is the word's first slot in langTable: two multiplications, where
// a hash over its bytes one by one was a chain of dependent operations.
func (k langWord) slot() uint32 {
	h := k.lo*0x9E3779B97F4A7C15 ^ k.hi*0xC2B2AE3D27D4EB4F
	return uint32(h >> (64 - langTableBits))
}

// langLookup is langIndex of the word as a set of languages (bit i:
// Languages[i]), 0 when it is not listed.
func langLookup(k langWord) uint8 {
	for i := k.slot(); ; i = (i + 1) & (1<<langTableBits - 1) {
		switch langTable[i] {
		case k:
			return langSets[i]
		case langWord{}:
			return 0
		}
	}
}

// DetectLanguage returns the language code of text, or LangUnknown.
func DetectLanguage(text string) string {
	if len(text) > langSample {
		text = text[:langSample]
	}
	var score [8]float64
	i, n := 0, len(text)
	for i < n {
		// Skip to the next letter; ASCII without decoding.
		c := text[i]
		if c < utf8.RuneSelf {
			if !isASCIILetter(c) {
				i++
				continue
			}
		} else if r, size := utf8.DecodeRuneInString(text[i:]); !unicode.IsLetter(r) {
			i += size
			continue
		}
		// One word, lower-cased and packed as it is read (langWord).
		var k langWord
		bl := 0 // the word's length in bytes, counted past maxLangWord
		if i+8 <= n {
			// The word's first eight bytes at once, as the loop below
			// would add them: its ASCII letters, lower-cased.
			x := load8(text, i)
			letters := letters8(x)
			run := bits.TrailingZeros64(^letters&0x8080808080808080) / 8
			k.lo = x | letters>>2
			if run < 8 {
				k.lo &= 1<<(8*run) - 1
			}
			bl, i = run, i+run
		}
		for i < n {
			c := text[i]
			if c < utf8.RuneSelf {
				if !isASCIILetter(c) {
					break
				}
				k.add(bl, c|0x20)
				bl++
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(text[i:])
			if !unicode.IsLetter(r) {
				break
			}
			scriptHint(r, &score)
			var enc [utf8.UTFMax]byte
			for _, b := range enc[:utf8.EncodeRune(enc[:], unicode.ToLower(r))] {
				k.add(bl, b)
				bl++
			}
			i += size
		}
		if bl > maxLangWord {
			continue
		}
		if set := langLookup(k); set != 0 {
			share := langShare[bits.OnesCount8(set)]
			for li := range score {
				if set&(1<<li) != 0 {
					score[li] += share
				}
			}
		}
	}
	best, second := -1, -1
	for li := range score {
		if best < 0 || score[li] > score[best] {
			best, second = li, best
		} else if second < 0 || score[li] > score[second] {
			second = li
		}
	}
	if score[best] < 1.5 || score[best] < 1.5*score[second] {
		return LangUnknown
	}
	return Languages[best]
}

// add puts the word's byte at i (from 0) in place; bytes past maxLangWord
// are not kept (the word is not looked up).
func (k *langWord) add(i int, c byte) {
	switch {
	case i < 8:
		k.lo |= uint64(c) << (8 * i)
	case i < maxLangWord:
		k.hi |= uint64(c) << (8 * (i - 8))
	}
}

// scriptHint adds evidence from letters only some of the languages use.
func scriptHint(r rune, score *[8]float64) {
	switch r {
	case 'ß', 'ẞ':
		score[1] += 0.5
	case 'ñ', 'Ñ', '¿', '¡':
		score[4] += 0.5
	case 'ã', 'õ', 'Ã', 'Õ':
		score[6] += 0.5
	case 'ł', 'Ł', 'ą', 'ę', 'ś', 'ź', 'ż', 'ń', 'ć', 'Ą', 'Ę', 'Ś', 'Ź', 'Ż', 'Ń', 'Ć':
		score[7] += 0.5
	case 'ç':
		score[2] += 0.25
		score[6] += 0.25
	case 'ì', 'ò':
		score[3] += 0.3
	case 'œ', 'ê', 'û', 'î':
		score[2] += 0.3
	}
}
