package extproc

import (
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/decide"
)

func TestPlanOneModelPerProvider(t *testing.T) {
	pa, pb, pc := &catalog.Provider{Name: "a"}, &catalog.Provider{Name: "b"}, &catalog.Provider{Name: "c"}
	m := func(id string, p *catalog.Provider) *catalog.Model { return &catalog.Model{ID: id, Provider: p} }
	d := &decide.Decision{Model: m("a1", pa), Fallbacks: []*catalog.Model{m("b1", pb), m("b2", pb), m("a2", pa), m("c1", pc)}}
	var ids []string
	for _, x := range planFor(d, 3) {
		ids = append(ids, x.ID)
	}
	if got := strings.Join(ids, ","); got != "a1,b1,c1" {
		t.Errorf("plan %s", got)
	}
	if got := planFor(d, 1); len(got) != 1 {
		t.Errorf("max_attempts 1 gave %d", len(got))
	}

	id, models, ok := decodePlan(encodePlan("dec-1", planFor(d, 3)))
	if !ok || id != "dec-1" || strings.Join(models, ",") != "a1,b1,c1" {
		t.Errorf("round trip %v %q %v", ok, id, models)
	}
	for _, bad := range []string{"", "m=a1", "d=x", "%zz"} {
		if _, _, ok := decodePlan(bad); ok {
			t.Errorf("decodePlan(%q) accepted", bad)
		}
	}
}

func TestAttemptsFor(t *testing.T) {
	pa, pb := &catalog.Provider{Name: "a"}, &catalog.Provider{Name: "b"}
	plan := []*catalog.Model{{ID: "a1", Provider: pa}, {ID: "b1", Provider: pb}}
	seen := map[int]attempt{0: {Provider: "a", Status: 503, Outcome: "failed", Reason: "status 503"}}
	got := attemptsFor(plan, 2, 1, 200, seen)
	if len(got) != 2 || got[0].Reason != "status 503" || got[1].Outcome != "served" || got[1].Model != "b1" {
		t.Errorf("attempts %+v", got)
	}
	// Seen on another replica: reported from the plan alone.
	got = attemptsFor(plan, 2, -1, 502, nil)
	if len(got) != 2 || got[0].Outcome != "failed" || got[1].Status != 502 {
		t.Errorf("attempts %+v", got)
	}
	// Never more attempts than the plan has.
	if got := attemptsFor(plan, 5, -1, 503, nil); len(got) != 2 {
		t.Errorf("%d attempts for a plan of 2", len(got))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"7": 7 * time.Second, " 120 ": 2 * time.Minute, "0": 0, "-3": 0, "soon": 0, "": 0,
		"Sat, 21 Nov 2026 12:01:00 GMT": time.Minute, "Sat, 21 Nov 2026 11:00:00 GMT": 0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
