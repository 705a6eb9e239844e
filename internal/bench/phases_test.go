package bench

import (
	"strings"
	"testing"
	"time"
)

// TestPhaseTable: the profile's phase table reads Envoy's access log lines
// of the profiled window only, skips what is not a JSON line, and gives
// each phase its own count (a refused request has no response phases).
func TestPhaseTable(t *testing.T) {
	from := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	log := `[2026-12-02 10:00:00.000][1][warning][main] not a request
{"start":"2026-12-02T09:59:59.999Z","duration_ms":9,"ext_proc_request_headers_us":"9999","ext_proc_request_body_us":"9999","ext_proc_response_headers_us":"9999","ext_proc_response_body_us":"9999"}
{"start":"2026-12-02T10:00:00.100Z","duration_ms":2,"ext_proc_request_headers_us":"100","ext_proc_request_body_us":"300","ext_proc_response_headers_us":"50","ext_proc_response_body_us":"60"}
{"start":"2026-12-02T10:00:00.200Z","duration_ms":3,"ext_proc_request_headers_us":"200","ext_proc_request_body_us":"400","ext_proc_response_headers_us":"70","ext_proc_response_body_us":"80"}
{"start":"2026-12-02T10:00:00.300Z","duration_ms":0,"ext_proc_request_headers_us":"150","ext_proc_request_body_us":null,"ext_proc_response_headers_us":null,"ext_proc_response_body_us":null}
`
	got := phaseTable([]byte(log), from)
	for _, want := range []string{
		"3 requests;",
		"| request headers | 3 | 150 | 200 | 200 |",
		"| request body (all messages) | 2 | 400 | 400 | 400 |",
		"| response headers | 2 | 70 | 70 | 70 |",
		"| whole request in Envoy B (ms resolution) | 3 | 2000 | 3000 | 3000 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "9999") {
		t.Errorf("a line from before the window was read:\n%s", got)
	}
}
