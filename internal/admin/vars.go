package admin

import (
	"net/http"
	"runtime"
)

// varsHandler serves /debug/vars in expvar's shape with only the process
// figures soak tests and dashboards read. expvar's own handler also
// publishes the command line, which names config files and can carry
// secrets passed as flags; stellwerk does not import expvar at all.
func varsHandler(s Status) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		out := map[string]any{"goroutines": runtime.NumGoroutine(), "memstats": &ms}
		for k, v := range s.Gauges() {
			out[k] = v
		}
		writeJSON(w, http.StatusOK, out)
	}
}
