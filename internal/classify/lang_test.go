package classify

import (
	"math/bits"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDetectLanguage(t *testing.T) {
	cases := map[string]struct{ text, want string }{
		"english":       {"Can you explain how the garbage collector in Go works and what the trade-offs are?", "en"},
		"english short": {"What is the capital of France?", "en"},
		"german":        {"Kannst du mir bitte erklären, wie die Speicherverwaltung in Go funktioniert und was die Nachteile sind?", "de"},
		"german upper":  {"ÜBER DIE GESCHICHTE DER STADT: WAS IST DAS WICHTIGSTE UND WIE IST ES ENTSTANDEN?", "de"},
		"french":        {"Peux-tu m'expliquer comment fonctionne le ramasse-miettes dans Go et quels sont les inconvénients pour une application ?", "fr"},
		"italian":       {"Puoi spiegarmi come funziona il garbage collector di Go e quali sono gli svantaggi per questa applicazione?", "it"},
		"spanish":       {"¿Puedes explicarme cómo funciona el recolector de basura en Go y cuáles son las desventajas para una aplicación?", "es"},
		"dutch":         {"Kun je mij uitleggen hoe de garbage collector in Go werkt en wat de nadelen zijn voor een applicatie?", "nl"},
		"portuguese":    {"Você pode me explicar como funciona o coletor de lixo em Go e quais são as desvantagens para uma aplicação?", "pt"},
		"polish":        {"Czy możesz mi wyjaśnić, jak działa odśmiecanie pamięci w Go i jakie są jego wady dla aplikacji?", "pl"},
		"code only":     {"func main() { fmt.Println(x+1) }", "unknown"},
		"numbers":       {"12 34 56 78 90", "unknown"},
		"empty":         {"", "unknown"},
		"japanese":      {"ガベージコレクタの仕組みを説明してください。", "unknown"},
		"swedish":       {"Kan du förklara hur skräpsamlaren fungerar?", "unknown"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := DetectLanguage(tc.text); got != tc.want {
				t.Errorf("DetectLanguage(%q) = %s, want %s", tc.text, got, tc.want)
			}
		})
	}
}

func TestDetectLanguageHostileInput(t *testing.T) {
	for _, s := range []string{strings.Repeat("a", 1<<20), strings.Repeat("\xff", 1<<16), strings.Repeat("é", 1<<16)} {
		_ = DetectLanguage(s)
	}
}

// TestLangTable: the open-addressed table answers exactly what langIndex
// does, for every listed word and for every word of the task corpus and of
// the other languages' samples, listed or not, packed byte by byte as
// DetectLanguage packs them.
func TestLangTable(t *testing.T) {
	lookup := func(w string) uint8 {
		k, ok := packLangWord([]byte(w))
		var added langWord
		for i := range len(w) {
			added.add(i, w[i])
		}
		if added != k && ok {
			t.Fatalf("%q packed as %x, added as %x", w, k, added)
		}
		if !ok {
			return 0
		}
		return langLookup(k)
	}
	for w, set := range langIndex {
		if got := lookup(w); got == 0 || uint16(got) != set {
			t.Fatalf("%q: set %b, want %b", w, got, set)
		}
	}
	text, err := os.ReadFile("task/testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	words := strings.FieldsFunc(strings.ToLower(string(text)), func(r rune) bool { return !unicode.IsLetter(r) })
	words = append(words, "", "x", "thé", "ßß", strings.Repeat("a", maxLangWord), "überhaupt", "zażółć")
	listed := 0
	for _, w := range words {
		set, ok := langIndex[w]
		if got := lookup(w); ok != (got != 0) || uint16(got) != set {
			t.Fatalf("%q: set %b, index %b %v", w, got, set, ok)
		}
		if ok {
			listed++
		}
	}
	if len(words) < 10000 || listed < len(words)/10 {
		t.Fatalf("%d words, %d listed: the corpus is not what the test needs", len(words), listed)
	}
}

// detectLanguageByByte is DetectLanguage as it was before it read a word's
// first eight bytes at once: the reference TestDetectLanguageByWords
// holds it to.
func detectLanguageByByte(text string) string {
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

// TestDetectLanguageByWords: over the task corpus and random mixes of
// listed words, accented and other-script letters, capitals, digits and
// punctuation, DetectLanguage says what it said reading byte by byte.
func TestDetectLanguageByWords(t *testing.T) {
	text, err := os.ReadFile("task/testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(text), "\n") {
		if got, want := DetectLanguage(line), detectLanguageByByte(line); got != want {
			t.Fatalf("%s, want %s for %q", got, want, line)
		}
	}
	pieces := []string{" ", ", ", "1", "\n", "ß", "Ñ", "ł", "ça", "è", "日本", "Привет", "\u200b", "wörter", "ABCDEFGHIJKLMNOPQRS", "dass", "Über", "x"}
	for _, words := range langWords {
		pieces = append(pieces, strings.Fields(words)...)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 30000 {
		var b strings.Builder
		for range 1 + r.IntN(16) {
			p := pieces[r.IntN(len(pieces))]
			if r.IntN(3) == 0 {
				p = strings.ToUpper(p)
			}
			b.WriteString(p)
			if r.IntN(2) == 0 {
				b.WriteByte(' ')
			}
		}
		s := b.String()
		if got, want := DetectLanguage(s), detectLanguageByByte(s); got != want {
			t.Fatalf("%s, want %s for %q", got, want, s)
		}
	}
}
