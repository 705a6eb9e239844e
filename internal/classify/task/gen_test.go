package task

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
)

var (
	update = flag.Bool("update", false, "retrain the model on the tune split and rewrite weights_gen.go")
	cv     = flag.Bool("cv", false, "report 5-fold cross-validation on the tune split for a few L2 strengths")
)

// Training hyper-parameters; chosen by -cv on the tune split, never on the test split.
const (
	trainEpochs = 30
	trainRate   = 0.3
	trainL2     = 1e-4
	priorL2     = 1e-3
)

type sparse struct {
	idx []int
	val []float64
}

func vectorize(text string) sparse {
	var f features
	f.extract(text, userHead, userTail)
	var v sparse
	if f.active > 0 {
		s := invSqrt(f.active)
		for wi, word := range f.set {
			for b := 0; b < 64; b++ {
				if word&(1<<b) != 0 {
					v.idx = append(v.idx, wi*64+b)
					v.val = append(v.val, s)
				}
			}
		}
	}
	for k, x := range f.cues {
		if x != 0 {
			v.idx = append(v.idx, numBuckets+k)
			v.val = append(v.val, float64(x))
		}
	}
	v.idx = append(v.idx, biasIndex)
	v.val = append(v.val, 1)
	return v
}

// cuePriors is the hand-written half of the hybrid: what each cue is expected to mean,
// before any data. Training starts from these weights and is pulled back toward them
// (priorL2), so that a cue seen in only a few tune examples keeps its intended meaning.
// Instruction verbs at either end of the text weigh more than content cues, which makes
// "summarize this code" a summarization and "translate this docstring" a translation.
var cuePriors = map[int]map[string]float64{
	gCodeVerb: {Code: 1}, numGroups + gCodeVerb: {Code: 0.5},
	gCodeWord: {Code: 0.5},
	gMathVerb: {Math: 1}, numGroups + gMathVerb: {Math: 0.5},
	gTranslate: {Translation: 1.5}, numGroups + gTranslate: {Translation: 1.5},
	gLanguage:  {Translation: 0.5},
	gSummarize: {Summarization: 1.5}, numGroups + gSummarize: {Summarization: 1.5},
	gExtract: {Extraction: 1}, numGroups + gExtract: {Extraction: 1.5},
	gFormat:   {Extraction: 0.5},
	gClassify: {Classification: 1}, numGroups + gClassify: {Classification: 1.5},
	gLabel:             {Classification: 0.5},
	numGroups + gWrite: {CreativeWriting: 0.5},
	gCreative:          {CreativeWriting: 1}, numGroups + gCreative: {CreativeWriting: 1},
	gReasoning: {Reasoning: 1}, numGroups + gReasoning: {Reasoning: 1},
	numGroups + gQuestion: {KnowledgeQA: 0.5},
	gGreeting:             {Chat: 1}, numGroups + gGreeting: {Chat: 1},
	gRoleplay: {Chat: 1}, numGroups + gRoleplay: {Chat: 0.5},
	gPersonal:    {Chat: 0.5},
	gAdvice:      {Chat: 0.5},
	cCodeBlock:   {Code: 1.5},
	cCodeSyntax:  {Code: 1},
	cIndent:      {Code: 0.5},
	cMathOps:     {Math: 1},
	cMathSymbols: {Math: 1},
	cBlank:       {Reasoning: 1},
	cShort:       {Chat: 0.3},
}

// usePriors is switched off only by TestCrossValidate, to measure what the priors add.
var usePriors = true

func priorWeights() []float64 {
	w := make([]float64, numFeatures*numClasses)
	for k, m := range cuePriors {
		for task, v := range m {
			w[(numBuckets+k)*numClasses+classIndex(task)] = v
		}
	}
	return w
}

// train fits a multinomial logistic regression with AdaGrad and L2 (toward cuePriors for
// cue weights, toward 0 for n-gram weights), visiting examples in a fixed pseudo-random
// order so that the output is reproducible.
func train(xs []sparse, ys []int, epochs int, rate, l2 float64) []float64 {
	prior := make([]float64, numFeatures*numClasses)
	if usePriors {
		prior = priorWeights()
	}
	w := slices.Clone(prior)
	g2 := make([]float64, len(w))
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	rng := uint64(42)
	var p [numClasses]float64
	for ep := 0; ep < epochs; ep++ {
		for i := len(order) - 1; i > 0; i-- {
			rng = rng*6364136223846793005 + 1442695040888963407
			j := int((rng >> 33) % uint64(i+1))
			order[i], order[j] = order[j], order[i]
		}
		for _, n := range order {
			x := xs[n]
			for c := range p {
				p[c] = 0
			}
			for k, f := range x.idx {
				for c := 0; c < numClasses; c++ {
					p[c] += w[f*numClasses+c] * x.val[k]
				}
			}
			softmax(p[:])
			for k, f := range x.idx {
				for c := 0; c < numClasses; c++ {
					y := 0.0
					if c == ys[n] {
						y = 1
					}
					i := f*numClasses + c
					reg := l2 * w[i]
					if f >= numBuckets {
						reg = priorL2 * (w[i] - prior[i])
					}
					g := (p[c]-y)*x.val[k] + reg
					g2[i] += g * g
					w[i] -= rate * g / (math.Sqrt(g2[i]) + 1e-8)
				}
			}
		}
	}
	return w
}

func softmax(p []float64) {
	m := p[0]
	for _, v := range p {
		m = max(m, v)
	}
	var s float64
	for i := range p {
		p[i] = math.Exp(p[i] - m)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
}

func predict(w []float64, x sparse) int {
	var p [numClasses]float64
	for k, f := range x.idx {
		for c := 0; c < numClasses; c++ {
			p[c] += w[f*numClasses+c] * x.val[k]
		}
	}
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return best
}

// tuneSet is the training data: the tune split of the labelled set (testdata/prompts.jsonl)
// and of the varied set (testdata/varied.txt). The test splits of both are never read here.
func tuneSet(t *testing.T) ([]sparse, []int) {
	t.Helper()
	xs, ys, _ := tuneSetKinds(t)
	return xs, ys
}

// tuneSetKinds is tuneSet, also saying which examples come from the varied set.
func tuneSetKinds(t *testing.T) (xs []sparse, ys []int, varied []bool) {
	t.Helper()
	for _, e := range append(readSet(t, "testdata/prompts.jsonl", ReadExamples), readSet(t, "testdata/varied.txt", ReadVaried)...) {
		if !e.IsTest() {
			xs = append(xs, vectorize(e.Text))
			ys = append(ys, classIndex(e.Task))
			varied = append(varied, e.Kind != "")
		}
	}
	return xs, ys, varied
}

func readSet(t *testing.T, path string, read func(io.Reader) ([]Example, error)) []Example {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exs, err := read(f)
	if err != nil {
		t.Fatal(err)
	}
	return exs
}

func TestCrossValidate(t *testing.T) {
	if !*cv {
		t.Skip("run with -cv")
	}
	xs, ys, varied := tuneSetKinds(t)
	defer func() { usePriors = true }()
	for _, up := range []bool{false, true} {
		usePriors = up
		for _, l2 := range []float64{1e-4, 1e-3} {
			for _, epochs := range []int{30, 60} {
				correct, correctVaried, nVaried := 0, 0, 0
				for fold := 0; fold < 5; fold++ {
					var trX, vaX []sparse
					var trY, vaY, vaI []int
					for i := range xs {
						if i%5 == fold {
							vaX, vaY, vaI = append(vaX, xs[i]), append(vaY, ys[i]), append(vaI, i)
						} else {
							trX, trY = append(trX, xs[i]), append(trY, ys[i])
						}
					}
					w := train(trX, trY, epochs, trainRate, l2)
					for k := range vaX {
						ok := predict(w, vaX[k]) == vaY[k]
						if ok {
							correct++
						}
						if varied[vaI[k]] {
							nVaried++
							if ok {
								correctVaried++
							}
						}
					}
				}
				t.Logf("priors=%v l2=%g epochs=%d cv-accuracy=%.3f (varied prompts %.3f)", up, l2, epochs,
					float64(correct)/float64(len(xs)), float64(correctVaried)/float64(nVaried))
			}
		}
	}
}

// TestGenerateWeights retrains the model on the tune split and rewrites weights_gen.go.
func TestGenerateWeights(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate weights_gen.go")
	}
	xs, ys := tuneSet(t)
	w := train(xs, ys, trainEpochs, trainRate, trainL2)
	var b bytes.Buffer
	b.WriteString("// Code generated by gen_test.go (go test -run TestGenerateWeights -update); DO NOT EDIT.\n\n")
	b.WriteString("package task\n\n")
	// n-gram weights: int16 with one scale; cue and bias weights stay float32.
	var wmax float64
	for _, v := range w[:numBuckets*numClasses] {
		wmax = max(wmax, math.Abs(v))
	}
	scale := wmax / 32767
	fmt.Fprintf(&b, "// Trained on %d tune examples: %d epochs, AdaGrad rate %g, L2 %g, prior L2 %g.\n\n", len(xs), trainEpochs, trainRate, trainL2, priorL2)
	fmt.Fprintf(&b, "// bucketScale converts bucketWeights to logit units.\nconst bucketScale = %s\n\n", strconv.FormatFloat(scale, 'g', -1, 64))
	b.WriteString("// bucketWeights holds the hashed n-gram weights, feature-major.\n")
	b.WriteString("var bucketWeights = [numBuckets * numClasses]int16{\n")
	for i := 0; i < numBuckets*numClasses; i += numClasses {
		for c := 0; c < numClasses; c++ {
			b.WriteString(strconv.Itoa(int(math.Round(w[i+c] / scale))))
			b.WriteString(", ")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n\n// cueWeights holds the cue weights, then the bias, feature-major.\n")
	b.WriteString("var cueWeights = [(numCues + 1) * numClasses]float32{\n")
	for i := numBuckets * numClasses; i < len(w); i += numClasses {
		for c := 0; c < numClasses; c++ {
			b.WriteString(strconv.FormatFloat(float64(float32(w[i+c])), 'g', 5, 32))
			b.WriteString(", ")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("weights_gen.go", src, 0o644); err != nil {
		t.Fatal(err)
	}
}
