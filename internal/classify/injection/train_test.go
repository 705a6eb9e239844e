package injection

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/classify/task"
)

var update = flag.Bool("update", false, "retrain on the tune split and rewrite weights_gen.go")

// dataPath is the labelled data set, relative to this package.
const dataPath = "../../../../shared/data/injection/jailbreak_train_balanced.csv"

// labelledRows reads the labelled data set at dataPath.
func labelledRows() ([]labelled, error) {
	f, err := os.Open(dataPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCSV(f)
}

// benignPath are benign documents trained on besides dataPath (see
// benignDocuments).
const benignPath = "testdata/benign.jsonl"

// benignDocuments are passages of technical prose, every one benign:
// sections of the Python language and library reference (PSF licence,
// testdata/LICENSE.python), 200 bytes to 3 KB each. The labelled data's
// benign prompts are everyday chat; without documents a word model reads
// the vocabulary of reference and legal text — must, shall, rules,
// instructions, respond — as an attack's.
func benignDocuments() ([]row, error) {
	b, err := os.ReadFile(benignPath)
	if err != nil {
		return nil, err
	}
	var out []row
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var d struct{ Text string }
		if err := json.Unmarshal(line, &d); err != nil {
			return nil, err
		}
		out = append(out, row{labelled{d.Text, false}, kindDocument})
	}
	return out, nil
}

// kind says where a training text comes from. The operating point holds
// the out-of-fold false-positive rate of each kind of benign text to the
// target on its own: pooled, the many documents, most of them far below
// the cut, would let it flag more of the labelled data's everyday prompts.
type kind uint8

const (
	kindPrompt    kind = iota // a row of the labelled data
	kindRequest               // an everyday request (everydayRequests)
	kindDocument              // a benign document (benignDocuments)
	kindComposite             // a text composed of rows (composites)
	numKinds
)

var kindNames = [numKinds]string{"prompts", "requests", "documents", "composites"}

// everydayRequests are the task classifier's corpora — hand-written
// requests of every kind (questions, writing, role-play, chat, code,
// translation; testdata/varied.txt and the authored rows of prompts.jsonl)
// and RouterBench's benchmark questions — every one benign: its tune split
// (test false) to train on, or its test split to measure on. The labelled
// data's benign prompts are mostly persona set-ups; these are what users
// send, in the first person ("how do I …", "I feel like …") that the
// attacks are written in too. Rows taken from llm-warden, the labelled
// data's own source, are left out, so that no text is in both.
func everydayRequests(test bool) ([]row, error) {
	var all []task.Example
	for _, set := range []struct {
		path string
		read func(io.Reader) ([]task.Example, error)
	}{{"../task/testdata/prompts.jsonl", task.ReadExamples}, {"../task/testdata/varied.txt", task.ReadVaried}} {
		f, err := os.Open(set.path)
		if err != nil {
			return nil, err
		}
		es, err := set.read(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, es...)
	}
	var out []row
	for _, e := range all {
		if e.IsTest() == test && !strings.HasPrefix(e.Source, "llm-warden") {
			out = append(out, row{labelled{e.Text, false}, kindRequest})
		}
	}
	return out, nil
}

// instructionsPath are benign requests written for stellwerk with the words
// the labelled data shows only in attacks (see the file's header).
const instructionsPath = "testdata/instructions.txt"

// instructionRequests are instructionsPath's requests of the test split
// (test) or of the tune split, as everyday requests.
func instructionRequests(test bool) ([]row, error) {
	b, err := os.ReadFile(instructionsPath)
	if err != nil {
		return nil, err
	}
	var out []row
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if InTestSplit(line) == test {
			out = append(out, row{labelled{line, false}, kindRequest})
		}
	}
	return out, nil
}

type row struct {
	labelled
	kind kind
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

var l2Grid = []float64{1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3}

type example struct {
	idx   []int32 // active feature indices: buckets, then numBuckets+cue
	scale float64 // value of each bucket feature: 1/sqrt(active buckets)
	y     float64
	kind  kind
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
	z    float64
	pos  bool
	kind kind
}

// crossValidate scores each fold's rows, and the composites made of them
// (composites), with a model trained on the other folds' rows and their
// composites: no text of a scored example was seen in training.
func crossValidate(rows []row, l2 float64) []oof {
	var out []oof
	for f := 0; f < cvFolds; f++ {
		var tr, te []row
		for k, r := range rows {
			if k%cvFolds == f {
				te = append(te, r)
			} else {
				tr = append(tr, r)
			}
		}
		m := train(examples(tr), l2)
		for _, ex := range examples(te) {
			out = append(out, oof{m.z(ex), ex.y == 1, ex.kind})
		}
	}
	return out
}

// examples are rows and their composites as training examples.
func examples(rows []row) []example {
	var exs []example
	texts := make([]labelled, len(rows))
	for k, r := range rows {
		texts[k] = r.labelled
		ex := exampleOf(r.prompt, r.positive)
		ex.kind = r.kind
		exs = append(exs, ex)
	}
	for _, r := range composites(texts) {
		ex := exampleOf(r.prompt, r.positive)
		ex.kind = kindComposite
		exs = append(exs, ex)
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
// rate on the out-of-fold scores is at most targetFPR for every kind of
// benign text, and that rate per kind.
func operatingPoint(sc []oof) (cut, recall float64, fpr [numKinds]float64) {
	var neg [numKinds][]float64
	pos := 0
	for _, s := range sc {
		if s.pos {
			pos++
		} else {
			neg[s.kind] = append(neg[s.kind], s.z)
		}
	}
	cut = math.Inf(-1)
	for _, n := range neg {
		if len(n) == 0 {
			continue
		}
		sort.Float64s(n)
		allowed := int(math.Floor(targetFPR * float64(len(n))))
		cut = max(cut, n[len(n)-1-allowed]+1e-6)
	}
	tp := 0
	var fp [numKinds]int
	for _, s := range sc {
		if s.z >= cut {
			if s.pos {
				tp++
			} else {
				fp[s.kind]++
			}
		}
	}
	for k := range fpr {
		if len(neg[k]) > 0 {
			fpr[k] = float64(fp[k]) / float64(len(neg[k]))
		}
	}
	return cut, float64(tp) / float64(pos), fpr
}

// TestGenerateWeights retrains the model on the tune split and rewrites
// weights_gen.go when run with -update:
//
//	go test ./internal/classify/injection/ -run TestGenerateWeights -update
func TestGenerateWeights(t *testing.T) {
	if !*update {
		t.Skip("run with -update to retrain")
	}
	rows, err := labelledRows()
	if err != nil {
		t.Fatalf("labelled data: %v", err)
	}
	var tune []row
	for _, r := range rows {
		if InTestSplit(r.prompt) {
			continue // never train on the test split
		}
		tune = append(tune, row{r, kindPrompt})
	}
	labelledRows := len(tune)
	requests, err := everydayRequests(false)
	if err != nil {
		t.Fatal(err)
	}
	instructions, err := instructionRequests(false)
	if err != nil {
		t.Fatal(err)
	}
	requests = append(requests, instructions...)
	docs, err := benignDocuments()
	if err != nil {
		t.Fatal(err)
	}
	tune = append(append(tune, requests...), docs...)
	exs := examples(tune)
	t.Logf("tune split: %d rows, %d examples with their composites", len(tune), len(exs))

	bestL2, bestRecall, bestCut := 0.0, -1.0, 0.0
	for _, l2 := range l2Grid {
		cut, rec, fpr := operatingPoint(crossValidate(tune, l2))
		t.Logf("l2=%g: out-of-fold recall %.3f at FPR %.3f, %.3f, %.3f, %.3f on %s (cut %.3f)",
			l2, rec, fpr[0], fpr[1], fpr[2], fpr[3], strings.Join(kindNames[:], ", "), cut)
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
	fmt.Fprintf(&b, "// Trained on the tune split (%d rows) of jailbreak_train_balanced.csv,\n", labelledRows)
	fmt.Fprintf(&b, "// %d everyday requests (the task classifier's corpora and %s, tune split),\n", len(requests), instructionsPath)
	fmt.Fprintf(&b, "// %d benign documents (%s) and\n", len(docs), benignPath)
	fmt.Fprintf(&b, "// %d longer texts composed of them (composites),\n", len(exs)-len(tune))
	fmt.Fprintf(&b, "// l2=%g, out-of-fold recall %.3f at a target FPR of %.2f on each of %s.\n\n", bestL2, bestRecall, targetFPR, strings.Join(kindNames[:], ", "))
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
