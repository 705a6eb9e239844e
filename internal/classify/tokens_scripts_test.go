package classify

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tiktoken-go/tokenizer"
)

// scriptCorpus reads testdata/tokens: a few natural sentences per language,
// one a line, written for the calibration of the per-script costs in
// tokens.go (varied, not one sentence repeated).
func scriptCorpus(t testing.TB) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "tokens", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no calibration corpus: %v", err)
	}
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lang := strings.TrimSuffix(filepath.Base(f), ".txt")
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				out[lang] = append(out[lang], line)
			}
		}
	}
	return out
}

// TestTokenEstimateScripts compares EstimateTokens with o200k_base on
// natural sentences of 28 languages in 25 scripts. The contract: over each
// language's sentences the total within ±30% (the fit is per script, and
// o200k_base knows more Russian words than Ukrainian ones, more Hindi than
// Marathi), and every single sentence within ±45%.
func TestTokenEstimateScripts(t *testing.T) {
	codec, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	corpus := scriptCorpus(t)
	langs := make([]string, 0, len(corpus))
	for l := range corpus {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	var b strings.Builder
	fmt.Fprintf(&b, "\n| language | sentences | o200k tokens | estimate | total error | worst sentence |\n|---|---:|---:|---:|---:|---:|\n")
	for _, lang := range langs {
		var real, est int
		var worst float64
		for _, s := range corpus[lang] {
			ids, _, _ := codec.Encode(s)
			r, e := len(ids), EstimateTokens(s)
			real += r
			est += e
			rel := float64(e-r) / float64(r)
			if math.Abs(rel) > math.Abs(worst) {
				worst = rel
			}
			if math.Abs(rel) > 0.45 {
				t.Errorf("%s: estimate %d, o200k %d (%+.0f%%): %s", lang, e, r, 100*rel, s)
			}
		}
		agg := float64(est)/float64(real) - 1
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %+.1f%% | %+.0f%% |\n", lang, len(corpus[lang]), real, est, 100*agg, 100*worst)
		if math.Abs(agg) > 0.30 {
			t.Errorf("%s: %d sentences, estimate %d, o200k %d (%+.1f%%)", lang, len(corpus[lang]), est, real, 100*agg)
		}
	}
	t.Log(b.String())
}

// BenchmarkEstimateTokensScripts: the calibration sentences of every
// language, 25 KB of text in 25 scripts.
func BenchmarkEstimateTokensScripts(b *testing.B) {
	var all strings.Builder
	for _, sentences := range scriptCorpus(b) {
		for _, s := range sentences {
			all.WriteString(s)
			all.WriteByte('\n')
		}
	}
	text := all.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		EstimateTokens(text)
	}
}
