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
