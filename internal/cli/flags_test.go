package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

// TestParseAnywhere (issue 18): `policy test DIR -v` works as `-v DIR` does.
func TestParseAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		v    bool
	}{
		{[]string{"dir", "-v"}, []string{"dir"}, true},
		{[]string{"-v", "dir"}, []string{"dir"}, true},
		{[]string{"a", "-v", "b"}, []string{"a", "b"}, true},
		{[]string{"--", "-v"}, []string{"-v"}, false},
		{nil, nil, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		v := fs.Bool("v", false, "")
		pos, err := parseAnywhere(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *v != tc.v {
			t.Errorf("%q: %q %v %v", tc.args, pos, *v, err)
		}
	}
}
