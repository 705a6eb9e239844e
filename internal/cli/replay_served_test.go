package cli

import (
	"testing"

	"github.com/stellwerk/stellwerk/internal/audit"
)

// TestServedByOldRecords: a record from before 2026-12-03 named the last
// model tried as served after every attempt failed; replay says no model
// served it (the compliance probe read "503 no_eligible_model, served by
// mock-eu-large"). What a provider answered stays served.
func TestServedByOldRecords(t *testing.T) {
	failed := []audit.Attempt{{Model: "a", Outcome: "failed", Status: 503}, {Model: "b", Outcome: "failed", Status: 503}}
	for name, c := range map[string]struct {
		r    audit.Record
		want string
	}{
		"old record, every attempt failed": {audit.Record{Status: 503, ErrorCode: "no_eligible_model", Served: "b", Attempts: failed}, ""},
		"failover served":                  {audit.Record{Status: 200, Served: "b", Attempts: []audit.Attempt{failed[0], {Model: "b", Outcome: "served", Status: 200}}}, "b"},
		"provider's 400":                   {audit.Record{Status: 400, Served: "a", Attempts: []audit.Attempt{{Model: "a", Outcome: "served", Status: 400}}}, "a"},
		"no attempts recorded":             {audit.Record{Status: 200, Served: "a"}, "a"},
	} {
		if got := servedBy(&c.r); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
}
