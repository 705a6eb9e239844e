package admin

import (
	"net/http"
	"runtime"
)

// varsHandler serves /debug/vars in expvar's shape with only the process
// figures soak tests and dashboards read. expvar's own handler also
// publishes the command line, which names config files and can carry
// secrets passed as flags; stellwerk does not import expvar at all.
func varsHandler(w http.ResponseWriter, _ *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writeJSON(w, http.StatusOK, struct {
		Goroutines int               `json:"goroutines"`
		MemStats   *runtime.MemStats `json:"memstats"`
	}{runtime.NumGoroutine(), &ms})
}
