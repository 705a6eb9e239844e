package classify

import (
	"sort"
	"strings"

	"github.com/stellwerk/stellwerk/internal/classify/pii"
	"github.com/stellwerk/stellwerk/internal/classify/secrets"
)

// Redact replaces every secret and every item of personal data the
// classifiers find in text by a typed placeholder — [SECRET:aws_access_key],
// [EMAIL] — and counts the placeholders by type (counts may be nil: then
// only the text is returned). It is what an audit record keeps of a
// workspace's text when the workspace opted in to content; the same
// detectors decide as for the policy, so what the policy saw as personal
// data is what is removed.
func Redact(text string, counts map[string]int) string {
	type span struct {
		start, end int
		label      string
	}
	var spans []span
	sec := secrets.Detect(text, nil)
	for _, m := range sec {
		spans = append(spans, span{m.Start, m.End, "[SECRET:" + m.Type + "]"})
		if counts != nil {
			counts["secret:"+m.Type]++
		}
	}
	for _, m := range pii.Detect(text, nil) {
		if overlapsSecret(sec, m.Start, m.End) {
			continue
		}
		spans = append(spans, span{m.Start, m.End, "[" + strings.ToUpper(m.Type) + "]"})
		if counts != nil {
			counts[m.Type]++
		}
	}
	if len(spans) == 0 {
		return text
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var b strings.Builder
	b.Grow(len(text))
	at := 0
	for _, s := range spans {
		if s.start < at { // overlaps the previous placeholder: already gone
			continue
		}
		b.WriteString(text[at:s.start])
		b.WriteString(s.label)
		at = s.end
	}
	b.WriteString(text[at:])
	return b.String()
}

// piiPlaceholders are Redact's placeholders of personal data, one per type.
var piiPlaceholders = func() []string {
	out := make([]string, len(pii.Types))
	for i, t := range pii.Types {
		out[i] = "[" + strings.ToUpper(t) + "]"
	}
	return out
}()

// HasPlaceholder says whether text holds one of Redact's placeholders: a
// value the audit record keeps redacted, so that a replay reading it
// decides on the placeholder, not on what the client sent. Text that a
// client wrote with such a bracket in it reads as redacted too.
func HasPlaceholder(text string) bool {
	if !strings.Contains(text, "[") {
		return false
	}
	if strings.Contains(text, "[SECRET:") {
		return true
	}
	for _, p := range piiPlaceholders {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}
