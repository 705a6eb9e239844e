package pii

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// presidioTypes maps presidio-research entity names to ours. Entity types
// without an entry (PERSON, LOCATION, ADDRESS, DATE_TIME, ...) are not
// detected here and are ignored on both sides.
var presidioTypes = map[string]string{
	"EMAIL_ADDRESS": TypeEmail,
	"PHONE_NUMBER":  TypePhone,
	"CREDIT_CARD":   TypeCreditCard,
	"IBAN_CODE":     TypeIBAN,
	"US_SSN":        TypeUSSSN,
	"IP_ADDRESS":    TypeIPAddress,
}

// Score is precision and recall for one type.
//
// TP counts gold spans found, FN gold spans missed, FP detections that match
// no gold span; Precision is (Detections-FP)/Detections and Recall TP/Gold.
type Score struct {
	Type       string  `json:"type"`
	Gold       int     `json:"gold"`
	Detections int     `json:"detections"`
	TP         int     `json:"tp"`
	FP         int     `json:"fp"`
	FN         int     `json:"fn"`
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
}

// Report is the outcome of EvaluatePresidio.
type Report struct {
	Sentences int `json:"sentences"`
	// Overlap: a detection is a true positive when it overlaps a gold span
	// of the same type. This is the headline figure.
	Overlap []Score `json:"overlap"`
	// Exact: a detection counts only when its span equals a gold span.
	Exact []Score `json:"exact"`
	// ValidGold is Overlap with gold spans whose value fails the type's
	// validator (Luhn, mod-97, SSA rules, IP syntax) left out, together with
	// detections overlapping them. InvalidGold says how many were left out.
	ValidGold   []Score        `json:"valid_gold"`
	InvalidGold map[string]int `json:"invalid_gold"`
	// Unscored counts detections of types the data set does not label
	// (national ids); they are neither true nor false positives here.
	Unscored map[string]int `json:"unscored"`
}

// Score returns the score for type t in one of the variants, and false if
// the type is not scored.
func (r *Report) Score(variant []Score, t string) (Score, bool) {
	for _, s := range variant {
		if s.Type == t {
			return s, true
		}
	}
	return Score{}, false
}

type presidioSample struct {
	FullText string `json:"full_text"`
	Spans    []struct {
		EntityType string `json:"entity_type"`
		Value      string `json:"entity_value"`
		Start      int    `json:"start_position"`
		End        int    `json:"end_position"`
	} `json:"spans"`
}

type goldSpan struct {
	typ        string
	start, end int // bytes
	valid      bool
}

// EvaluatePresidio runs Detect over a presidio-research generated data set
// (a JSON array of {full_text, spans[{entity_type, entity_value,
// start_position, end_position}]}, positions in code points) and scores the
// types both sides know. See Score and Report for the counting rules.
func EvaluatePresidio(r io.Reader) (*Report, error) {
	var samples []presidioSample
	if err := json.NewDecoder(r).Decode(&samples); err != nil {
		return nil, fmt.Errorf("decode presidio data: %w", err)
	}
	scored := scoredTypes()
	idx := make(map[string]int, len(scored))
	for k, t := range scored {
		idx[t] = k
	}
	overlap := make([]Score, len(scored))
	exact := make([]Score, len(scored))
	validGold := make([]Score, len(scored))
	for k, t := range scored {
		overlap[k].Type, exact[k].Type, validGold[k].Type = t, t, t
	}
	rep := &Report{
		Sentences:   len(samples),
		InvalidGold: map[string]int{},
		Unscored:    map[string]int{},
	}
	var found []Match
	var gold []goldSpan
	for n, smp := range samples {
		text := smp.FullText
		gold = gold[:0]
		for _, sp := range smp.Spans {
			t, ok := presidioTypes[sp.EntityType]
			if !ok {
				continue
			}
			start, end, ok := byteOffsets(text, sp.Start, sp.End)
			if !ok {
				return nil, fmt.Errorf("sample %d: span [%d,%d) outside the text", n, sp.Start, sp.End)
			}
			g := goldSpan{typ: t, start: start, end: end, valid: t == TypePhone || valid(t, text[start:end])}
			if !g.valid {
				rep.InvalidGold[t]++
			}
			gold = append(gold, g)
		}
		found = Detect(text, found[:0])
		for _, g := range gold {
			k := idx[g.typ]
			overlap[k].Gold++
			exact[k].Gold++
			hit, hitExact := false, false
			for _, m := range found {
				if m.Type == g.typ && m.Start < g.end && g.start < m.End {
					hit = true
					hitExact = hitExact || m.Start == g.start && m.End == g.end
				}
			}
			count(&overlap[k], hit)
			count(&exact[k], hitExact)
			if g.valid {
				validGold[k].Gold++
				count(&validGold[k], hit)
			}
		}
		for _, m := range found {
			k, ok := idx[m.Type]
			if !ok {
				rep.Unscored[m.Type]++
				continue
			}
			hit, hitExact, hitInvalid := false, false, false
			for _, g := range gold {
				if m.Type == g.typ && m.Start < g.end && g.start < m.End {
					hit = true
					hitExact = hitExact || m.Start == g.start && m.End == g.end
					hitInvalid = hitInvalid || !g.valid
				}
			}
			overlap[k].Detections++
			exact[k].Detections++
			if !hit {
				overlap[k].FP++
			}
			if !hitExact {
				exact[k].FP++
			}
			if !hitInvalid {
				validGold[k].Detections++
				if !hit {
					validGold[k].FP++
				}
			}
		}
	}
	for _, v := range [][]Score{overlap, exact, validGold} {
		for k := range v {
			v[k].finish()
		}
	}
	rep.Overlap, rep.Exact, rep.ValidGold = overlap, exact, validGold
	return rep, nil
}

// scoredTypes is the mapped presidio types in Types order.
func scoredTypes() []string {
	var out []string
	for _, t := range Types {
		for _, m := range presidioTypes {
			if m == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func count(s *Score, hit bool) {
	if hit {
		s.TP++
	} else {
		s.FN++
	}
}

func (s *Score) finish() {
	s.Precision, s.Recall = 1, 1
	if s.Detections > 0 {
		s.Precision = float64(s.Detections-s.FP) / float64(s.Detections)
	}
	if s.Gold > 0 {
		s.Recall = float64(s.TP) / float64(s.Gold)
	}
}

// byteOffsets converts code-point offsets into byte offsets.
func byteOffsets(text string, start, end int) (int, int, bool) {
	if start < 0 || end < start {
		return 0, 0, false
	}
	bs, be := -1, -1
	cp := 0
	for b := range text {
		if cp == start {
			bs = b
		}
		if cp == end {
			be = b
			break
		}
		cp++
	}
	if bs < 0 && start == utf8.RuneCountInString(text) {
		bs = len(text)
	}
	if be < 0 && end == utf8.RuneCountInString(text) {
		be = len(text)
	}
	return bs, be, bs >= 0 && be >= 0
}

// Markdown renders the report as tables, headline first.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d sentences. A detection is a true positive when it overlaps a gold span of the same type.\n\n", r.Sentences)
	table(&b, "Overlap match", r.Overlap)
	table(&b, "Exact span match", r.Exact)
	table(&b, "Overlap match, invalid gold values left out", r.ValidGold)
	b.WriteString("Invalid gold values (fail the type's checksum or rules):")
	writeCounts(&b, r.InvalidGold)
	b.WriteString("Detections of types the data set does not label:")
	writeCounts(&b, r.Unscored)
	return b.String()
}

func table(b *strings.Builder, title string, scores []Score) {
	fmt.Fprintf(b, "**%s**\n\n", title)
	b.WriteString("| type | gold | detections | TP | FP | FN | precision | recall |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range scores {
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d | %.3f | %.3f |\n",
			s.Type, s.Gold, s.Detections, s.TP, s.FP, s.FN, s.Precision, s.Recall)
	}
	b.WriteString("\n")
}

func writeCounts(b *strings.Builder, m map[string]int) {
	some := false
	for _, t := range Types {
		if m[t] > 0 {
			fmt.Fprintf(b, " %s %d;", t, m[t])
			some = true
		}
	}
	if !some {
		b.WriteString(" none")
	}
	b.WriteString("\n\n")
}
