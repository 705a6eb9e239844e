package pii

import "testing"

// FuzzDetect checks the invariants on any input: no panic, spans in bounds,
// sorted and disjoint, and each span valid for its type.
func FuzzDetect(f *testing.F) {
	for _, p := range benchParagraphs {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkSpans(t, text, Detect(text, nil))
	})
}
