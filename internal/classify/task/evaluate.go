package task

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
)

// Example is one labelled prompt of the evaluation set (testdata/prompts.jsonl).
type Example struct {
	Text   string `json:"text"`
	System string `json:"system"`
	Task   string `json:"task"`
	Source string `json:"source"`
	// Kind is the finer kind of a varied-set prompt (writing, roleplay, stem, …; KindTask),
	// empty for the labelled set.
	Kind string `json:"kind,omitempty"`
}

// IsTest reports whether an example belongs to the held-out test split. The split is a pure
// function of the text (FNV-1a 32 mod 10 ≥ 7, about 30 %), so it is stable as the set grows;
// weights are trained on the other (tune) split only.
func (e Example) IsTest() bool {
	h := fnv.New32a()
	_, _ = io.WriteString(h, e.Text)
	return h.Sum32()%10 >= 7
}

// ReadExamples decodes a JSONL labelled set, one Example per line, and checks every label.
func ReadExamples(r io.Reader) ([]Example, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var out []Example
	var errs []error
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var e Example
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if classIndex(e.Task) < 0 {
			errs = append(errs, fmt.Errorf("line %d: unknown task %q", n, e.Task))
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read examples: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func classIndex(task string) int {
	for i, t := range Tasks {
		if t == task {
			return i
		}
	}
	return -1
}

// Report is the measured quality of Classify on a labelled set.
type Report struct {
	Tasks []string    `json:"tasks"`
	Test  SplitReport `json:"test"`
	Tune  SplitReport `json:"tune"` // the training split, for reference only
	// Kinds is the test-split accuracy per kind of prompt (varied set only).
	Kinds []KindScore `json:"kinds,omitempty"`
	// testName names the test split in Markdown ("test", "held-out").
	testName string
}

// SplitReport holds the figures for one split.
type SplitReport struct {
	N        int            `json:"n"`
	Accuracy float64        `json:"accuracy"`
	MacroF1  float64        `json:"macro_f1"`
	Classes  []ClassMetrics `json:"classes"`
	// Confusion[i][j] counts examples of Tasks[i] classified as Tasks[j].
	Confusion [][]int `json:"confusion"`
}

// ClassMetrics holds one class's figures.
type ClassMetrics struct {
	Task      string  `json:"task"`
	Support   int     `json:"support"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Evaluate classifies every example of a JSONL labelled set and reports accuracy,
// per-class precision/recall/F1, macro-F1 and the confusion matrix for the test and tune
// splits.
func Evaluate(r io.Reader) (*Report, error) {
	exs, err := ReadExamples(r)
	if err != nil {
		return nil, err
	}
	return evaluate(exs, "test")
}

func evaluate(exs []Example, testName string) (*Report, error) {
	if len(exs) == 0 {
		return nil, errors.New("evaluate: no examples")
	}
	test, tune := newConfusion(), newConfusion()
	for _, e := range exs {
		got := classIndex(Classify(e.System, e.Text).Task)
		want := classIndex(e.Task)
		if e.IsTest() {
			test[want][got]++
		} else {
			tune[want][got]++
		}
	}
	return &Report{Tasks: append([]string(nil), Tasks...), Test: splitReport(test), Tune: splitReport(tune),
		Kinds: kindScores(exs, true), testName: testName}, nil
}

func newConfusion() [][]int {
	m := make([][]int, numClasses)
	for i := range m {
		m[i] = make([]int, numClasses)
	}
	return m
}

func splitReport(m [][]int) SplitReport {
	r := SplitReport{Confusion: m}
	correct := 0
	for i := range m {
		tp, support, predicted := m[i][i], 0, 0
		for j := range m {
			support += m[i][j]
			predicted += m[j][i]
		}
		r.N += support
		correct += tp
		c := ClassMetrics{Task: Tasks[i], Support: support}
		if predicted > 0 {
			c.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			c.Recall = float64(tp) / float64(support)
		}
		if c.Precision+c.Recall > 0 {
			c.F1 = 2 * c.Precision * c.Recall / (c.Precision + c.Recall)
		}
		r.MacroF1 += c.F1 / numClasses
		r.Classes = append(r.Classes, c)
	}
	if r.N > 0 {
		r.Accuracy = float64(correct) / float64(r.N)
	}
	return r
}

// Markdown renders the report as the tables pasted into docs/classify/task.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	for si, s := range []struct {
		name string
		r    SplitReport
	}{{cmp.Or(r.testName, "test"), r.Test}, {"tune (training split, reference only)", r.Tune}} {
		fmt.Fprintf(&b, "### %s split: n=%d, accuracy %.3f, macro-F1 %.3f\n\n", s.name, s.r.N, s.r.Accuracy, s.r.MacroF1)
		b.WriteString("| task | support | precision | recall | F1 |\n| --- | ---: | ---: | ---: | ---: |\n")
		for _, c := range s.r.Classes {
			fmt.Fprintf(&b, "| %s | %d | %.3f | %.3f | %.3f |\n", c.Task, c.Support, c.Precision, c.Recall, c.F1)
		}
		b.WriteString("\nConfusion (rows: true task, columns: predicted, in the order above):\n\n| true \\ predicted |")
		for _, t := range r.Tasks {
			fmt.Fprintf(&b, " %s |", abbrev(t))
		}
		b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(r.Tasks)) + "\n")
		for i, row := range s.r.Confusion {
			fmt.Fprintf(&b, "| %s |", r.Tasks[i])
			for _, n := range row {
				fmt.Fprintf(&b, " %d |", n)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
		if si == 0 && len(r.Kinds) > 0 {
			b.WriteString("By kind of prompt:\n\n| kind | task | n | correct | accuracy |\n| --- | --- | ---: | ---: | ---: |\n")
			for _, k := range r.Kinds {
				fmt.Fprintf(&b, "| %s | %s | %d | %d | %.3f |\n", k.Kind, k.Task, k.N, k.Correct, k.Accuracy)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func abbrev(t string) string {
	if len(t) > 6 {
		return t[:6]
	}
	return t
}
