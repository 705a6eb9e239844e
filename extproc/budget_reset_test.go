package extproc

import (
	"testing"
	"time"
)

// The reset header rounds up, as Retry-After does: never earlier than the
// window frees.
func TestResetInRoundsUp(t *testing.T) {
	now := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		47*time.Second + 500*time.Millisecond: "48s",
		47 * time.Second:                      "47s",
		time.Millisecond:                      "1s",
		6*time.Minute - time.Millisecond:      "6m0s",
		-time.Second:                          "1s",
	} {
		if got := resetIn(now.Add(d), now); got != want {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
}
