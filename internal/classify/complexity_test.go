package classify

import (
	"strings"
	"testing"
)

func TestComplexityLevels(t *testing.T) {
	cases := map[string]struct {
		text      string
		maxTokens int
		turns     int
		want      string
		driver    string
	}{
		"greeting":      {text: "Hi! How are you today?", turns: 1, want: Low},
		"factual":       {text: "What is the boiling point of water at sea level?", turns: 1, want: Low},
		"one cue":       {text: "Compare TCP and UDP.", turns: 1, want: Low, driver: "reasoning_cue"},
		"analysis":      {text: "Explain step by step why this proof fails, compare it with the standard argument and justify each step.", turns: 1, want: Medium, driver: "reasoning_cues"},
		"long essay":    {text: "Write an essay of 3000 words on the history of railways, in detail, and analyze the trade-offs of gauge choices.", turns: 1, want: High, driver: "long_output_requested"},
		"many parts":    {text: "1. What is X?\n2. Why is Y?\n3. How does Z work?\n4. When?\n5. Where?\n6. Who?", turns: 1, want: High, driver: "many_questions"},
		"code and math": {text: "```python\ndef f(x):\n    return x**2 + 3*x\n```\nDerive f'(x) and prove f is convex: ∀x, f''(x) ≥ 0.", turns: 1, want: Medium, driver: "code"},
		"long thread":   {text: "And now?", turns: 12, maxTokens: 4000, want: Medium, driver: "long_conversation"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := measureComplexity(tc.text, EstimateTokens(tc.text), tc.turns, tc.maxTokens)
			got, drivers := s.level()
			if got != tc.want {
				t.Errorf("level %s (drivers %v, signals %+v), want %s", got, drivers, s, tc.want)
			}
			if tc.driver != "" && !strings.Contains(strings.Join(drivers, ","), tc.driver) {
				t.Errorf("drivers %v lack %s", drivers, tc.driver)
			}
		})
	}
}

func TestRequestedWords(t *testing.T) {
	for text, want := range map[string]int{
		"in 500 words":               500,
		"about 1200-word essay":      1200,
		"Schreibe 800 Wörter":        800,
		"3 words or 40 WORDS please": 40,
		"version 2 of the API":       0,
		"99999999999 words":          999999,
	} {
		if got := requestedWords(text); got != want {
			t.Errorf("requestedWords(%q) = %d, want %d", text, got, want)
		}
	}
}

func TestComplexityHostileInput(t *testing.T) {
	for _, s := range []string{strings.Repeat("1", 1<<20), strings.Repeat("s", 1<<20), strings.Repeat("1 w", 1<<18)} {
		measureComplexity(s, 0, 1, 0)
	}
}

// TestNextDigit holds the eight-byte search to the byte-by-byte definition:
// every byte value in every lane, beside bytes on either side of the digit
// range and from 0x80 on, and at every length of the tail.
func TestNextDigit(t *testing.T) {
	slow := func(s string, i int) int {
		for ; i < len(s); i++ {
			if s[i] >= '0' && s[i] <= '9' {
				return i
			}
		}
		return len(s)
	}
	for _, fill := range []byte{'a', '/', ':', 0x80, 0xff, 0x7f, ' '} {
		for b := 0; b < 256; b++ {
			for lane := range 11 {
				buf := []byte(strings.Repeat(string(fill), 11))
				buf[lane] = byte(b)
				s := string(buf)
				for from := range 3 {
					if got, want := nextDigit(s, from), slow(s, from); got != want {
						t.Fatalf("nextDigit(%q, %d) = %d, want %d", s, from, got, want)
					}
				}
			}
		}
	}
}
