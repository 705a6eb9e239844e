// Package evals reads and writes eval scorecards: per-model, per-task
// quality scores that teams bring from their own benchmarks. The format is
// CSV with a header:
//
//	model,task,score,n,source
//	gpt-4o-mini,code,0.81,1200,internal-codebench-2026-10
//
// model is a catalog id, task one of the classifier's tasks or "default",
// score a mean quality in [0, 1], n the number of graded prompts (0 when
// unknown) and source free text. Later rows win over earlier ones.
package evals

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Score is one scorecard row.
type Score struct {
	Model  string
	Task   string
	Score  float64
	N      int
	Source string
}

// Header is the first line of every scorecard.
var Header = []string{"model", "task", "score", "n", "source"}

// Read parses a scorecard, reporting every bad row at once.
func Read(r io.Reader, name string) ([]Score, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i := range head {
		head[i] = strings.TrimSpace(strings.ToLower(head[i]))
	}
	if !slices.Equal(head, Header) && !slices.Equal(head, Header[:3]) {
		return nil, fmt.Errorf("%s: header must be %q (n and source optional), got %q", name, strings.Join(Header, ","), strings.Join(head, ","))
	}
	var out []Score
	var errs []error
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(rec) < 3 {
			errs = append(errs, fmt.Errorf("%s:%d: needs at least model,task,score", name, line))
			continue
		}
		s := Score{Model: strings.TrimSpace(rec[0]), Task: strings.TrimSpace(rec[1])}
		if s.Score, err = strconv.ParseFloat(strings.TrimSpace(rec[2]), 64); err != nil || !(s.Score >= 0 && s.Score <= 1) { // NaN too
			errs = append(errs, fmt.Errorf("%s:%d: score %q must be a number in [0, 1]", name, line, rec[2]))
			continue
		}
		if len(rec) > 3 && strings.TrimSpace(rec[3]) != "" {
			if s.N, err = strconv.Atoi(strings.TrimSpace(rec[3])); err != nil || s.N < 0 {
				errs = append(errs, fmt.Errorf("%s:%d: n %q must be a count", name, line, rec[3]))
				continue
			}
		}
		if len(rec) > 4 {
			s.Source = strings.TrimSpace(rec[4])
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// ReadFile reads a scorecard file.
func ReadFile(path string) ([]Score, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f, path)
}

// Validate checks rows against the known tasks. Rows of a model the
// catalog does not have are not an error (Unknown lists them; Apply skips
// them): a scorecard is a measurement of its day, and one that named a
// model a catalog update retired refused the whole reload, a price change
// in it too (the catalog probe).
func Validate(rows []Score, tasks []string) error {
	var errs []error
	for _, s := range rows {
		if s.Task != "default" && !slices.Contains(tasks, s.Task) {
			errs = append(errs, fmt.Errorf("model %q: unknown task %q (known: default, %s)", s.Model, s.Task, strings.Join(tasks, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Unknown lists, once each and in order, the models of rows the catalog
// (models) does not have.
func Unknown(rows []Score, models map[string]bool) []string {
	var out []string
	for _, s := range rows {
		if !models[s.Model] && !slices.Contains(out, s.Model) {
			out = append(out, s.Model)
		}
	}
	return out
}

// Merge combines scorecards; for the same model and task the later row wins.
// The result is sorted by model, then task.
func Merge(sets ...[]Score) []Score {
	idx := map[[2]string]int{}
	var out []Score
	for _, set := range sets {
		for _, s := range set {
			k := [2]string{s.Model, s.Task}
			if i, ok := idx[k]; ok {
				out[i] = s
				continue
			}
			idx[k] = len(out)
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Model != out[j].Model {
			return out[i].Model < out[j].Model
		}
		return out[i].Task < out[j].Task
	})
	return out
}

// Write renders a scorecard.
func Write(w io.Writer, rows []Score) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return err
	}
	for _, s := range rows {
		if err := cw.Write([]string{s.Model, s.Task, strconv.FormatFloat(s.Score, 'f', 4, 64), strconv.Itoa(s.N), s.Source}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Apply sets the scores into the models' quality maps (catalog id → task →
// score), every model of the catalog a key of quality; rows of other
// models are skipped.
func Apply(rows []Score, quality map[string]map[string]float64) {
	for _, s := range rows {
		q, known := quality[s.Model]
		if !known {
			continue // a model the catalog no longer has (Unknown)
		}
		if q == nil {
			q = map[string]float64{}
			quality[s.Model] = q
		}
		q[s.Task] = s.Score
	}
}
