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

// langSlot is one listed word in langTable: its languages, and the share
// of a word's evidence each of them gets.
type langSlot struct {
	word  string
	set   uint16
	share float64
}

const langTableBits = 11 // 2,048 slots for ~330 words: probes are short

// langTable holds langIndex in open addressing, probed with langHash: a
// prompt's words are looked up one by one, and a map lookup per word was
// most of DetectLanguage's time (TestLangTable holds it to langIndex).
var langTable = func() (t [1 << langTableBits]langSlot) {
	for w, set := range langIndex {
		i := langHash([]byte(w))
		for t[i].word != "" {
			i = (i + 1) & (1<<langTableBits - 1)
		}
		t[i] = langSlot{word: w, set: set, share: 1 / float64(popcount(set))}
	}
	return t
}()

// langHash is a langTable index for the word: a rotate and xor per byte
// (no multiplication chained through the word), then Fibonacci hashing.
func langHash(w []byte) uint32 {
	h := uint32(len(w))
	for _, c := range w {
		h = bits.RotateLeft32(h, 5) ^ uint32(c)
	}
	return (h * 0x9E3779B1) >> (32 - langTableBits)
}

// langLookup is langIndex[w] as a slot, nil when w is not listed.
func langLookup(w []byte) *langSlot {
	for i := langHash(w); ; i = (i + 1) & (1<<langTableBits - 1) {
		e := &langTable[i]
		if e.word == "" {
			return nil
		}
		if e.word == string(w) {
			return e
		}
	}
}

// DetectLanguage returns the language code of text, or LangUnknown.
func DetectLanguage(text string) string {
	if len(text) > langSample {
		text = text[:langSample]
	}
	var score [8]float64
	var buf [32]byte
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
		// One word, lower-cased into buf without allocating.
		bl, tooLong := 0, false
		for i < n {
			c := text[i]
			if c < utf8.RuneSelf {
				if !isASCIILetter(c) {
					break
				}
				if bl < len(buf) {
					buf[bl] = c | 0x20
					bl++
				} else {
					tooLong = true
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(text[i:])
			if !unicode.IsLetter(r) {
				break
			}
			scriptHint(r, &score)
			if bl+utf8.UTFMax <= len(buf) {
				bl += utf8.EncodeRune(buf[bl:], unicode.ToLower(r))
			} else {
				tooLong = true
			}
			i += size
		}
		if tooLong || bl > maxLangWord {
			continue
		}
		if e := langLookup(buf[:bl]); e != nil {
			for li := range score {
				if e.set&(1<<li) != 0 {
					score[li] += e.share
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

func popcount(x uint16) int {
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}
