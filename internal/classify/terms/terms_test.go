package terms

import (
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	m, err := New([]List{
		{Name: "project_zephyr", Terms: []string{"Project Zephyr", "zephyr"}, Patterns: []string{`zph-\d{4}`}},
		{Name: "codenames", Terms: []string{"Blåbær", "Straße", "c++"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		text string
		want [2]int
	}{
		"nothing":                         {"Say hello.", [2]int{0, 0}},
		"both zephyr terms":               {"What is Project Zephyr?", [2]int{2, 0}}, // "project zephyr" and "zephyr"
		"case, accents, spacing":          {"PROJECT\n\t  ZÉPHYR ships", [2]int{2, 0}},
		"whole words only":                {"zephyrs and antizephyr", [2]int{0, 0}},
		"punctuation is a border":         {"(zephyr), zephyr.", [2]int{2, 0}},
		"pattern":                         {"ticket ZPH-1234 and zph-99", [2]int{1, 0}},
		"accents in the term":             {"BLABAER and blabær and strasse and STRASSE", [2]int{0, 4}},
		"term ending in symbols":          {"we write c++ and c++20", [2]int{0, 2}}, // "c++" has no word edge at its end
		"letters of other scripts border": {"zephyrλ λzephyr", [2]int{0, 0}},
	} {
		t.Run(name, func(t *testing.T) {
			got := make([]int, 2)
			m.Count(tc.text, got)
			if got[0] != tc.want[0] || got[1] != tc.want[1] {
				t.Errorf("%q: got %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New([]List{
		{Name: "Bad Name", Terms: []string{"x"}},
		{Name: "empty"},
		{Name: "re", Patterns: []string{"(", "a*"}},
		{Name: "re", Terms: []string{"  "}},
	})
	for _, want := range []string{"classify.terms[0] (Bad Name): name", "classify.terms[1] (empty): needs terms or patterns",
		`classify.terms[2] (re): pattern "("`, `pattern "a*" matches the empty text`, "classify.terms[3] (re): name is used twice", `term "  " is empty`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestNilMatcher(t *testing.T) {
	m, err := New(nil)
	if err != nil || m != nil || m.Names() != nil {
		t.Fatal(m, err)
	}
	m.Count("anything", nil) // must not panic
}

// TestCountAcrossTheMiddle: a long text is scanned in two halves; a term
// at every offset around the cut is counted exactly once.
func TestCountAcrossTheMiddle(t *testing.T) {
	m, err := New([]List{{Name: "z", Terms: []string{"project zephyr"}}})
	if err != nil {
		t.Fatal(err)
	}
	for pad := 0; pad < 200; pad++ {
		text := strings.Repeat("x", 300+pad) + " Project Zephyr " + strings.Repeat("y", 300)
		got := make([]int, 1)
		m.Count(text, got)
		if got[0] != 1 {
			t.Fatalf("pad %d: counted %d", pad, got[0])
		}
	}
}

// A pattern is matched against folded text, so a literal folding changes
// can never match: refused with the folded spelling; (?i) and character
// classes are left to the author.
func TestPatternsMustBeFolded(t *testing.T) {
	for p, want := range map[string]string{
		`ZPH-\d{4}`:  `write "zph-"`,
		`café-\d+`:   `write "cafe-"`,
		`tab\there`:  `write "tab here"`,
		`straße \d+`: `write "strasse "`,
	} {
		_, err := New([]List{{Name: "l", Patterns: []string{p}}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", p, err, want)
		}
	}
	for _, p := range []string{`zph-\d{4}`, `(?i)ZPH-\d{4}`, `[A-Za-z]+-\d+`, `\bproject [a-z]+\b`, `\D\S\W-x`} {
		m, err := New([]List{{Name: "l", Patterns: []string{p}}})
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		counts := make([]int, 1)
		m.Count("ZPH-1234 and Project Zephyr", counts)
		if p == `zph-\d{4}` && counts[0] != 1 {
			t.Errorf("%s: %d matches", p, counts[0])
		}
	}
}

// TestCountInUnspacedScripts (the non-English probe, 2026-12-07): Chinese,
// Japanese and Thai put no spaces between words, so a term written in them
// matches inside a sentence, and a Latin term glued to them matches at the
// change of script; full-width forms, other scripts' digits and invisible
// characters are read as the PII pass reads them. Latin terms still match
// whole words only.
func TestCountInUnspacedScripts(t *testing.T) {
	m, err := New([]List{
		{Name: "swan", Terms: []string{"天鹅计划", "白鳥計画", "โครงการหงส์", "백조"}},
		{Name: "zurich", Terms: []string{"Zurich Projekt"}},
		{Name: "falcon", Terms: []string{"falcon", "zph 42"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		text string
		want [3]int
	}{
		"chinese sentence":          {"请告诉我天鹅计划的进度。", [3]int{1, 0, 0}},
		"chinese quoted":            {"关于「天鹅计划」", [3]int{1, 0, 0}},
		"japanese sentence":         {"白鳥計画の進捗を教えてください", [3]int{1, 0, 0}},
		"thai sentence":             {"ขอรายงานความคืบหน้าของโครงการหงส์ด้วยครับ", [3]int{1, 0, 0}},
		"korean with a particle":    {"백조의 진행 상황", [3]int{1, 0, 0}},
		"latin glued to chinese":    {"请汇报zurich projekt的进度", [3]int{0, 1, 0}},
		"latin glued to japanese":   {"zurich projektについて", [3]int{0, 1, 0}},
		"latin glued to thai":       {"รายงานfalconด้วย", [3]int{0, 0, 1}},
		"full-width":                {"ＦＡＬＣＯＮの件", [3]int{0, 0, 1}},
		"zero-width inside":         {"the fal\u200bcon and ze\u2060ro", [3]int{0, 0, 1}},
		"bidi marks inside":         {"\u200ffal\u200econ\u200f", [3]int{0, 0, 1}},
		"arabic-indic digits":       {"ticket ZPH ٤٢ open", [3]int{0, 0, 1}},
		"latin whole words":         {"falconry and gyrfalcon", [3]int{0, 0, 0}},
		"latin beside other letter": {"falconλ and zurich projekté", [3]int{0, 0, 0}},
	} {
		t.Run(name, func(t *testing.T) {
			got := make([]int, 3)
			m.Count(tc.text, got)
			if [3]int(got) != tc.want {
				t.Errorf("%q: got %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}
