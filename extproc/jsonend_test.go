package extproc

import "testing"

// A body without a content-length is complete at the end of its JSON
// value, however it is cut into chunks; strings may hold braces and
// escaped quotes; white space may follow, nothing else.
func TestJSONEnd(t *testing.T) {
	for body, want := range map[string]bool{
		`{"model":"m","messages":[{"role":"user","content":"a } ] { [ \" \\"}]}`: true,
		`{"a":1}` + " \r\n\t": true,
		`[1,2]`:               true,
		`{"a":"}"`:            false,
		`{"a":1}x`:            false,
		`{"a":1} {"b":2}`:     false,
		`"scalar"`:            false,
		`}{`:                  false,
		`{"a":"\\"}`:          true,
		`{"a":"\\\"}"`:        false,
	} {
		for cut := range len(body) + 1 {
			var j jsonEnd
			j.complete([]byte(body[:cut]))
			if got := j.complete([]byte(body)); got != want {
				t.Errorf("%q cut at %d: complete %v, want %v", body, cut, got, want)
			}
		}
	}
}
