package flow

import (
	"strings"
	"testing"
)

// A condition comparing an enumerated classification field with a value
// it never has is refused in a new version and only warned of in a stored
// one (it loaded before it was checked).
func TestNeverValues(t *testing.T) {
	const head = "route: r\nnodes:\n"
	tail := "    then: a\n    else: b\n  - {id: a, model: gpt-4o}\n  - {id: b, model: gpt-4o-mini}\n"
	tests := map[string]struct {
		cond string
		want []string // each warning's text, in order
	}{
		"==": {`classification.task == "summarize"`,
			[]string{`t.yaml:4:33: route r, node c: if: classification.task is never "summarize": the comparison never holds (its values: code, math, reasoning, extraction, summarization, translation, creative_writing, knowledge_qa, classification, chat)`}},
		"== with the literal first": {`"hi" == classification.complexity`,
			[]string{`t.yaml:4:10: route r, node c: if: classification.complexity is never "hi": the comparison never holds (its values: low, medium, high)`}},
		"!=": {`classification.risk != "severe"`,
			[]string{`t.yaml:4:33: route r, node c: if: classification.risk is never "severe": the comparison always holds (its values: low, medium, high)`}},
		"in a list": {`classification.sensitivity in ["public", "secret", "restricted", "pii"]`,
			[]string{`t.yaml:4:51: route r, node c: if: classification.sensitivity is never "secret": the comparison never holds for it (its values: public, internal, confidential, restricted)`,
				`t.yaml:4:75: route r, node c: if: classification.sensitivity is never "pii"`}},
		"inside a larger condition": {`request.stream && (classification.task == "extract" || classification.task == "code")`,
			[]string{`t.yaml:4:52: route r, node c: if: classification.task is never "extract"`}},
		// The red team's other forms of the same comparison.
		"the literal in a list of the variable": {`"summarize" in [classification.task]`,
			[]string{`t.yaml:4:10: route r, node c: if: classification.task is never "summarize"`}},
		"startsWith": {`classification.task.startsWith("summarize")`,
			[]string{`t.yaml:4:41: route r, node c: if: classification.task never starts with "summarize"`}},
		"endsWith": {`classification.complexity.endsWith("est")`, []string{`t.yaml:4:45: route r, node c: if: classification.complexity never ends with "est"`}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			doc := head + "  - id: c\n    if: '" + tt.cond + "'\n" + tail
			f, err := Load("t.yaml", []byte(doc), testEnv)
			if err != nil {
				t.Fatalf("a stored version must load: %v", err)
			}
			warns := f.Warnings()
			if len(warns) != len(tt.want) {
				t.Fatalf("warnings %v, want %d", warns, len(tt.want))
			}
			for i, w := range warns {
				if !strings.HasPrefix(w.Error(), tt.want[i]) {
					t.Errorf("warning %d:\n%s\nwant it to start with\n%s", i, w, tt.want[i])
				}
			}
			_, err = LoadNew("t.yaml", []byte(doc), testEnv)
			errs := Errors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("LoadNew: %v, want %d errors", err, len(tt.want))
			}
			for i, e := range errs {
				if e.Error() != warns[i].Error() {
					t.Errorf("LoadNew's error %d is %q, the warning %q", i, e, warns[i])
				}
			}
		})
	}
}

// Comparisons with values the fields take, with other variables, and with
// values only known at run time are no warning.
func TestNeverValuesValid(t *testing.T) {
	for _, cond := range []string{
		`classification.task == "summarization" || classification.task == "extraction"`,
		`"high" == classification.complexity && classification.risk != "low"`,
		`classification.sensitivity in ["confidential", "restricted"]`,
		`classification.language == "summarize" && metadata.plan == "hi"`,
		`classification.task == metadata.task || classification.task in [metadata.task, "chat"]`,
		`classification.task.startsWith("sum") || classification.task.endsWith("ing") || classification.risk.contains("ig")`,
		`"chat" in [classification.task, metadata.task]`,
	} {
		doc := "route: r\nnodes:\n  - id: c\n    if: '" + cond + "'\n    then: a\n    else: b\n  - {id: a, model: gpt-4o}\n  - {id: b, model: gpt-4o-mini}\n"
		f, err := LoadNew("t.yaml", []byte(doc), testEnv)
		if err != nil {
			t.Errorf("%s: %v", cond, err)
			continue
		}
		if w := f.Warnings(); len(w) > 0 {
			t.Errorf("%s: warnings %v", cond, w)
		}
	}
}

// Every error besides is reported with the warnings of a new version, at
// once.
func TestNeverValuesWithOtherErrors(t *testing.T) {
	doc := "route: r\nnodes:\n  - id: c\n    if: 'classification.task == \"reason\"'\n    then: a\n    else: b\n  - {id: a, model: gpt-5-turbo}\n  - {id: b, model: gpt-4o-mini}\n"
	_, err := LoadNew("t.yaml", []byte(doc), testEnv)
	if s := err.Error(); !strings.Contains(s, `never "reason"`) || !strings.Contains(s, `unknown model "gpt-5-turbo"`) {
		t.Errorf("got %v", err)
	}
	if _, err := Load("t.yaml", []byte(doc), testEnv); err == nil || strings.Contains(err.Error(), "reason") {
		t.Errorf("Load: %v, want the unknown model alone", err)
	}
}
