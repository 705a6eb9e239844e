package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestDecisionResidency: the optional residency field is checked like the
// rest of the decision; a decision without it (a platform's own, written
// before it existed) still loads.
func TestDecisionResidency(t *testing.T) {
	base := `{"deny":[],"exclude":{},"objective":"cost","quality_floor":0,"max_cost_eur":null,"redact":[],"log_level":"","tags":{}`
	for name, tc := range map[string]struct {
		extra, want string
		bad         bool
	}{
		"absent":        {"", "", false},
		"none":          {`,"residency":""`, "", false},
		"any is none":   {`,"residency":"any"`, "", false},
		"eu":            {`,"residency":"eu"`, "eu", false},
		"on_prem":       {`,"residency":"on_prem"`, "on_prem", false},
		"unknown level": {`,"residency":"mars"`, "", true},
		"not a string":  {`,"residency":1`, "", true},
		"unknown key":   {`,"region":"eu"`, "", true},
	} {
		t.Run(name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(base + tc.extra + "}"))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			d, err := decode(v)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want error %v", err, tc.bad)
			}
			if !tc.bad && d.Residency != tc.want {
				t.Errorf("residency %q, want %q", d.Residency, tc.want)
			}
		})
	}
}

// TestDecisionDowngrade: the optional downgrade field names budgets; a
// decision without it still loads.
func TestDecisionDowngrade(t *testing.T) {
	base := `{"deny":[],"exclude":{},"objective":"cost","quality_floor":0,"max_cost_eur":null,"redact":[],"log_level":"","tags":{}`
	for name, tc := range map[string]struct {
		extra string
		want  []string
		bad   bool
	}{
		"absent":          {"", nil, false},
		"none":            {`,"downgrade":[]`, nil, false},
		"two, sorted":     {`,"downgrade":["team-day","key-day"]`, []string{"key-day", "team-day"}, false},
		"not a list":      {`,"downgrade":"team-day"`, nil, true},
		"not all strings": {`,"downgrade":["team-day",1]`, nil, true},
	} {
		t.Run(name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(base + tc.extra + "}"))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			d, err := decode(v)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want error %v", err, tc.bad)
			}
			if !tc.bad && !slices.Equal(d.Downgrade, tc.want) {
				t.Errorf("downgrade %q, want %q", d.Downgrade, tc.want)
			}
		})
	}
}
