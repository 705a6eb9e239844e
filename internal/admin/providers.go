package admin

import (
	"context"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// ProviderService is what /admin/providers/{name} needs of the server: a
// provider's cluster as Envoy has it, and a live override of its cluster
// controls (docs/envoy.md, "Tuning clusters").
type ProviderService interface {
	ProviderCluster(name string) (ProviderCluster, error)
	// SetProviderCluster replaces the provider's override (an empty one
	// removes it) and returns once Envoy was sent the result.
	SetProviderCluster(ctx context.Context, name string, override config.ClusterSettings, actor string) (ProviderCluster, error)
}

// ProviderLister lists every configured provider's cluster, for GET
// /admin/providers (the console's Providers panel).
type ProviderLister interface {
	ProviderClusters() []ProviderCluster
}

// Errors a ProviderService returns.
var (
	ErrUnknownProvider = errors.New("unknown provider")
	ErrInvalidCluster  = errors.New("cluster settings refused")
)

// ProviderCluster is a provider's cluster: its effective controls (the
// config's defaults and block, the override on top), its endpoints and the
// override in force. It carries no credential.
type ProviderCluster struct {
	Provider        string                  `json:"provider"`
	Cluster         config.ClusterSettings  `json:"cluster"`
	Endpoints       []config.Endpoint       `json:"endpoints,omitempty"`
	Override        *config.ClusterSettings `json:"override,omitempty"`
	SnapshotVersion string                  `json:"snapshot_version"`
	// Credential says whether stellwerk has the provider's key (never
	// the key): configured, missing (its variable or file is empty: every
	// request to it is refused, 502 provider_credential_missing, and auto
	// skips it), or none (the provider needs none).
	Credential string `json:"credential"`
	// Applied (in a PUT's answer only) is whether every connected Envoy
	// accepted the change within a few seconds: false when no Envoy is
	// connected or none answered in time. A change an Envoy refused is
	// taken back and answered with an error instead.
	Applied *bool `json:"applied,omitempty"`
}

// clusterWriters may change a provider's cluster controls live.
var clusterWriters = []string{config.RoleOperator, config.RoleAdmin}

// maxClusterBody bounds a PUT body; a cluster block is a few hundred bytes.
const maxClusterBody = 64 << 10

func registerProviders(guarded func(string, []string, http.HandlerFunc), gate *storeGate, ps ProviderService, log *zap.Logger) {
	if pl, ok := ps.(ProviderLister); ok {
		guarded("GET /admin/providers", readers, func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": pl.ProviderClusters()})
		})
	}
	guarded("GET /admin/providers/{name}", readers, func(w http.ResponseWriter, r *http.Request) {
		v, err := ps.ProviderCluster(r.PathValue("name"))
		if err != nil {
			writeProviderError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	// The body is a cluster block as in the config file (YAML or JSON,
	// durations as "5s"); unknown fields are refused.
	// A change reads the provider keys from the key store and waits for
	// Envoy to apply it (up to 5 s): bound as the other store calls, the
	// longer for that wait.
	guarded("PUT /admin/providers/{name}", clusterWriters, gate.bound("key_store_unavailable", providerChangeTimeout, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxClusterBody+1))
		if err != nil || len(body) > maxClusterBody {
			writeError(w, apierr.Invalid("invalid_body", "", "the body must be a cluster block of at most %d bytes", maxClusterBody))
			return
		}
		ov, err := config.DecodeClusterSettings(body)
		if err != nil {
			writeError(w, apierr.Invalid("invalid_cluster", "", "cluster settings: %s", apierr.Truncate(err.Error(), 512)))
			return
		}
		actor, role := "unknown", ""
		if c, ok := CallerFrom(r.Context()); ok {
			actor, role = c.TokenID, c.Role
		}
		if t := ov.TLS; t != nil && role != config.RoleAdmin && (t.SNI != "" || t.CABundle != "" || t.ClientCertificate != "" || t.ClientKey != "") {
			// Whom Envoy trusts with the provider's key is a credential's
			// matter: an operator who could name another CA or server name
			// could, with a place on the network, read the key (the
			// security probe). min_version stays an operator's.
			writeError(w, apierr.Denied("insufficient_role", "tls",
				"tls.sni, tls.ca_bundle and tls.client_certificate/client_key decide whom the provider's key is sent to: role %s may not change them; it needs admin", role))
			return
		}
		v, err := ps.SetProviderCluster(r.Context(), r.PathValue("name"), ov, actor)
		if err != nil {
			writeProviderError(w, err)
			return
		}
		log.Info("provider cluster changed", zap.String("provider", v.Provider), zap.String("token_id", actor),
			zap.String("snapshot_version", v.SnapshotVersion))
		writeJSON(w, http.StatusOK, v)
	}))
}

func writeProviderError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		// The provider keys could not be read (the server wraps the
		// error in ErrInvalidCluster): not the caller's mistake, and it
		// was a 400.
		e := apierr.Unavailable("key_store_unavailable", "the provider keys could not be read from the key store; nothing was changed, try again")
		e.RetryAfter = 1
		writeError(w, e)
	case errors.Is(err, ErrUnknownProvider):
		writeError(w, apierr.NotFound("unknown_provider", "", "%s", apierr.Truncate(err.Error(), 256)))
	case errors.Is(err, ErrInvalidCluster):
		writeError(w, apierr.Invalid("invalid_cluster", "", "%s", apierr.Truncate(err.Error(), 2048)))
	default:
		writeError(w, &apierr.Error{Kind: apierr.KindInternal, Type: "server_error", Code: "internal_error",
			Message: "cannot change the provider's cluster"})
	}
}
