// Package admin is stellwerk's operator HTTP API: liveness, readiness,
// version, status, policy, the loaded configuration and process figures. It
// listens on its own port, never on Envoy's listener. Everything but the
// probes needs an admin token whose role may read the endpoint
// (docs/security.md).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/console"
	"github.com/stellwerk/stellwerk/internal/version"
)

// Status is what the admin API reports about the running server.
type Status interface {
	// SnapshotVersion is the xDS snapshot Envoy is offered ("" before the first).
	SnapshotVersion() string
	// Stopping: the server is finishing the requests in flight before it
	// exits (not ready; the admin API still answers).
	Stopping() bool
	// EnvoyStreams is the number of connected Envoy xDS streams.
	EnvoyStreams() int64
	// LastRejection is Envoy's last NACK message, "" if none.
	LastRejection() string
	// ConfigYAML is the loaded config with secret-shaped values redacted.
	ConfigYAML() ([]byte, error)
	// Policy is the policy in force and the last refused change.
	Policy() any
	// ConfigError is why the last config change was refused ("" if none).
	ConfigError() (string, time.Time)
	// Providers lists providers with recent failures or in cooldown.
	Providers() any
	// Tokens are the admin tokens of the config in force.
	Tokens() *Tokens
	// Gauges are process figures for /debug/vars beside goroutines and
	// memstats (e.g. extproc_attempt_entries); no secret goes here.
	Gauges() map[string]int64
	// Budgets is how the budgets and rate limits of one subject stand
	// (query: key, user, team, workspace); an error wraps the state store's.
	Budgets(r *http.Request) (any, error)
}

// XDSService is what the server tells about its xDS clients: per Envoy
// node, the versions sent, accepted and refused (for /status), and the
// snapshot with them (GET /admin/xds, `stellwerk xds dump`). Neither
// carries a secret's value.
type XDSService interface {
	EnvoyNodes() any
	XDSDump() (any, error)
}

// MetricsService is a server with Prometheus metrics.
type MetricsService interface {
	// Metrics serves them in Prometheus' exposition format.
	Metrics() http.Handler
}

// Who may read what; docs/security.md has the same table.
var (
	// readers: the running state, nothing configured.
	readers = []string{config.RoleViewer, config.RoleAuditor, config.RoleOperator, config.RoleAdmin}
	// configReaders: the configuration (redacted). An auditor checks the
	// residency rules and access lists the traffic was routed under.
	configReaders = []string{config.RoleAuditor, config.RoleOperator, config.RoleAdmin}
	// processReaders: the process's internals.
	processReaders = []string{config.RoleOperator, config.RoleAdmin}
)

// Handler serves the admin API.
func Handler(s Status, log *zap.Logger) http.Handler {
	mux := http.NewServeMux()
	guarded := func(pattern string, roles []string, h http.HandlerFunc) {
		mux.Handle(pattern, guard(s, log, roles, h))
	}
	// Every endpoint that calls the state store is bounded in time and in
	// how many of the store's connections it may hold (bound.go).
	gate := newStoreGate()

	// Probes answer anyone: orchestrators send no token, and they reveal
	// only up or down.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.Stopping() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "stopping: finishing the requests in flight"})
			return
		}
		if s.SnapshotVersion() == "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "no xDS snapshot published yet"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})

	// The exact build and Go release tell an attacker which advisories
	// apply: readers only.
	guarded("GET /version", readers, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": version.String(), "go": runtime.Version()})
	})
	// Who the token belongs to: the console shows it and offers only what
	// the role may do.
	guarded("GET /admin/whoami", readers, func(w http.ResponseWriter, r *http.Request) {
		c, _ := CallerFrom(r.Context())
		writeJSON(w, http.StatusOK, map[string]string{"token_id": c.TokenID, "role": c.Role})
	})
	guarded("GET /status", readers, func(w http.ResponseWriter, _ *http.Request) {
		cerr, cat := s.ConfigError()
		out := map[string]any{
			"version":          version.String(),
			"snapshot_version": s.SnapshotVersion(),
			"envoy_streams":    s.EnvoyStreams(),
			"last_rejection":   s.LastRejection(),
			"providers":        s.Providers(),
		}
		// Per Envoy node: the version it serves and any update it refused,
		// with Envoy's error detail.
		if xs, ok := s.(XDSService); ok {
			out["envoy_nodes"] = xs.EnvoyNodes()
		}
		if ks, ok := s.(interface{ KeyStoreStatus() any }); ok {
			out["key_store"] = ks.KeyStoreStatus()
		}
		if ss, ok := s.(interface{ SpendStatus() any }); ok {
			out["spend_ledger"] = ss.SpendStatus()
		}
		if bs, ok := s.(interface{ BudgetStoreStatus() any }); ok {
			if v := bs.BudgetStoreStatus(); v != nil {
				out["budget_store"] = v
			}
		}
		if as, ok := s.(interface{ AuditStatus() any }); ok {
			out["audit"] = as.AuditStatus()
		}
		if fs, ok := s.(interface{ FleetStatus() any }); ok {
			out["fleet"] = fs.FleetStatus()
		}
		if cerr != "" {
			out["config_error"] = cerr
			out["config_error_at"] = cat
		}
		writeJSON(w, http.StatusOK, out)
	})
	guarded("GET /policy", readers, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Policy())
	})
	// Spend against budgets and rate-limit windows, for FinOps and for a
	// team asking what it has left.
	guarded("GET /admin/budgets", readers, gate.bound("budget_store_unavailable", storeTimeout, func(w http.ResponseWriter, r *http.Request) {
		if !knownParams(w, r, "invalid_value", "workspace", "team", "user", "key") {
			return
		}
		v, err := s.Budgets(r)
		var ae *apierr.Error
		switch {
		case errors.As(err, &ae):
			writeError(w, ae) // the query's mistake, or a key whose limits cannot be read
			return
		case err != nil:
			log.Warn("budget state unavailable", zap.Error(err))
			writeError(w, apierr.Unavailable("budget_store_unavailable", "the budgets' state store cannot be reached"))
			return
		}
		writeJSON(w, http.StatusOK, v)
	}))
	guarded("GET /config", configReaders, func(w http.ResponseWriter, _ *http.Request) {
		b, err := s.ConfigYAML()
		if err != nil {
			writeError(w, &apierr.Error{Kind: apierr.KindInternal, Type: "server_error", Code: "internal_error",
				Message: "cannot render the config"})
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
	})
	// Process figures for soak tests and dashboards (expvar's format).
	guarded("GET /debug/vars", processReaders, varsHandler(s))
	// Prometheus metrics (docs/observability.md): traffic, spend and
	// provider health per workspace, model and provider, what dashboards
	// show; viewers may read it, so a scraper gets a viewer token. No key,
	// user or prompt is a label.
	if ms, ok := s.(MetricsService); ok {
		guarded("GET /metrics", readers, ms.Metrics().ServeHTTP)
	}
	// Virtual keys and provider keys (docs/keys.md).
	if ks, ok := s.(KeyService); ok {
		registerKeys(gate.guard(guarded, "key_store_unavailable", storeTimeout), gate.guard(guarded, "key_store_unavailable", rotateTimeout), ks, log)
	}
	// The audit log's public key and records (docs/audit.md).
	if as, ok := s.(AuditService); ok {
		registerAudit(guarded, gate, as, log)
	}
	// The spend ledger, per request, grouped (docs/budgets.md).
	if ss, ok := s.(SpendService); ok {
		registerSpend(gate.guard(guarded, "spend_store_unavailable", spendQueryTimeout), ss, log)
	}
	// What every connected Envoy was sent and accepted (stellwerk xds dump).
	if xs, ok := s.(XDSService); ok {
		guarded("GET /admin/xds", configReaders, func(w http.ResponseWriter, _ *http.Request) {
			d, err := xs.XDSDump()
			if err != nil {
				log.Error("xds dump failed", zap.Error(err))
				writeError(w, &apierr.Error{Kind: apierr.KindInternal, Type: "server_error", Code: "internal_error",
					Message: "cannot render the xDS snapshot"})
				return
			}
			writeJSON(w, http.StatusOK, d)
		})
	}
	// Provider clusters, tuned live (docs/envoy.md).
	if ps, ok := s.(ProviderService); ok {
		registerProviders(guarded, gate, ps, log)
	}
	// Named, versioned routes (docs/routes.md).
	if fs, ok := s.(FeedbackService); ok {
		registerFeedback(gate.guard(guarded, "feedback_unavailable", storeTimeout), fs, log)
	}
	if rs, ok := s.(RouteService); ok {
		registerRoutes(gate.guard(guarded, "route_store_unavailable", storeTimeout), rs, log)
	}
	// The console's live decision stream and try-it panel (docs/console.md).
	if ls, ok := s.(LiveService); ok {
		// A stream outlives its request's check: it ends at the next
		// heartbeat once its token is gone from the config or lost its role.
		admitted := func(r *http.Request) bool {
			c, ok := s.Tokens().Authenticate(r.Header.Get("Authorization"))
			return ok && slices.Contains(readers, c.Role)
		}
		registerLive(guarded, ls, admitted, log)
	}
	// The console's page, script and style answer anyone: they hold no
	// data, and every call they make sends the user's admin token.
	mux.Handle("GET /console/", console.Handler())
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	// Anything else is a 404, but only to a caller with a token: probing
	// without one learns nothing.
	// A path served under other methods is a 405 naming them.
	guarded("/", readers, func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, apierr.WrongMethod("%s is not allowed on %s; use %s",
				apierr.Truncate(r.Method, 16), apierr.Truncate(r.URL.Path, 128), allow))
			return
		}
		writeError(w, apierr.NotFound("unknown_url", "", "unknown admin URL: %s %s",
			apierr.Truncate(r.Method, 16), apierr.Truncate(r.URL.Path, 128)))
	})
	return mux
}

// allowedMethods lists the methods mux serves r's path under, comma
// separated, or "" when it serves the path under none ("/" is the
// catch-all, not a route).
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
		if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// guard admits a request whose bearer token has one of roles: 401 without a
// valid token, 403 with a token of another role. The token is never logged.
func guard(s Status, log *zap.Logger, roles []string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens := s.Tokens()
		cred := r.Header.Get("Authorization")
		several := len(r.Header.Values("Authorization")) > 1
		if several {
			cred = "" // two tokens: which one speaks? neither
		}
		c, ok := tokens.Authenticate(cred)
		if !ok {
			msg := "the admin API needs Authorization: Bearer <admin token>"
			switch {
			case several:
				msg = "the request sends several Authorization headers; send one"
			case cred != "":
				msg = "the admin token is not valid"
			}
			if tokens.Len() == 0 {
				msg += "; no admin token is configured (admin.tokens, docs/security.md)"
			}
			log.Info("admin request refused", zap.Int("status", http.StatusUnauthorized), zap.String("path", r.URL.Path),
				zap.String("remote", r.RemoteAddr))
			w.Header().Set("WWW-Authenticate", `Bearer realm="stellwerk-admin"`)
			writeError(w, &apierr.Error{Kind: apierr.KindUnauthenticated, Type: "authentication_error", Code: "invalid_admin_token", Message: msg})
			return
		}
		if !slices.Contains(roles, c.Role) {
			log.Info("admin request refused", zap.Int("status", http.StatusForbidden), zap.String("path", r.URL.Path),
				zap.String("remote", r.RemoteAddr), zap.String("token_id", c.TokenID), zap.String("role", c.Role))
			verb := "read"
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				verb = "change" // POST, DELETE: the write endpoints
			}
			writeError(w, apierr.Denied("insufficient_role", "", "role %s may not %s %s; it needs one of: %s",
				c.Role, verb, apierr.Truncate(r.URL.Path, 128), strings.Join(roles, ", ")))
			return
		}
		// Go's query parser drops a pair it cannot read (one with a ';')
		// without a word: a filter would be ignored and the answer wider
		// than asked.
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			writeError(w, apierr.Invalid("invalid_query", "", "the query string cannot be read: %s; separate parameters with & and escape ; as %%3B",
				apierr.Truncate(err.Error(), 128)))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

type callerKey struct{}

// CallerFrom returns who a guarded request's token belongs to.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// knownParams answers 400 with code when the query names a parameter the
// endpoint does not read, or one twice: a misspelt filter
// (?worksapce=acme) matched everything, and an auditor's export held
// every workspace's records. It reports whether the query may be read.
func knownParams(w http.ResponseWriter, r *http.Request, code string, known ...string) bool {
	q := r.URL.Query()
	names := slices.Sorted(maps.Keys(q))
	for _, k := range names {
		switch {
		case !slices.Contains(known, k):
			writeError(w, apierr.Invalid(code, k, "unknown parameter %q; this endpoint reads %s", k, strings.Join(known, ", ")))
			return false
		case len(q[k]) > 1:
			writeError(w, apierr.Invalid(code, k, "%s is given more than once", k))
			return false
		}
	}
	return true
}

// pageLimit reads a list's limit parameter: def when not given, else a
// number from 1 to most, refused with code otherwise.
func pageLimit(q url.Values, def, most int, code string) (int, *apierr.Error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, apierr.Invalid(code, "limit", "limit must be between 1 and %d", most)
	}
	return n, nil
}

func writeError(w http.ResponseWriter, e *apierr.Error) {
	w.Header().Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(apierr.HTTPStatus(e))
	_, _ = w.Write(e.JSON())
}
