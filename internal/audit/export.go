package audit

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Line is one line of an export (and of a spool file): a record, a link
// (an entry outside the export's selection, shown by its leaf so the chain
// still verifies), or a checkpoint. Body is the record's JSON as a string:
// the exact bytes its body_sha256 covers.
type Line struct {
	Type       string `json:"type"` // record, link, checkpoint
	Writer     string `json:"writer"`
	Seq        uint64 `json:"seq"`
	Time       string `json:"time,omitempty"` // RFC 3339, microseconds
	Kind       string `json:"kind,omitempty"`
	Workspace  string `json:"workspace,omitempty"`
	ID         string `json:"id,omitempty"`
	Prev       string `json:"prev,omitempty"`
	BodySHA256 string `json:"body_sha256,omitempty"`
	Leaf       string `json:"leaf,omitempty"`
	Hash       string `json:"hash,omitempty"`
	Body       string `json:"body,omitempty"`
	Pruned     bool   `json:"pruned,omitempty"`
	// Checkpoint members.
	Reason    string `json:"reason,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	Signature string `json:"signature,omitempty"` // base64
	Digest    string `json:"digest,omitempty"`
}

// Line types.
const (
	LineRecord     = "record"
	LineLink       = "link"
	LineCheckpoint = "checkpoint"
)

const lineTime = "2006-01-02T15:04:05.000000Z07:00"

// EntryLine renders an entry; link renders it as a link line.
func EntryLine(e *Entry, link bool) Line {
	if link || e.LinkOnly {
		leaf := e.Leaf
		if !e.LinkOnly {
			leaf = e.ComputeLeaf()
		}
		return Line{Type: LineLink, Writer: e.Writer, Seq: e.Seq, Prev: e.Prev, Leaf: leaf, Hash: e.Hash}
	}
	l := Line{Type: LineRecord, Writer: e.Writer, Seq: e.Seq, Time: e.Time.UTC().Format(lineTime), Kind: e.Kind,
		Workspace: e.Workspace, ID: e.ID, Prev: e.Prev, BodySHA256: e.BodySHA256, Hash: e.Hash, Pruned: e.Pruned}
	if !e.Pruned {
		l.Body = string(e.Body)
	}
	return l
}

// CheckpointLine renders a checkpoint.
func CheckpointLine(c *Checkpoint) Line {
	return Line{Type: LineCheckpoint, Writer: c.Writer, Seq: c.Seq, Time: c.Time.UTC().Format(lineTime), Hash: c.Hash, Prev: c.Prev,
		Reason: c.Reason, KeyID: c.KeyID, Signature: base64.StdEncoding.EncodeToString(c.Signature), Digest: c.Digest}
}

// Entry reads a record or link line back.
func (l *Line) Entry() (Entry, error) {
	e := Entry{Writer: l.Writer, Seq: l.Seq, Prev: l.Prev, Hash: l.Hash}
	if l.Type == LineLink {
		e.Leaf, e.LinkOnly = l.Leaf, true
		return e, nil
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return e, fmt.Errorf("%s seq %d: bad time %q", l.Writer, l.Seq, l.Time)
	}
	e.Time, e.Kind, e.Workspace, e.ID, e.BodySHA256, e.Pruned = t.UTC(), l.Kind, l.Workspace, l.ID, l.BodySHA256, l.Pruned
	if !l.Pruned {
		e.Body = []byte(l.Body)
	}
	return e, nil
}

// Checkpoint reads a checkpoint line back.
func (l *Line) Checkpoint() (Checkpoint, error) {
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint %s seq %d: bad time %q", l.Writer, l.Seq, l.Time)
	}
	sig, _ := base64.StdEncoding.DecodeString(l.Signature) // a damaged one fails verification
	return Checkpoint{Writer: l.Writer, Seq: l.Seq, Hash: l.Hash, Prev: l.Prev, Time: t.UTC(), Reason: l.Reason, KeyID: l.KeyID,
		Signature: sig, Digest: l.Digest}, nil
}

// ExportFilter selects what an export holds.
type ExportFilter struct {
	From, To  time.Time
	Workspace string
	Writer    string
	// Key selects the records whose principal.key_id it is, read from the
	// records' bytes (RecordKey), not the store's column: what the export
	// holds is what its hashes cover. A pruned record has no key to read
	// and is a link.
	Key string
}

// Export writes the records of f, as JSON lines or CSV, with what an
// auditor needs to verify them offline: per writer, the chain from the
// last checkpoint before the selection to the first checkpoint after it
// (entries outside the selection as links) and those checkpoints.
func (s *Store) Export(ctx context.Context, f ExportFilter, format string, w io.Writer) (records int, err error) {
	var emit func(*Line) error
	var flush func() error
	switch format {
	case "jsonl":
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		emit, flush = func(l *Line) error { return enc.Encode(l) }, bw.Flush
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return 0, err
		}
		emit = func(l *Line) error { return cw.Write(l.csvRow()) }
		flush = func() error { cw.Flush(); return cw.Error() }
	default:
		return 0, fmt.Errorf("format %q: want jsonl or csv", format)
	}
	spans, err := s.Writers(ctx, f.From, f.To)
	if err != nil {
		return 0, err
	}
	// In byte order, as VerifyExport reads a file line by line (PostgreSQL
	// orders by its collation: "r10/…" before "r1/…" in en_US).
	slices.SortFunc(spans, func(a, b WriterSpan) int { return strings.Compare(a.Writer, b.Writer) })
	for _, sp := range spans {
		if f.Writer != "" && sp.Writer != f.Writer {
			continue
		}
		cps, err := s.Checkpoints(ctx, sp.Writer)
		if err != nil {
			return records, err
		}
		first, last, sel := anchoredSpan(cps, sp.FirstSeq, sp.LastSeq)
		for i := range sel {
			if err := emit(ptr(CheckpointLine(&sel[i]))); err != nil {
				return records, err
			}
		}
		lo, hi := timeBounds(f.From, f.To)
		err = s.EachEntry(ctx, sp.Writer, first, last, func(e *Entry) error {
			in := TimeUS(e.Time) >= lo && TimeUS(e.Time) < hi && (f.Workspace == "" || e.Workspace == f.Workspace) &&
				(f.Key == "" || !e.Pruned && RecordKey(e.Body) == f.Key)
			if in {
				records++
			}
			return emit(ptr(EntryLine(e, !in)))
		})
		if err != nil {
			return records, err
		}
	}
	return records, flush()
}

func ptr[T any](v T) *T { return &v }

// anchoredSpan widens a seq span to the checkpoints around it: from the
// newest checkpoint below first (its entry is the anchor; 0 is the chain's
// start) to the oldest at or after last (or last). It returns the entry
// range to read (after the anchor) and the checkpoints from the anchor on.
func anchoredSpan(cps []Checkpoint, first, last uint64) (uint64, uint64, []Checkpoint) {
	from, to := uint64(0), last
	for _, c := range cps {
		if c.Seq < first && c.Seq > from {
			from = c.Seq
		}
	}
	for _, c := range cps {
		if c.Seq >= last {
			to = c.Seq
			break
		}
	}
	var sel []Checkpoint
	for _, c := range cps {
		if c.Seq >= from && c.Seq <= to {
			sel = append(sel, c)
		}
	}
	return from + 1, to, sel
}

// CSVHeader is the CSV export's columns; a row is a Line.
var CSVHeader = []string{"type", "writer", "seq", "time", "kind", "workspace", "id", "prev", "body_sha256", "leaf", "hash", "body",
	"pruned", "reason", "key_id", "signature", "digest"}

func (l *Line) csvRow() []string {
	pruned := ""
	if l.Pruned {
		pruned = "true"
	}
	return []string{l.Type, l.Writer, strconv.FormatUint(l.Seq, 10), l.Time, l.Kind, l.Workspace, l.ID, l.Prev, l.BodySHA256, l.Leaf,
		l.Hash, l.Body, pruned, l.Reason, l.KeyID, l.Signature, l.Digest}
}

// ReadLines reads an export in either format (CSV when the first line is
// CSVHeader).
func ReadLines(r io.Reader) ([]Line, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(5)
	if string(head) == "type," {
		cr := csv.NewReader(br)
		cr.FieldsPerRecord = len(CSVHeader)
		rows, err := cr.ReadAll()
		if err != nil {
			return nil, fmt.Errorf("csv export: %w", err)
		}
		if len(rows) == 0 || !slices.Equal(rows[0], CSVHeader) {
			return nil, errors.New("csv export: unexpected header")
		}
		out := make([]Line, 0, len(rows)-1)
		for i, row := range rows[1:] {
			l, err := csvLine(row, i+2)
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		}
		return out, nil
	}
	var out []Line
	dec := json.NewDecoder(br)
	for n := 1; ; n++ {
		var l Line
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("export line %d: %w", n, err)
		}
		out = append(out, l)
	}
}

// csvLine reads the CSV row on line n.
func csvLine(row []string, n int) (Line, error) {
	seq, err := strconv.ParseUint(row[2], 10, 64)
	if err != nil {
		return Line{}, fmt.Errorf("csv export line %d: bad seq", n)
	}
	return Line{Type: row[0], Writer: row[1], Seq: seq, Time: row[3], Kind: row[4], Workspace: row[5], ID: row[6],
		Prev: row[7], BodySHA256: row[8], Leaf: row[9], Hash: row[10], Body: row[11], Pruned: row[12] == "true",
		Reason: row[13], KeyID: row[14], Signature: row[15], Digest: row[16]}, nil
}

// lineReader reads an export line by line, in either format.
type lineReader struct {
	csv  *csv.Reader
	json *json.Decoder
	n    int // lines read
}

func newLineReader(r io.Reader) (*lineReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(5); string(head) != "type," {
		return &lineReader{json: json.NewDecoder(br)}, nil
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = len(CSVHeader)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv export: %w", err)
	}
	if !slices.Equal(head, CSVHeader) {
		return nil, errors.New("csv export: unexpected header")
	}
	return &lineReader{csv: cr, n: 1}, nil
}

// next reads the next line into l; io.EOF after the last.
func (lr *lineReader) next(l *Line) error {
	lr.n++
	if lr.csv != nil {
		row, err := lr.csv.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("csv export: %w", err)
		}
		*l, err = csvLine(row, lr.n)
		return err
	}
	if err := lr.json.Decode(l); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("export line %d: %w", lr.n, err)
	}
	return nil
}
