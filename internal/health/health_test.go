package health

import (
	"testing"
	"time"
)

func TestCooldowns(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := New(Policy{FailuresBeforeCooldown: 3, Cooldown: 30 * time.Second, MaxCooldown: 5 * time.Minute})
	tr.now = func() time.Time { return now }

	// A run of failures, broken by a success, does not cool down.
	tr.Failed("a", "status 503", 0)
	tr.Failed("a", "status 503", 0)
	tr.Succeeded("a")
	if tr.Failed("a", "status 503", 0) {
		t.Fatal("cooling after one failure since the last success")
	}
	tr.Failed("a", "status 503", 0)
	if !tr.Failed("a", "status 500", 0) {
		t.Fatal("not cooling after 3 consecutive failures")
	}
	until, reason, ok := tr.Cooling("a")
	if !ok || !until.Equal(now.Add(30*time.Second)) || reason != "status 500" {
		t.Errorf("cooling %v %v %q", ok, until, reason)
	}
	now = now.Add(31 * time.Second)
	if _, _, ok := tr.Cooling("a"); ok {
		t.Error("still cooling after the cooldown")
	}

	// Retry-After cools down at once, capped by MaxCooldown.
	if !tr.Failed("b", "rate limited (429)", time.Hour) {
		t.Fatal("Retry-After did not cool down")
	}
	if until, reason, _ := tr.Cooling("b"); !until.Equal(now.Add(5*time.Minute)) || reason != "rate limited (429), Retry-After 1h0m0s" {
		t.Errorf("capped cooldown %v %q", until, reason)
	}
	// A shorter Retry-After does not shorten a cooldown in force.
	tr.Failed("b", "rate limited (429)", time.Second)
	if until, _, _ := tr.Cooling("b"); !until.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("cooldown shortened to %v", until)
	}
	if got := tr.Snapshot(); len(got) != 2 {
		t.Errorf("snapshot %+v", got)
	}
	var nilTracker *Tracker
	if _, _, ok := nilTracker.Cooling("a"); ok {
		t.Error("a nil tracker cools down")
	}
}

// BenchmarkCooling is selection's question, asked once per candidate of
// every request, while one provider of many cools down.
//
//	go test -run '^$' -bench Cooling -benchmem ./internal/health/
func BenchmarkCooling(b *testing.B) {
	tr := New(Policy{FailuresBeforeCooldown: 1, Cooldown: time.Hour, MaxCooldown: time.Hour})
	tr.Failed("down", "status 503", 0)
	names := []string{"openai", "anthropic", "mistral", "down", "gemini", "groq"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _, cooling := tr.Cooling(names[i%len(names)])
			if cooling != (names[i%len(names)] == "down") {
				b.Fatal("wrong answer")
			}
			i++
		}
	})
}
