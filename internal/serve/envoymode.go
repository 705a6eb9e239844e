package serve

import (
	"context"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/xds"
)

// envoyModeInterval is how often the connected Envoys are checked against
// envoy.mode.
const envoyModeInterval = 2 * time.Second

// watchEnvoyModes warns, once per Envoy stream, when an Envoy takes
// stellwerk's clusters but no listeners while stellwerk runs standalone:
// it was booted from envoy/drop-in.yaml (clusters mode), and every auto
// request fails over to egress listeners it never asked for, blaming
// healthy providers (the SRE probe: nothing said so).
func watchEnvoyModes(ctx context.Context, pub *xds.Publisher, mode func() string, log *zap.Logger) {
	warned := map[string]bool{}
	seen := map[string]bool{} // streams seen at the tick before: connected a while
	every(ctx, envoyModeInterval, func() {
		now := map[string]bool{}
		for _, n := range pub.Nodes() {
			id := n.Node + "/" + strconv.FormatInt(n.Stream, 10)
			now[id] = true
			if !seen[id] || warned[id] || mode() != config.ModeStandalone {
				continue
			}
			if msg := modeMismatch(n); msg != "" {
				warned[id] = true
				log.Warn(msg, zap.String("node", n.Node), zap.Int64("stream", n.Stream))
			}
		}
		seen = now
		for id := range warned {
			if !now[id] {
				delete(warned, id)
			}
		}
	})
}

// modeMismatch says why a standalone stellwerk cannot serve through an
// Envoy, "" when it can.
func modeMismatch(n xds.NodeStatus) string {
	_, clusters := n.Types["cluster"]
	_, listeners := n.Types["listener"]
	if clusters && !listeners {
		return "an Envoy takes stellwerk's clusters but no listeners: it runs the drop-in pieces (envoy.mode: clusters), while stellwerk runs standalone; set envoy.mode: clusters, or auto requests fail (docs/envoy.md)"
	}
	return ""
}
