package classify

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stellwerk/stellwerk/internal/classify/injection"
	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
)

// DocumentsReport is what the detectors find in documents cut into pieces
// of about one request each: how a request pasting them would be
// classified. For text known to hold no attack, credential or personal
// data (a manual, your own code), every finding is a false one.
type DocumentsReport struct {
	Chunk     int                `json:"chunk_bytes"`
	Documents []DocumentFindings `json:"documents"`
	All       DocumentFindings   `json:"all"`
}

// DocumentFindings counts pieces of one document (or of all) by what was
// found in them.
type DocumentFindings struct {
	Name   string `json:"name"`
	Pieces int    `json:"pieces"`
	// Injection: pieces scored at or above injection.Threshold, refused
	// under the default injection: deny.
	Injection int `json:"injection"`
	// Secrets: pieces with a credential, refused under the default
	// secrets: deny.
	Secrets int `json:"secrets"`
	// PII: pieces with personal data (none of it inside a credential),
	// confidential or restricted under the default sensitivity rules and
	// so kept to the workspace's sensitive_residency.
	PII int `json:"pii"`
	// Types counts the findings by secret and personal-data type.
	Types map[string]int `json:"types"`
}

// EvaluateDocuments runs the injection, secret and personal-data
// detectors over texts, each cut into pieces of about chunk bytes at line
// or word boundaries (injection.Chunks).
func EvaluateDocuments(names, texts []string, chunk int) *DocumentsReport {
	r := &DocumentsReport{Chunk: chunk, All: DocumentFindings{Name: "all", Types: map[string]int{}}}
	var sec []secrets.Match
	var per []pii.Match
	for k, text := range texts {
		d := DocumentFindings{Name: names[k], Types: map[string]int{}}
		for _, piece := range injection.Chunks(text, chunk) {
			d.Pieces++
			if injection.Score(piece).Detected {
				d.Injection++
			}
			sec = secrets.Detect(piece, sec[:0])
			for _, m := range sec {
				d.Types[m.Type]++
			}
			if len(sec) > 0 {
				d.Secrets++
			}
			found := false
			per = pii.Detect(piece, per[:0])
			for _, m := range per {
				if overlapsSecret(sec, m.Start, m.End) {
					continue
				}
				d.Types[m.Type]++
				found = true
			}
			if found {
				d.PII++
			}
		}
		r.All.Pieces += d.Pieces
		r.All.Injection += d.Injection
		r.All.Secrets += d.Secrets
		r.All.PII += d.PII
		for t, n := range d.Types {
			r.All.Types[t] += n
		}
		r.Documents = append(r.Documents, d)
	}
	return r
}

// Markdown renders the report as a table, then the findings by type.
func (r *DocumentsReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Pieces of about %d bytes; a piece counts once per column however many findings it has\n\n", r.Chunk)
	b.WriteString("| document | pieces | injection (refused) | credentials (refused) | personal data (kept to sensitive_residency) |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, d := range append(r.Documents, r.All) {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", d.Name, d.Pieces, d.Injection, d.Secrets, d.PII)
	}
	types := make([]string, 0, len(r.All.Types))
	for t := range r.All.Types {
		types = append(types, t)
	}
	sort.Strings(types)
	b.WriteString("\nFindings by type:")
	if len(types) == 0 {
		b.WriteString(" none")
	}
	for _, t := range types {
		fmt.Fprintf(&b, " %s %d", t, r.All.Types[t])
	}
	b.WriteString("\n")
	return b.String()
}
