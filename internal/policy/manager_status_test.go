package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestStatusWithoutCheck (issue 18): before the first change check, /policy
// has no last_check_at rather than year 0001.
func TestStatusWithoutCheck(t *testing.T) {
	b, err := json.Marshal(Status{Version: "v", LoadedAt: time.Now()})
	if err != nil || strings.Contains(string(b), "last_check_at") || strings.Contains(string(b), "0001") {
		t.Errorf("%s %v", b, err)
	}
	b, _ = json.Marshal(Status{LastCheckAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if !strings.Contains(string(b), `"last_check_at":"2026-12-01T00:00:00Z"`) {
		t.Errorf("%s", b)
	}
}
