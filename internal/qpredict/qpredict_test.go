package qpredict

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func toyExamples() []Example {
	var ex []Example
	for i := 0; i < 300; i++ {
		text, good := fmt.Sprintf("Please sort these records, batch %x.", i*7919), 1.0
		if i%3 == 0 {
			text, good = fmt.Sprintf("Prove the theorem about primes, case %x.", i*7919), 0
		}
		ex = append(ex, Example{Signals: Signals{Text: text, Task: "code", TaskConfidence: 0.8}, Scores: map[string]float64{"small": good, "large": 1}})
	}
	return ex
}

func TestTrainLearnsPerPromptQuality(t *testing.T) {
	tests := map[string]Options{
		"one regression per model":          {},
		"rank-1 shared n-gram weights":      {Rank: 1, FixedL2: 1e-4},
		"rank-2 shared n-gram weights":      {Rank: 2, FixedL2: 1e-4},
		"strong n-gram L2, free base rates": {L2: 3e-2, FixedL2: 1e-4},
	}
	for name, opt := range tests {
		t.Run(name, func(t *testing.T) {
			opt.Tasks = []string{"code", "math"}
			m, err := Train(toyExamples(), []string{"small", "large"}, opt)
			if err != nil {
				t.Fatal(err)
			}
			p := func(text string) []float64 {
				var fs Features
				m.Extract(Signals{Text: text, Task: "code", TaskConfidence: 0.8}, &fs)
				out := make([]float64, 2)
				m.Predict(&fs, out)
				return out
			}
			easy, hard := p("Please sort these records, batch ffff."), p("Prove the theorem about primes, case ffff.")
			small, large := m.Index("small"), m.Index("large")
			if easy[small] < 0.8 || hard[small] > 0.2 {
				t.Errorf("small model: P(good | sort) = %.2f, P(good | prove) = %.2f; want high and low", easy[small], hard[small])
			}
			if easy[large] < 0.8 || hard[large] < 0.8 {
				t.Errorf("large model: P(good | sort) = %.2f, P(good | prove) = %.2f; want both high", easy[large], hard[large])
			}
			if m.Index("unknown") != -1 {
				t.Error("a model without weights has an index")
			}
		})
	}
}

func TestTrainIsDeterministicAndRoundTrips(t *testing.T) {
	a, _ := Train(toyExamples(), []string{"small", "large"}, Options{Tasks: []string{"code"}, Trained: "toy"})
	b, _ := Train(toyExamples(), []string{"small", "large"}, Options{Tasks: []string{"code"}, Trained: "toy"})
	var ba, bb bytes.Buffer
	if err := a.Write(&ba); err != nil {
		t.Fatal(err)
	}
	_ = b.Write(&bb)
	if !bytes.Equal(ba.Bytes(), bb.Bytes()) {
		t.Fatal("the same data gave two different files")
	}
	c, err := Read(bytes.NewReader(ba.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Trained() != "toy" || len(c.Models()) != 2 {
		t.Errorf("read back %q, %v", c.Trained(), c.Models())
	}
}

func TestReadRejectsWhatItCannotUse(t *testing.T) {
	m, _ := Train(toyExamples(), []string{"small"}, Options{})
	var ok bytes.Buffer
	_ = m.Write(&ok)
	edit := func(f func(map[string]any)) string {
		var v map[string]any
		_ = json.Unmarshal(ok.Bytes(), &v)
		f(v)
		b, _ := json.Marshal(v)
		return string(b)
	}
	for name, c := range map[string]struct{ file, want string }{
		"newer version": {edit(func(v map[string]any) { v["version"] = 2 }), "this stellwerk reads version 1"},
		"other kind":    {edit(func(v map[string]any) { v["kind"] = "scorecard" }), "kind"},
		"short weights": {edit(func(v map[string]any) { v["weights"] = []float64{1} }), "weights"},
		"unknown field": {edit(func(v map[string]any) { v["bias"] = 1 }), "unknown field"},
		"bad buckets":   {edit(func(v map[string]any) { v["buckets"] = 1000 }), "power of two"},
	} {
		_, err := Read(strings.NewReader(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
	}
}

func TestExtractIsBounded(t *testing.T) {
	m, _ := Train(toyExamples(), []string{"small"}, Options{})
	var fs Features
	m.Extract(Signals{Text: strings.Repeat("word", 1<<20)}, &fs)
	m.Extract(Signals{Text: strings.Repeat("a b c d e f g h ", 1<<16)}, &fs)
	if fs.n > maxActive+4 {
		t.Errorf("%d active features, want at most %d", fs.n, maxActive+4)
	}
	// A JSON-escaped text gives the same words as the plain one.
	var plain, escaped Features
	m.Extract(Signals{Text: "line one\nline \"two\""}, &plain)
	m.Extract(Signals{Text: `line one\nline \"two\"`}, &escaped)
	if plain.n != escaped.n || plain.idx != escaped.idx {
		t.Errorf("escaped text has other features than the plain one")
	}
}

func BenchmarkExtractPredict(b *testing.B) {
	m, _ := Train(toyExamples(), []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}, Options{})
	s := Signals{Text: strings.Repeat("The following are multiple choice questions about science. ", 80), Task: "knowledge_qa", TaskConfidence: 0.7}
	out := make([]float64, 11)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var fs Features
		m.Extract(s, &fs)
		m.Predict(&fs, out)
	}
}

// TestFixedL2KeepsTaskBaseRates: under a strong n-gram L2, a small FixedL2 still lets the task
// weights carry each task's base rate (small answers 90% of code prompts, 10% of math ones),
// where one strength for every weight shrinks both towards the overall mean.
func TestFixedL2KeepsTaskBaseRates(t *testing.T) {
	var ex []Example
	for i := 0; i < 400; i++ {
		tk, good := "code", 0.0
		if i%2 == 0 {
			tk = "math"
		}
		if (tk == "code") == (i%20 != 0 && i%20 != 1) {
			good = 1
		}
		ex = append(ex, Example{Signals: Signals{Text: fmt.Sprintf("item %x of the batch", i*7919), Task: tk, TaskConfidence: 0.9},
			Scores: map[string]float64{"small": good}})
	}
	spread := func(o Options) (code, math float64) {
		o.Tasks = []string{"code", "math"}
		m, err := Train(ex, []string{"small"}, o)
		if err != nil {
			t.Fatal(err)
		}
		p := func(tk string) float64 {
			var fs Features
			m.Extract(Signals{Text: "item ffff of the batch", Task: tk, TaskConfidence: 0.9}, &fs)
			out := make([]float64, 1)
			m.Predict(&fs, out)
			return out[0]
		}
		return p("code"), p("math")
	}
	tests := map[string]struct {
		opt                     Options
		codeAtLeast, mathAtMost float64
	}{
		"one strength shrinks the task weights": {Options{L2: 1}, 0, 1},
		"nearly free task weights":              {Options{L2: 1, FixedL2: 1e-4}, 0.8, 0.2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, math := spread(tc.opt)
			if code < tc.codeAtLeast || math > tc.mathAtMost {
				t.Errorf("P(good | code) = %.2f, P(good | math) = %.2f; want ≥ %.2f and ≤ %.2f", code, math, tc.codeAtLeast, tc.mathAtMost)
			}
			if tc.opt.FixedL2 == 0 && code-math > 0.6 {
				t.Errorf("P(good | code) − P(good | math) = %.2f with one strength: the task weights were not shrunk", code-math)
			}
		})
	}
}
