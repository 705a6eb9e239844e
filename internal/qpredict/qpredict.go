// Package qpredict predicts, per prompt, each model's chance of answering it well: one
// logistic regression per model over hashed word uni- and bigrams, length buckets and the
// task classifier's signals. It is trained offline (`stellwerk router train`) on graded
// prompts (RouterBench format), shipped as a versioned JSON file, and read at start. Models
// it has no weights for are left to the scorecards and catalog seeds.
//
// Inference is allocation-free and linear in the analysed text (at most headBytes +
// tailBytes of it) plus one multiply-add per active feature and model.
package qpredict

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Kind and Version name the file format; Read rejects any other.
const (
	Kind    = "stellwerk-quality-predictor"
	Version = 1
)

// Feature layout: hashed n-gram buckets, then fixed features.
const (
	defaultBuckets = 1 << 12
	numLenBuckets  = 16
	numConfBuckets = 4
	headBytes      = 512
	tailBytes      = 1536
	maxActive      = 384 // n-gram features per prompt; more are dropped
)

// Tasks is the task order of the classifier one-hot features; it is stored in the file so a
// model stays valid if the classifier's list grows.
type File struct {
	Kind    string `json:"kind"`
	Version int    `json:"version"`
	// Trained describes the data and settings, for people.
	Trained string   `json:"trained"`
	Buckets int      `json:"buckets"`
	Tasks   []string `json:"tasks"`
	Models  []string `json:"models"`
	// Weights is feature-major: Weights[f*len(Models)+m]; features are the buckets, then
	// numLenBuckets length buckets, len(Tasks) task indicators, numConfBuckets confidence
	// buckets and the bias.
	Weights []float32 `json:"weights"`
}

// Model is a loaded predictor.
type Model struct {
	f      File
	index  map[string]int
	task   map[string]int
	nfeat  int
	lenOff int
	tskOff int
	cnfOff int
	biasF  int
}

func numFeatures(buckets, tasks int) int {
	return buckets + numLenBuckets + tasks + numConfBuckets + 1
}

// New checks a file's contents and prepares it for inference.
func New(f File) (*Model, error) {
	var errs []error
	if f.Kind != Kind {
		errs = append(errs, fmt.Errorf("kind is %q, want %q", f.Kind, Kind))
	}
	if f.Version != Version {
		errs = append(errs, fmt.Errorf("version is %d, this stellwerk reads version %d", f.Version, Version))
	}
	if f.Buckets <= 0 || f.Buckets&(f.Buckets-1) != 0 {
		errs = append(errs, fmt.Errorf("buckets is %d, want a power of two", f.Buckets))
	}
	if len(f.Models) == 0 {
		errs = append(errs, errors.New("no models"))
	}
	nf := numFeatures(f.Buckets, len(f.Tasks))
	if len(f.Weights) != nf*len(f.Models) {
		errs = append(errs, fmt.Errorf("%d weights, want %d features × %d models", len(f.Weights), nf, len(f.Models)))
	}
	for _, w := range f.Weights {
		if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
			errs = append(errs, errors.New("a weight is not a finite number"))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("quality predictor: %w", err)
	}
	m := &Model{f: f, index: map[string]int{}, task: map[string]int{}, nfeat: nf}
	for i, id := range f.Models {
		if _, dup := m.index[id]; dup {
			return nil, fmt.Errorf("quality predictor: model %q listed twice", id)
		}
		m.index[id] = i
	}
	for i, t := range f.Tasks {
		m.task[t] = i
	}
	m.lenOff = f.Buckets
	m.tskOff = m.lenOff + numLenBuckets
	m.cnfOff = m.tskOff + len(f.Tasks)
	m.biasF = m.cnfOff + numConfBuckets
	return m, nil
}

// Read loads a predictor file.
func Read(r io.Reader) (*Model, error) {
	var f File
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("quality predictor: %w", err)
	}
	return New(f)
}

// ReadFile loads a predictor file by path.
func ReadFile(path string) (*Model, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	m, err := Read(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Write stores a predictor file.
func (m *Model) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(m.f)
}

// Models lists the models the predictor has weights for.
func (m *Model) Models() []string { return m.f.Models }

// Index is a model's position in Predict's output, or -1 when the predictor has no
// weights for it.
func (m *Model) Index(id string) int {
	if i, ok := m.index[id]; ok {
		return i
	}
	return -1
}

// Trained describes what the predictor was trained on.
func (m *Model) Trained() string { return m.f.Trained }

// Signals are what the predictor reads of a request.
type Signals struct {
	// Text is the user text, plain or still JSON-escaped (a backslash and the character
	// after it separate words either way), so the request path need not unescape it.
	Text           string
	Task           string // the task classifier's answer
	TaskConfidence float64
}

// Features is one prompt's active features; a fixed-size value so that it lives on the
// caller's stack.
type Features struct {
	idx [maxActive + 8]int32
	val [maxActive + 8]float32
	n   int
}

// Extract computes a prompt's features.
func (m *Model) Extract(s Signals, fs *Features) {
	fs.n = 0
	var seen [1 << 12 / 64]uint64 // dedupe on the low 12 bits; a collision only drops a feature
	words := 0
	add := func(h uint32) {
		b := h & uint32(m.f.Buckets-1)
		s := b & (1<<12 - 1)
		if seen[s>>6]&(1<<(s&63)) != 0 || fs.n >= maxActive {
			return
		}
		seen[s>>6] |= 1 << (s & 63)
		fs.idx[fs.n] = int32(b)
		fs.n++
	}
	scan := func(text string) {
		var prev uint32
		havePrev := false
		i := 0
		for i < len(text) {
			for i < len(text) && !isWord(text[i]) {
				if text[i] == '\\' { // a JSON escape (\n, \", \t) separates words
					i++
				}
				i++
			}
			if i >= len(text) {
				break
			}
			h := uint32(2166136261)
			for i < len(text) && isWord(text[i]) {
				c := text[i]
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				h = (h ^ uint32(c)) * 16777619
				i++
			}
			words++
			add(h)
			if havePrev {
				add((prev*31 + h) ^ 0x9e3779b9)
			}
			prev, havePrev = h, true
		}
	}
	t := s.Text
	if len(t) > headBytes+tailBytes {
		scan(t[:headBytes])
		scan(t[len(t)-tailBytes:])
	} else {
		scan(t)
	}
	if fs.n > 0 {
		v := float32(1 / math.Sqrt(float64(fs.n)))
		for k := 0; k < fs.n; k++ {
			fs.val[k] = v
		}
	}
	lb := 0
	for l := len(s.Text); l > 1 && lb < numLenBuckets-1; l >>= 1 {
		lb++
	}
	fs.push(int32(m.lenOff+lb), 1)
	if ti, ok := m.task[s.Task]; ok {
		fs.push(int32(m.tskOff+ti), 1)
	}
	cb := int(s.TaskConfidence * numConfBuckets)
	cb = min(max(cb, 0), numConfBuckets-1)
	fs.push(int32(m.cnfOff+cb), 1)
	fs.push(int32(m.biasF), 1)
}

func (fs *Features) push(i int32, v float32) {
	fs.idx[fs.n], fs.val[fs.n] = i, v
	fs.n++
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// Predict writes each model's probability of a good answer into dst (indexed like Models;
// len(dst) must be len(Models())).
func (m *Model) Predict(fs *Features, dst []float64) {
	nm := len(m.f.Models)
	dst = dst[:nm]
	for i := range dst {
		dst[i] = 0
	}
	for k := 0; k < fs.n; k++ {
		v := float64(fs.val[k])
		row := m.f.Weights[int(fs.idx[k])*nm : int(fs.idx[k])*nm+nm]
		for i, w := range row {
			dst[i] += float64(w) * v
		}
	}
	for i, z := range dst {
		dst[i] = 1 / (1 + math.Exp(-z))
	}
}
