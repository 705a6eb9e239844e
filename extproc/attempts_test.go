package extproc

import (
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/catalog"
)

func TestPlanRoundTrip(t *testing.T) {
	pa, pb := &catalog.Provider{Name: "a"}, &catalog.Provider{Name: "b"}
	plan := []*catalog.Model{{ID: "a1", Provider: pa}, {ID: "b1", Provider: pb}}
	id, models, ok := decodePlan(encodePlan("dec-1", plan))
	if !ok || id != "dec-1" || strings.Join(models, ",") != "a1,b1" {
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
	seen := []attempt{{Provider: "a", Status: 503, Outcome: "failed", Reason: "status 503"}, {}}
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

// FuzzRetryAfter: a provider's Retry-After header never panics, and never
// yields a negative or unbounded wait.
func FuzzRetryAfter(f *testing.F) {
	for _, seed := range []string{"7", "0", "-1", "99999999999999999999", "9223372037", "Sat, 21 Nov 2026 12:01:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", ""} {
		f.Add(seed)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(v, now); d < 0 || d > maxRetryAfter*time.Second {
			t.Fatalf("retryAfter(%q) = %v", v, d)
		}
	})
}
