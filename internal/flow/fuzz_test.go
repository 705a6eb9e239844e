package flow

import (
	"context"
	"os"
	"testing"
)

// FuzzLoad: a route document is untrusted input (the admin API takes it
// from a network caller): Load never panics, and whatever loads evaluates.
func FuzzLoad(f *testing.F) {
	seed, _ := os.ReadFile("testdata/support.yaml")
	f.Add(seed)
	f.Add([]byte("route: r\nnodes:\n  - {id: a, if: 'metadata.a == \"b\"', then: b, else: b}\n  - {id: b, model: auto}\n"))
	f.Add([]byte("route: r\nnodes:\n  - id: s\n    split: {sticky: user, arms: [{name: a, weight: 1, next: m}, {name: b, weight: 2, next: m}]}\n  - {id: m, model: gpt-4o}\n"))
	f.Add([]byte("route: r\nnodes: [{id: e, end: {status: 429, message: x}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := Load("fuzz", data, testEnv)
		if err != nil {
			if len(Errors(err)) == 0 {
				t.Fatal("an error without problems")
			}
			return
		}
		o := fl.Evaluate(context.Background(), benchInput("paid"))
		if len(o.Targets) == 0 && o.End == nil {
			t.Fatalf("a loaded flow decided nothing: %+v", o)
		}
	})
}
