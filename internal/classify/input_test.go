package classify

import (
	"testing"

	"github.com/tidwall/gjson"
)

// An embeddings input or completions prompt is read like a user's
// messages: every string, where it is, and token ids fail closed.
func TestClassifyInputAndPrompt(t *testing.T) {
	cl := defaultClassifier(t)
	for name, tc := range map[string]struct {
		body, field string
		secret      string // the finding's field, "" for none
		scan, limit string
		task        string
	}{
		"string":         {body: `{"input":"Translate to German: good morning"}`, field: "input", scan: ScanComplete, task: "translation"},
		"secret in list": {body: `{"input":["hello","key AKIAIOSFODNN7EXAMPLE"]}`, field: "input", secret: "input[1]", scan: ScanComplete},
		"prompt":         {body: `{"prompt":"aws_access_key_id = AKIAIOSFODNN7EXAMPLE"}`, field: "prompt", secret: "prompt", scan: ScanComplete},
		"suffix":         {body: `{"prompt":"x","suffix":"AKIAIOSFODNN7EXAMPLE"}`, field: "prompt", secret: "suffix", scan: ScanComplete},
		"token ids":      {body: `{"input":[[101,2023],[7592]]}`, field: "input", scan: ScanTruncated, limit: LimitTokenIDs},
	} {
		t.Run(name, func(t *testing.T) {
			root := gjson.Parse(tc.body)
			in := root.Get(tc.field)
			r := cl.Classify(Request{Input: in, InputField: tc.field, Suffix: root.Get("suffix")})
			if r.Scan != tc.scan || r.ScanLimit != tc.limit {
				t.Fatalf("scan %s/%s, want %s/%s", r.Scan, r.ScanLimit, tc.scan, tc.limit)
			}
			switch {
			case tc.secret == "" && len(r.Secrets) > 0:
				t.Fatalf("secrets %+v", r.Secrets)
			case tc.secret != "" && (len(r.Secrets) != 1 || r.Secrets[0].Field != tc.secret):
				t.Fatalf("secrets %+v, want one in %s", r.Secrets, tc.secret)
			}
			if tc.scan == ScanTruncated && r.Sensitivity != "restricted" {
				t.Fatalf("token ids: sensitivity %s, want restricted (fail closed)", r.Sensitivity)
			}
			if tc.task != "" && r.Task != tc.task {
				t.Fatalf("task %s, want %s", r.Task, tc.task)
			}
			if r.InputTokens == 0 {
				t.Fatal("no input tokens counted")
			}
		})
	}
}
