package classify

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// countCuesByByte is countCues's definition, byte by byte: every byte that
// does not follow an ASCII letter is tried against every cue.
func countCuesByByte(s string) int {
	var seen uint64
	n := 0
	for i := 0; i < len(s); i++ {
		if i > 0 && isASCIILetter(s[i-1]) {
			continue
		}
		for ci, cue := range reasoningCues {
			if seen&(1<<ci) == 0 && hasPrefixFold(s[i:], cue) {
				seen |= 1 << ci
				n++
			}
		}
	}
	return n
}

// TestCountCues: over the task corpus, line by line, and over random mixes
// of cues, their fragments, capitals, accented words, digits and
// punctuation, countCues counts what its definition counts.
func TestCountCues(t *testing.T) {
	text, err := os.ReadFile("task/testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, line := range strings.Split(string(text), "\n") {
		got, want := countCues(line), countCuesByByte(line)
		if got != want {
			t.Fatalf("%d cues, want %d in %q", got, want, line)
		}
		found += want
	}
	if found < 20 {
		t.Fatalf("the corpus has %d cues: not what the test needs", found)
	}
	pieces := []string{" ", "-", "x", "é", "É", "café", "1", "\n", "STEP", "Pro", "(", "and", "tradeoffs", "étape", "An"}
	for _, c := range reasoningCues {
		pieces = append(pieces, c, c[:len(c)/2], strings.ToUpper(c))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 50000 {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := countCues(s), countCuesByByte(s); got != want {
			t.Fatalf("%d cues, want %d in %q", got, want, s)
		}
	}
}

// TestCueStarts: countCues tries only ASCII letters and 0xC3, so every cue
// starts with one; letters8 and bytes8 agree with isASCIILetter and == for
// every byte in every position.
func TestCueStarts(t *testing.T) {
	for _, c := range reasoningCues {
		if !isASCIILetter(c[0]) && c[0] != 0xC3 {
			t.Errorf("cue %q starts with a byte countCues does not try", c)
		}
	}
	for b := range 256 {
		for pos := range 8 {
			x := uint64(b)<<(8*pos) | 0x6141_c3ff_2e7a_5b40&^(0xff<<(8*pos))
			for j := range 8 {
				c := byte(x >> (8 * j))
				if got := letters8(x)>>(8*j+7)&1 == 1; got != isASCIILetter(c) {
					t.Fatalf("letters8(%#x) byte %d: %v", x, j, got)
				}
				if got := bytes8(x, 0xC3)>>(8*j+7)&1 == 1; got != (c == 0xC3) {
					t.Fatalf("bytes8(%#x, 0xC3) byte %d: %v", x, j, got)
				}
			}
		}
	}
}

func BenchmarkCountCues(b *testing.B) {
	text := benchText(2 << 10)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		countCues(text)
	}
}
