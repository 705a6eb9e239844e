package injection

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "retrain on the tune split and rewrite weights_gen.go")

// dataPath is the labelled data set, relative to this package.
const dataPath = "../../../../shared/data/injection/jailbreak_train_balanced.csv"

// benignPath are benign documents trained on besides dataPath (see
// benignDocuments).
const benignPath = "testdata/benign.jsonl"

// benignDocuments are passages of technical prose, every one benign:
// sections of the Python language and library reference (PSF licence,
// testdata/LICENSE.python), 200 bytes to 3 KB each. The labelled data's
// benign prompts are everyday chat; without documents a word model reads
// the vocabulary of reference and legal text — must, shall, rules,
// instructions, respond — as an attack's.
func benignDocuments() ([]labelled, error) {
	b, err := os.ReadFile(benignPath)
	if err != nil {
		return nil, err
	}
	var out []labelled
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var d struct{ Text string }
		if err := json.Unmarshal(line, &d); err != nil {
			return nil, err
		}
		out = append(out, labelled{d.Text, false})
	}
	return out, nil
}

// Training settings. The operating point is chosen on out-of-fold scores
// of the tune split, never on the test split.
const (
	trainEpochs = 600
	trainRate   = 2.0
	cvFolds     = 5
	targetFPR   = 0.03  // out-of-fold false-positive rate the bias is set for
	cueL2       = 0.001 // pull of the cue weights towards their priors
)

var l2Grid = []float64{1e-4, 3e-4, 1e-3, 3e-3}

type example struct {
	idx   []int32 // active feature indices: buckets, then numBuckets+cue
	scale float64 // value of each bucket feature: 1/sqrt(active buckets)
	y     float64
}

func exampleOf(text string, positive bool) example {
	var f features
	f.extract(text)
	var ex example
	for k, w := range f.buckets {
		for ; w != 0; w &= w - 1 {
			ex.idx = append(ex.idx, int32(k*64+bits.TrailingZeros64(w)))
		}
	}
	if len(ex.idx) > 0 {
		ex.scale = 1 / math.Sqrt(float64(len(ex.idx)))
	}
	for c := f.cues; c != 0; c &= c - 1 {
		ex.idx = append(ex.idx, int32(numBuckets+bits.TrailingZeros64(c)))
	}
	if positive {
		ex.y = 1
	}
	return ex
}

// value is feature i's value in ex.
func (ex example) value(i int32) float64 {
	if i < numBuckets {
		return ex.scale
	}
	return 1
}

// model is bias + weights over numBuckets+numCues features.
type model struct {
	b float64
	w []float64
}

func (m *model) z(ex example) float64 {
	z := m.b
	for _, i := range ex.idx {
		z += m.w[i] * ex.value(i)
	}
	return z
}

// train fits L2-regularised logistic regression with full-batch Adagrad:
// deterministic for a given input order.
func train(exs []example, l2 float64) *model {
	nf := numBuckets + numCues
	m := &model{w: make([]float64, nf)}
	g := make([]float64, nf)
	acc := make([]float64, nf)
	var accB float64
	for epoch := 0; epoch < trainEpochs; epoch++ {
		clear(g)
		var gb float64
		for _, ex := range exs {
			p := 1 / (1 + math.Exp(-m.z(ex)))
			d := (p - ex.y) / float64(len(exs))
			gb += d
			for _, i := range ex.idx {
				g[i] += d * ex.value(i)
			}
		}
		for i := range g {
			if i < numBuckets {
				g[i] += l2 * m.w[i]
			} else {
				g[i] += cueL2 * (m.w[i] - float64(cues[i-numBuckets].prior))
			}
			acc[i] += g[i] * g[i]
			if acc[i] > 0 {
				m.w[i] -= trainRate * g[i] / math.Sqrt(acc[i])
			}
		}
		accB += gb * gb
		if accB > 0 {
			m.b -= trainRate * gb / math.Sqrt(accB)
		}
	}
	return m
}

type oof struct {
	z   float64
	pos bool
}

// crossValidate scores each fold's rows, and the composites made of them
// (composites), with a model trained on the other folds' rows and their
// composites: no text of a scored example was seen in training.
func crossValidate(rows []labelled, l2 float64) []oof {
	var out []oof
	for f := 0; f < cvFolds; f++ {
		var tr, te []labelled
		for k, r := range rows {
			if k%cvFolds == f {
				te = append(te, r)
			} else {
				tr = append(tr, r)
			}
		}
		m := train(examples(tr), l2)
		for _, ex := range examples(te) {
			out = append(out, oof{m.z(ex), ex.y == 1})
		}
	}
	return out
}

// examples are rows and their composites as training examples.
func examples(rows []labelled) []example {
	var exs []example
	for _, r := range append(rows, composites(rows)...) {
		exs = append(exs, exampleOf(r.prompt, r.positive))
	}
	return exs
}

// composites are longer texts made of rows, so that length alone says
// nothing: in the labelled data a jailbreak is seven times as long as a
// benign prompt at the median (1,553 against 220 bytes), and a word model
// trained on it alone learns that a long text is an attack — a third of
// the 2 KB chunks of Python's and Go's reference manuals scored above the
// threshold. For every benign row, the row followed by other benign rows
// until it is as long as a jailbreak drawn at random (a request that
// pastes documents after its question); for every other jailbreak, benign
// rows with the jailbreak between them (an attack inside a document). The
// same rows give the same composites.
func composites(rows []labelled) []labelled {
	var benign, attack []string
	for _, r := range rows {
		if r.positive {
			attack = append(attack, r.prompt)
		} else {
			benign = append(benign, r.prompt)
		}
	}
	if len(benign) < 2 || len(attack) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(len(rows)), 19))
	var out []labelled
	for _, b := range benign {
		want := len(attack[rng.IntN(len(attack))])
		var sb strings.Builder
		sb.WriteString(b)
		for sb.Len() < want {
			sb.WriteString("\n\n")
			sb.WriteString(benign[rng.IntN(len(benign))])
		}
		out = append(out, labelled{sb.String(), false})
	}
	for k, a := range attack {
		if k%2 == 1 {
			continue
		}
		text := benign[rng.IntN(len(benign))] + "\n\n" + a + "\n\n" + benign[rng.IntN(len(benign))]
		out = append(out, labelled{text, true})
	}
	return out
}

// operatingPoint returns the highest-recall logit cut whose false-positive
// rate on the out-of-fold scores is at most targetFPR.
func operatingPoint(sc []oof) (cut, recall, fpr float64) {
	var neg []float64
	pos := 0
	for _, s := range sc {
		if s.pos {
			pos++
		} else {
			neg = append(neg, s.z)
		}
	}
	sort.Float64s(neg)
	allowed := int(math.Floor(targetFPR * float64(len(neg))))
	cut = neg[len(neg)-1-allowed] + 1e-6
	tp, fp := 0, 0
	for _, s := range sc {
		if s.z >= cut {
			if s.pos {
				tp++
			} else {
				fp++
			}
		}
	}
	return cut, float64(tp) / float64(pos), float64(fp) / float64(len(neg))
}

// TestGenerateWeights retrains the model on the tune split and rewrites
// weights_gen.go when run with -update:
//
//	go test ./internal/classify/injection/ -run TestGenerateWeights -update
func TestGenerateWeights(t *testing.T) {
	if !*update {
		t.Skip("run with -update to retrain")
	}
	fh, err := os.Open(dataPath)
	if err != nil {
		t.Fatalf("open data: %v", err)
	}
	defer fh.Close()
	rows, err := readCSV(fh)
	if err != nil {
		t.Fatal(err)
	}
	var tune []labelled
	for _, r := range rows {
		if InTestSplit(r.prompt) {
			continue // never train on the test split
		}
		tune = append(tune, r)
	}
	docs, err := benignDocuments()
	if err != nil {
		t.Fatal(err)
	}
	tune = append(tune, docs...)
	exs := examples(tune)
	t.Logf("tune split: %d rows, %d examples with their composites", len(tune), len(exs))

	bestL2, bestRecall, bestCut := 0.0, -1.0, 0.0
	for _, l2 := range l2Grid {
		cut, rec, fpr := operatingPoint(crossValidate(tune, l2))
		t.Logf("l2=%g: out-of-fold recall %.3f at FPR %.3f (cut %.3f)", l2, rec, fpr, cut)
		if rec > bestRecall {
			bestL2, bestRecall, bestCut = l2, rec, cut
		}
	}
	m := train(exs, bestL2)
	// Fold the cut into the bias so that Threshold 0.5 (logit 0) is the
	// chosen operating point.
	m.b -= bestCut
	t.Logf("chosen l2=%g, cut %.3f", bestL2, bestCut)

	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by TestGenerateWeights; DO NOT EDIT.\n")
	fmt.Fprintf(&b, "// Trained on the tune split (%d rows) of jailbreak_train_balanced.csv, %d\n", len(tune)-len(docs), len(docs))
	fmt.Fprintf(&b, "// benign documents (%s) and\n", benignPath)
	fmt.Fprintf(&b, "// %d longer texts composed of them (composites),\n", len(exs)-len(tune))
	fmt.Fprintf(&b, "// l2=%g, out-of-fold recall %.3f at a target FPR of %.2f.\n\n", bestL2, bestRecall, targetFPR)
	fmt.Fprintf(&b, "package injection\n\nconst bias = float32(%.4f)\n\n", m.b)
	fmt.Fprintf(&b, "var hashWeights = [numBuckets]float32{")
	for i := 0; i < numBuckets; i++ {
		if i%12 == 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s, ", fmtWeight(m.w[i]))
	}
	b.WriteString("\n}\n\nvar cueWeights = [numCues]float32{\n")
	for c := 0; c < numCues; c++ {
		fmt.Fprintf(&b, "%s, // %s\n", fmtWeight(m.w[numBuckets+c]), cues[c].name)
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatalf("format: %v", err)
	}
	if err := os.WriteFile("weights_gen.go", src, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fmtWeight(w float64) string {
	s := fmt.Sprintf("%.3f", w)
	if s == "-0.000" {
		s = "0.000"
	}
	return s
}
