package serve

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/version"
)

// fleetFingerprint hashes what every replica of a fleet must share for any
// of them to decide as any other (docs/deploy.md): routing, the catalog as
// it decides (prices and quality: catalogHash), classification, auth and
// keys, workspaces, currency, failover, budgets and rate limits, and the
// policy in force. What differs per replica by design — its listeners, its
// state directory, its audit writer, file paths — is left out.
func fleetFingerprint(cfg *config.Config, catalogHash, policyVersion string) string {
	b, err := yaml.Marshal(struct {
		Routing    config.Routing         `yaml:"routing"`
		Classify   config.Classify        `yaml:"classify"`
		Auth       config.Auth            `yaml:"auth"`
		Keys       []config.Key           `yaml:"keys"`
		Workspaces []config.Workspace     `yaml:"workspaces"`
		Currency   config.Currency        `yaml:"currency"`
		Failover   config.Failover        `yaml:"failover"`
		Budgets    config.Budgets         `yaml:"budgets"`
		RateLimits []config.RateLimitRule `yaml:"rate_limits"`
	}{cfg.Routing, cfg.Classify, cfg.Auth, cfg.Keys, cfg.Workspaces, cfg.Currency, cfg.Failover, cfg.Budgets, cfg.RateLimits})
	if err != nil {
		return "unknown"
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte("\x00" + catalogHash + "\x00" + policyVersion))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// fleetCheckInterval is how often a replica compares its fingerprint with
// the fleet's; a replica is counted while it did within fleetFresh.
const (
	fleetCheckInterval = 10 * time.Second
	fleetFresh         = 3*fleetCheckInterval + 5*time.Second
)

// FleetStatus is /status's "fleet": this replica's fingerprint and, with a
// shared budget store, the replicas that decide by another.
type FleetStatus struct {
	Fingerprint string `json:"fingerprint"`
	// Replica is this replica's name in the fleet's hash.
	Replica string `json:"replica,omitempty"`
	// Replicas counts the replicas seen within the last 35 s, this one
	// included; 0 without a shared store.
	Replicas int `json:"replicas"`
	// Differ names the replicas with another fingerprint ("name (fp)").
	Differ    []string  `json:"differ"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
}

// fleetWatch compares this replica's fingerprint with the fleet's.
type fleetWatch struct {
	replica string
	fp      func() string
	state   atomic.Pointer[FleetStatus]
	said    string // the differing set last logged
}

// fleetReplica names this process in the fleet's hash: its audit writer's
// replica name (or host name) and a random boot id, as audit writers are.
func fleetReplica(cfg *config.Config) string {
	name := cfg.Audit.Writer
	if name == "" {
		name, _ = os.Hostname()
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return name + "/" + hex.EncodeToString(b)
}

// Status is the last comparison, or this replica's fingerprint alone.
func (w *fleetWatch) Status() FleetStatus {
	if s := w.state.Load(); s != nil {
		return *s
	}
	return FleetStatus{Fingerprint: w.fp(), Differ: []string{}}
}

// run compares every fleetCheckInterval until ctx ends.
func (w *fleetWatch) run(ctx context.Context, led *ledger.Ledger, log *zap.Logger) {
	w.check(ctx, led, log)
	every(ctx, fleetCheckInterval, func() { w.check(ctx, led, log) })
}

// check shares this replica's fingerprint and compares it with the
// others'; it logs when the set of differing replicas changes. A store
// that does not answer changes nothing (its own errors are said elsewhere).
func (w *fleetWatch) check(ctx context.Context, led *ledger.Ledger, log *zap.Logger) {
	fp, build := w.fp(), version.String()
	c, cancel := context.WithTimeout(ctx, fleetCheckInterval)
	// The build beside the fingerprint: replicas of two builds differ
	// while a rollout lasts (the shipped library and catalog defaults are
	// the build's), which the log then says rather than "deploy one
	// config" (the upgrade probe). A replica of an older build shares the
	// fingerprint alone.
	others, err := led.ShareFingerprint(c, w.replica, fp+"@"+build, fleetFresh)
	cancel()
	if err != nil {
		return // Redis down, or not there (run is started only with it)
	}
	differ, builds := []string{}, false
	for r, o := range others {
		ofp, ob := o, ""
		if i := strings.LastIndexByte(o, '@'); i >= 0 {
			ofp, ob = o[:i], o[i+1:]
		}
		if ofp == fp {
			continue
		}
		if ob != build {
			builds = true
			if ob == "" {
				ob = "older"
			}
			ofp += ", build " + ob
		}
		differ = append(differ, r+" ("+ofp+")")
	}
	slices.Sort(differ)
	w.state.Store(&FleetStatus{Fingerprint: fp, Replica: w.replica, Replicas: len(others) + 1, Differ: differ, CheckedAt: time.Now().UTC()})
	said := strings.Join(differ, ", ")
	switch {
	case said == w.said:
	case said != "" && builds:
		log.Warn("replicas of this fleet run other builds and decide by other fingerprints: a build's shipped policy library and catalog defaults are part of it, so this lasts while a rollout does; if it outlasts one, deploy one build and one config to every replica (docs/deploy.md)",
			zap.String("fingerprint", fp), zap.String("build", build), zap.String("replica", w.replica), zap.Strings("differ", differ))
	case said != "":
		log.Error("replicas of this fleet decide by different configs or policies: prices, budgets and routing differ between them, and a budget they share can be overspent; deploy one config to every replica (docs/deploy.md)",
			zap.String("fingerprint", fp), zap.String("replica", w.replica), zap.Strings("differ", differ))
	default:
		log.Info("the fleet's replicas decide by one config again", zap.String("fingerprint", fp))
	}
	w.said = said
}
