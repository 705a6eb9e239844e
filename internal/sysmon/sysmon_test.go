package sysmon

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []string
		want []string
		add  bool
	}{
		"no GODEBUG":                     {in: []string{"A=1"}, want: []string{"A=1", "GODEBUG=" + Setting}, add: true},
		"empty GODEBUG":                  {in: []string{"GODEBUG=", "B=2"}, want: []string{"GODEBUG=" + Setting, "B=2"}, add: true},
		"other settings kept":            {in: []string{"GODEBUG=gctrace=1,madvdontneed=1"}, want: []string{"GODEBUG=gctrace=1,madvdontneed=1," + Setting}, add: true},
		"the operator's default":         {in: []string{"GODEBUG=schedtrace=0"}, want: []string{"GODEBUG=schedtrace=0"}},
		"already re-executed":            {in: []string{"X=y", "GODEBUG=gctrace=1," + Setting}, want: []string{"X=y", "GODEBUG=gctrace=1," + Setting}},
		"spaces around the key":          {in: []string{"GODEBUG=gctrace=1, schedtrace=1000"}, want: []string{"GODEBUG=gctrace=1, schedtrace=1000"}},
		"a value that only ends like it": {in: []string{"GODEBUG=noschedtrace=1"}, want: []string{"GODEBUG=noschedtrace=1," + Setting}, add: true},
		"a variable named like it":       {in: []string{"XGODEBUG=schedtrace=0"}, want: []string{"XGODEBUG=schedtrace=0", "GODEBUG=" + Setting}, add: true},
	} {
		t.Run(name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got, add := Env(in)
			if add != tc.add || !slices.Equal(got, tc.want) {
				t.Errorf("Env(%q) = %q, %v; want %q, %v", tc.in, got, add, tc.want, tc.add)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("Env changed its argument: %q", in)
			}
		})
	}
}
