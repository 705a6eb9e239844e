package injection

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	fh, err := os.Open(dataPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("data set %s not present", dataPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rep, err := EvaluateCSV(fh)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Markdown())
	if rep.Test.Recall < 0.85 {
		t.Errorf("test-split recall %.3f < 0.85", rep.Test.Recall)
	}
	if rep.Test.FPR > 0.05 {
		t.Errorf("test-split false-positive rate %.3f > 0.05", rep.Test.FPR)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}
}

func TestEvaluateCSVErrors(t *testing.T) {
	tests := map[string]struct {
		csv  string
		want string
	}{
		"missing column": {"text,label\nhi,benign\n", "columns prompt and type"},
		"unknown label":  {"prompt,type\nhi,spam\n", `unknown type "spam"`},
		"no rows":        {"prompt,type\n", "no rows"},
		"empty":          {"", "read header"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := EvaluateCSV(strings.NewReader(tc.csv))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
