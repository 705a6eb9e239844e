package injection

import (
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// Labels in the evaluation CSV (columns prompt,type).
const (
	LabelJailbreak = "jailbreak"
	LabelBenign    = "benign"
)

// InTestSplit reports whether a prompt belongs to the test split: FNV-1a
// 64 of the prompt text, modulo 10, is 7, 8 or 9 (about 30 %). The split
// depends only on the text, so it is the same on every machine and for
// every ordering of the rows. Training reads only the other 70 %.
func InTestSplit(prompt string) bool {
	h := fnv.New64a()
	_, _ = io.WriteString(h, prompt)
	return h.Sum64()%10 >= 7
}

// Report is the result of EvaluateCSV.
type Report struct {
	Threshold float64 `json:"threshold"`
	Test      Metrics `json:"test"` // rows in the test split only
	All       Metrics `json:"all"`  // every row, including the tune split
}

// Metrics are confusion counts and rates at Threshold, plus a curve over
// other thresholds.
type Metrics struct {
	Rows      int          `json:"rows"`
	TP        int          `json:"tp"`
	FP        int          `json:"fp"`
	FN        int          `json:"fn"`
	TN        int          `json:"tn"`
	Precision float64      `json:"precision"`
	Recall    float64      `json:"recall"`
	FPR       float64      `json:"fpr"`
	Curve     []CurvePoint `json:"curve"`
}

// CurvePoint is recall and false-positive rate at one threshold.
type CurvePoint struct {
	Threshold float64 `json:"threshold"`
	Recall    float64 `json:"recall"`
	FPR       float64 `json:"fpr"`
}

// curveThresholds are the points reported besides Threshold.
var curveThresholds = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

type scored struct {
	score    float64
	positive bool
}

// EvaluateCSV scores every row of a prompt,type CSV and reports the test
// split and all rows.
func EvaluateCSV(r io.Reader) (*Report, error) {
	rows, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	var test, all []scored
	for _, row := range rows {
		s := scored{Score(row.prompt).Score, row.positive}
		all = append(all, s)
		if InTestSplit(row.prompt) {
			test = append(test, s)
		}
	}
	return &Report{Threshold: Threshold, Test: metrics(test), All: metrics(all)}, nil
}

type labelled struct {
	prompt   string
	positive bool
}

func readCSV(r io.Reader) ([]labelled, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	pi, ti := -1, -1
	for k, h := range header {
		switch strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) {
		case "prompt":
			pi = k
		case "type":
			ti = k
		}
	}
	if pi < 0 || ti < 0 {
		return nil, errors.New("csv header needs columns prompt and type")
	}
	var rows []labelled
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read row: %w", err)
		}
		switch rec[ti] {
		case LabelJailbreak:
			rows = append(rows, labelled{rec[pi], true})
		case LabelBenign:
			rows = append(rows, labelled{rec[pi], false})
		default:
			return nil, fmt.Errorf("row %d: unknown type %q", line, rec[ti])
		}
	}
	if len(rows) == 0 {
		return nil, errors.New("csv has no rows")
	}
	return rows, nil
}

func metrics(ss []scored) Metrics {
	m := Metrics{Rows: len(ss)}
	m.TP, m.FP, m.FN, m.TN = confusion(ss, Threshold)
	m.Precision = ratio(m.TP, m.TP+m.FP)
	m.Recall = ratio(m.TP, m.TP+m.FN)
	m.FPR = ratio(m.FP, m.FP+m.TN)
	for _, th := range curveThresholds {
		tp, fp, fn, tn := confusion(ss, th)
		m.Curve = append(m.Curve, CurvePoint{th, ratio(tp, tp+fn), ratio(fp, fp+tn)})
	}
	sort.Slice(m.Curve, func(a, b int) bool { return m.Curve[a].Threshold < m.Curve[b].Threshold })
	return m
}

func confusion(ss []scored, th float64) (tp, fp, fn, tn int) {
	for _, s := range ss {
		switch hit := s.score >= th; {
		case hit && s.positive:
			tp++
		case hit:
			fp++
		case s.positive:
			fn++
		default:
			tn++
		}
	}
	return
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Markdown renders the report as the tables in docs/classify/injection.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Threshold %.2f\n\n", r.Threshold)
	b.WriteString("| split | rows | TP | FP | FN | TN | precision | recall | FPR |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range []struct {
		name string
		m    Metrics
	}{{"test", r.Test}, {"all", r.All}} {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %.3f | %.3f | %.3f |\n",
			s.name, s.m.Rows, s.m.TP, s.m.FP, s.m.FN, s.m.TN, s.m.Precision, s.m.Recall, s.m.FPR)
	}
	b.WriteString("\n| threshold | test recall | test FPR | all recall | all FPR |\n")
	b.WriteString("|---:|---:|---:|---:|---:|\n")
	for k := range r.Test.Curve {
		t, a := r.Test.Curve[k], r.All.Curve[k]
		fmt.Fprintf(&b, "| %.1f | %.3f | %.3f | %.3f | %.3f |\n", t.Threshold, t.Recall, t.FPR, a.Recall, a.FPR)
	}
	return b.String()
}

// DocumentsReport is EvaluateDocuments' result: how often benign
// documents, cut into pieces of one request's size, are taken for an
// attack.
type DocumentsReport struct {
	Threshold float64        `json:"threshold"`
	Chunk     int            `json:"chunk_bytes"`
	Documents []DocumentRate `json:"documents"`
	All       DocumentRate   `json:"all"`
}

// DocumentRate is one document's (or all documents') false positives.
type DocumentRate struct {
	Name    string  `json:"name"`
	Chunks  int     `json:"chunks"`
	Flagged int     `json:"flagged"` // score >= Threshold
	FPR     float64 `json:"fpr"`
	// Near counts the chunks within 0.1 below the threshold: how much
	// room there is.
	Near int `json:"near"`
}

// EvaluateDocuments scores texts known to be benign (reference manuals,
// licences, your own documents), cut into pieces of about chunk bytes at
// line or word boundaries, as a request pasting them would be scored.
// Every flagged piece is a false positive.
func EvaluateDocuments(names, texts []string, chunk int) *DocumentsReport {
	r := &DocumentsReport{Threshold: Threshold, Chunk: chunk, All: DocumentRate{Name: "all"}}
	for k, text := range texts {
		d := DocumentRate{Name: names[k]}
		for _, piece := range Chunks(text, chunk) {
			s := Score(piece).Score
			d.Chunks++
			switch {
			case s >= Threshold:
				d.Flagged++
			case s >= Threshold-0.1:
				d.Near++
			}
		}
		d.FPR = ratio(d.Flagged, d.Chunks)
		r.All.Chunks += d.Chunks
		r.All.Flagged += d.Flagged
		r.All.Near += d.Near
		r.Documents = append(r.Documents, d)
	}
	r.All.FPR = ratio(r.All.Flagged, r.All.Chunks)
	return r
}

// Chunks cuts text into pieces of about size bytes, each ending at a line
// break or a space where there is one in its last quarter, never inside a
// UTF-8 sequence; a last piece under a quarter of size joins the one
// before.
func Chunks(text string, size int) []string {
	var out []string
	for len(text) > 0 {
		if len(text) <= size+size/4 {
			out = append(out, text)
			break
		}
		cut := size
		if i := strings.LastIndexByte(text[size*3/4:size], '\n'); i >= 0 {
			cut = size*3/4 + i + 1
		} else if i := strings.LastIndexByte(text[size*3/4:size], ' '); i >= 0 {
			cut = size*3/4 + i + 1
		}
		for cut < len(text) && !utf8.RuneStart(text[cut]) {
			cut++
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	return out
}

// Markdown renders the report as the table in docs/classify/injection.md.
func (r *DocumentsReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Threshold %.2f, pieces of about %d bytes\n\n", r.Threshold, r.Chunk)
	b.WriteString("| document | pieces | flagged | false-positive rate | within 0.1 below |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, d := range append(r.Documents, r.All) {
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f | %d |\n", d.Name, d.Chunks, d.Flagged, d.FPR, d.Near)
	}
	return b.String()
}
