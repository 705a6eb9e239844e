package classify

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/tiktoken-go/tokenizer"
)

// tokenCorpus gathers real text from the machine and the shared data sets:
// English prose (ARC questions, benign prompts, presidio sentences) and code
// (Go standard library and Python standard library source files).
func tokenCorpus(t testing.TB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	data := filepath.Join("..", "..", "..", "shared", "data")
	readCSV := func(path, col string, max int) []string {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		r := csv.NewReader(f)
		r.LazyQuotes = true
		hdr, err := r.Read()
		if err != nil {
			return nil
		}
		ci := -1
		for i, h := range hdr {
			if h == col {
				ci = i
			}
		}
		var res []string
		for len(res) < max {
			rec, err := r.Read()
			if err != nil {
				break
			}
			if ci >= 0 && ci < len(rec) && len(rec[ci]) > 20 {
				res = append(res, rec[ci])
			}
		}
		return res
	}
	arc := readCSV(filepath.Join(data, "routerbench", "arc_challenge_train.csv"), "prompt", 300)
	out["english"] = append(out["english"], arc[:min(150, len(arc))]...)
	if len(arc) > 150 {
		out["heldout_english"] = append(out["heldout_english"], arc[150:]...)
	}
	for _, p := range readCSV(filepath.Join(data, "injection", "jailbreak_train_balanced.csv"), "prompt", 400) {
		if len(out["english"]) < 400 {
			out["english"] = append(out["english"], p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(data, "pii", "presidio_generated_large.json")); err == nil {
		var rows []struct {
			FullText string `json:"full_text"`
		}
		if json.Unmarshal(b, &rows) == nil {
			for i := 0; i < len(rows) && i < 1500; i += 10 {
				out["english"] = append(out["english"], rows[i].FullText)
				if i+5 < len(rows) {
					out["heldout_english"] = append(out["heldout_english"], rows[i+5].FullText)
				}
			}
		}
	}
	addFiles := func(kind, root, ext string, max int) {
		var files []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ext) && !strings.Contains(p, "testdata") {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		step := len(files)/max + 1
		for i := 0; i < len(files); i += step {
			if b, err := os.ReadFile(files[i]); err == nil && len(b) > 200 && len(b) < 200_000 {
				out[kind] = append(out[kind], string(b))
			}
		}
	}
	// Fitted on: GOROOT and the Python standard library. Held out: Go modules
	// in the module cache and Python packages in the project's tool venv.
	//lint:ignore SA1019 a test runs from the toolchain that built it, whose sources are the corpus
	addFiles("code_go", filepath.Join(runtime.GOROOT(), "src"), ".go", 150)
	if mc := os.Getenv("GOMODCACHE"); mc != "" {
		addFiles("heldout_code_go", filepath.Join(mc, "google.golang.org"), ".go", 150)
	} else if home, err := os.UserHomeDir(); err == nil {
		addFiles("heldout_code_go", filepath.Join(home, "go", "pkg", "mod", "google.golang.org"), ".go", 150)
	}
	if sp, err := filepath.Glob(filepath.Join("..", "..", ".tools", "venv", "lib", "python3*", "site-packages", "openai")); err == nil && len(sp) > 0 {
		addFiles("heldout_code_python", sp[0], ".py", 150)
	}
	if py, err := filepath.Glob("/root/.pyenv/versions/*/lib/python3*/json"); err == nil && len(py) > 0 {
		addFiles("code_python", filepath.Dir(py[0]), ".py", 150)
	} else if py, err := filepath.Glob("/usr/lib/python3*/json"); err == nil && len(py) > 0 {
		addFiles("code_python", filepath.Dir(py[0]), ".py", 150)
	}
	return out
}

type tokenStats struct {
	Samples       int
	Aggregate     float64 // sum(estimate)/sum(real) - 1
	MeanAbs       float64
	WithinTenPct  float64
	P90Abs        float64
	RealTokensSum int
}

func measureTokens(t testing.TB, enc tokenizer.Encoding, corpus []string) tokenStats {
	codec, err := tokenizer.Get(enc)
	if err != nil {
		t.Fatal(err)
	}
	var s tokenStats
	var errs []float64
	var est, real int
	for _, text := range corpus {
		ids, _, _ := codec.Encode(text)
		r, e := len(ids), EstimateTokens(text)
		if r < 20 {
			continue
		}
		real += r
		est += e
		rel := float64(e-r) / float64(r)
		errs = append(errs, math.Abs(rel))
	}
	if len(errs) == 0 {
		return s
	}
	sort.Float64s(errs)
	var sum float64
	within := 0
	for _, e := range errs {
		sum += e
		if e <= 0.10 {
			within++
		}
	}
	s.Samples = len(errs)
	s.Aggregate = float64(est)/float64(real) - 1
	s.MeanAbs = sum / float64(len(errs))
	s.WithinTenPct = float64(within) / float64(len(errs))
	s.P90Abs = errs[len(errs)*9/10]
	s.RealTokensSum = real
	return s
}

// Calibration: the coefficients in tokens.go are a least-squares fit
// (weighted by 1/tokens², i.e. relative error) of the per-piece counts of
// the "english", "code_go" and "code_python" corpora against o200k_base;
// the heldout_* corpora were not used for the fit.
//
// TestTokenEstimateAccuracy compares EstimateTokens with the real o200k_base
// and cl100k_base tokenizers (github.com/tiktoken-go/tokenizer, which embeds
// OpenAI's vocabularies). The contract: the total over a corpus within ±10%
// for English prose and for code against o200k_base, and most single texts
// within ±10%.
func TestTokenEstimateAccuracy(t *testing.T) {
	corpus := tokenCorpus(t)
	if len(corpus["english"]) < 50 || len(corpus["code_go"]) < 50 {
		t.Skip("token corpus not available (needs ../shared/data and GOROOT sources)")
	}
	kinds := []string{"english", "code_go", "code_python", "heldout_english", "heldout_code_go", "heldout_code_python"}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| corpus | tokenizer | texts | real tokens | total error | mean abs error | p90 abs error | texts within ±10%% |\n|---|---|---|---|---|---|---|---|\n")
	for _, enc := range []tokenizer.Encoding{tokenizer.O200kBase, tokenizer.Cl100kBase} {
		for _, k := range kinds {
			if len(corpus[k]) == 0 {
				continue
			}
			s := measureTokens(t, enc, corpus[k])
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %+.1f%% | %.1f%% | %.1f%% | %.0f%% |\n", k, enc, s.Samples, s.RealTokensSum,
				100*s.Aggregate, 100*s.MeanAbs, 100*s.P90Abs, 100*s.WithinTenPct)
			if enc == tokenizer.O200kBase && (math.Abs(s.Aggregate) > 0.10 || s.WithinTenPct < 0.6) {
				t.Errorf("%s against %s: total error %+.1f%%, %.0f%% of texts within ±10%%", k, enc, 100*s.Aggregate, 100*s.WithinTenPct)
			}
		}
	}
	t.Log(b.String())
}
