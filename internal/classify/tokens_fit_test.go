package classify

import (
	"flag"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

var fitScripts = flag.Bool("tokens.fit", false, "refit the per-script token costs against o200k_base and print them")

// TestFitScriptCosts refits scriptCosts. o200k_base splits text into words
// before it encodes them, so each script's costs are a least-squares fit of
// the tokens of each of its words in testdata/tokens (with the space
// before it, as the tokenizer sees it) on 1, the word's letters and its
// marks; a cost the fit makes negative is dropped and the rest refitted. It
// also fits on every other sentence and reports the error on the others.
// Run with -tokens.fit -v.
func TestFitScriptCosts(t *testing.T) {
	if !*fitScripts {
		t.Skip("run with -tokens.fit")
	}
	codec, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	corpus := scriptCorpus(t)
	fit := func(keep func(i int) bool) [len(scriptCosts)][3]float64 {
		var ata [len(scriptCosts)][3][3]float64
		var atb [len(scriptCosts)][3]float64
		for _, sentences := range corpus {
			for n, s := range sentences {
				if !keep(n) {
					continue
				}
				for i := 0; i < len(s); {
					r, size := utf8.DecodeRuneInString(s[i:])
					sc := scriptOf(r)
					if sc == nil {
						i += size
						continue
					}
					k := scriptIndex(sc)
					end, letters, marks := scanScript(s, i, sc)
					word := s[i:end]
					if i > 0 && s[i-1] == ' ' {
						word = " " + word
					}
					ids, _, _ := codec.Encode(word)
					x := [3]float64{1, float64(letters), float64(marks)}
					for a := range 3 {
						atb[k][a] += x[a] * float64(len(ids))
						for b := range 3 {
							ata[k][a][b] += x[a] * x[b]
						}
					}
					i = end
				}
			}
		}
		var out [len(scriptCosts)][3]float64
		for k, sc := range scriptCosts {
			// A script written without spaces between words has few, long
			// runs: they are charged by the character alone. Marks too few
			// to fit cost what letters do.
			merged := ata[k][2][2] < 20
			use := [3]bool{!unspaced(sc.lo), true, !merged}
			if merged {
				for f := range 3 {
					ata[k][1][f] += ata[k][2][f]
					ata[k][f][1] += ata[k][f][2]
				}
				ata[k][1][1] += ata[k][2][2] // (l+m)² = l² + 2lm + m²
				atb[k][1] += atb[k][2]
			}
			for {
				var a [][]float64
				var b []float64
				var idx []int
				for f := range 3 {
					if use[f] && ata[k][f][f] > 0 {
						idx = append(idx, f)
					}
				}
				for _, f := range idx {
					row := make([]float64, 0, len(idx))
					for _, g := range idx {
						row = append(row, ata[k][f][g])
					}
					a = append(a, row)
					b = append(b, atb[k][f])
				}
				out[k] = [3]float64{}
				if len(idx) == 0 {
					break
				}
				x := solve(a, b)
				neg := false
				for j, f := range idx {
					out[k][f] = x[j]
					if x[j] < 0 {
						use[f], neg = false, true
					}
				}
				if !neg {
					break
				}
			}
			if merged {
				out[k][2] = out[k][1]
			}
		}
		return out
	}
	set := func(c [len(scriptCosts)][3]float64) {
		for k := range scriptCosts {
			scriptCosts[k].word, scriptCosts[k].letter, scriptCosts[k].mark = c[k][0], c[k][1], c[k][2]
		}
	}
	saved := scriptCosts
	defer func() { scriptCosts = saved }()
	set(fit(func(n int) bool { return n%2 == 0 }))
	var b strings.Builder
	b.WriteString("held out (fitted on the even sentences, measured on the odd):\n")
	langs := make([]string, 0, len(corpus))
	for l := range corpus {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, lang := range langs {
		sentences := corpus[lang]
		var real, est int
		for n, s := range sentences {
			if n%2 == 1 {
				ids, _, _ := codec.Encode(s)
				real += len(ids)
				est += EstimateTokens(s)
			}
		}
		fmt.Fprintf(&b, "%s %+.1f%%\n", lang, 100*(float64(est)/float64(real)-1))
	}
	all := fit(func(int) bool { return true })
	for i, sc := range scriptCosts {
		fmt.Fprintf(&b, "\t{0x%04X, 0x%04X, %.2f, %.2f, %.2f},\n", sc.lo, sc.hi, all[i][0], all[i][1], all[i][2])
	}
	t.Log("\n" + b.String())
}

// unspaced reports whether the script at lo is written without spaces
// between words: Thai, Lao, Tibetan, Khmer (Chinese and Japanese are,
// but their runs of Han and of kana alternate and are short).
func unspaced(lo rune) bool {
	switch lo {
	case 0x0E00, 0x0E80, 0x0F00, 0x1780, 0x3000, 0xFF00:
		return true
	}
	return false
}

func scriptIndex(sc *scriptCost) int {
	for i := range scriptCosts {
		if &scriptCosts[i] == sc {
			return i
		}
	}
	panic("not a script")
}

// solve solves a·x = b by Gaussian elimination with partial pivoting.
func solve(a [][]float64, b []float64) []float64 {
	n := len(b)
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		b[c], b[p] = b[p], b[c]
		for r := c + 1; r < n; r++ {
			f := a[r][c] / a[c][c]
			for k := c; k < n; k++ {
				a[r][k] -= f * a[c][k]
			}
			b[r] -= f * b[c]
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := b[r]
		for k := r + 1; k < n; k++ {
			s -= a[r][k] * x[k]
		}
		x[r] = s / a[r][r]
	}
	return x
}
