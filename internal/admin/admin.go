// Package admin is stellwerk's operator HTTP API: liveness, readiness,
// version and the loaded configuration. It listens on its own port, never on
// Envoy's listener.
package admin

import (
	"encoding/json"
	"expvar"
	"net/http"
	"runtime"
	"time"

	"github.com/stellwerk/stellwerk/internal/version"
)

// Status is what the admin API reports about the running server.
type Status interface {
	// SnapshotVersion is the xDS snapshot Envoy is offered ("" before the first).
	SnapshotVersion() string
	// EnvoyStreams is the number of connected Envoy xDS streams.
	EnvoyStreams() int64
	// LastRejection is Envoy's last NACK message, "" if none.
	LastRejection() string
	// ConfigYAML is the loaded config; it holds no secret values.
	ConfigYAML() ([]byte, error)
	// Policy is the policy in force and the last refused change.
	Policy() any
	// ConfigError is why the last config change was refused ("" if none).
	ConfigError() (string, time.Time)
	// Providers lists providers with recent failures or in cooldown.
	Providers() any
}

func init() {
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
}

// Handler serves the admin API.
func Handler(s Status) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.SnapshotVersion() == "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "no xDS snapshot published yet"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": version.String(), "go": runtime.Version()})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		cerr, cat := s.ConfigError()
		out := map[string]any{
			"version":          version.String(),
			"snapshot_version": s.SnapshotVersion(),
			"envoy_streams":    s.EnvoyStreams(),
			"last_rejection":   s.LastRejection(),
			"providers":        s.Providers(),
		}
		if cerr != "" {
			out["config_error"] = cerr
			out["config_error_at"] = cat
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /policy", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Policy())
	})
	// Process figures for soak tests and dashboards (Go's expvar format:
	// memstats, cmdline, goroutines).
	mux.Handle("GET /debug/vars", expvar.Handler())
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) {
		b, err := s.ConfigYAML()
		if err != nil {
			http.Error(w, "cannot render config", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
