package serve

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/policy"
)

// versionBodies are the config, the catalog and the quality predictor in
// force as the audit records name them by content: the config as GET
// /config renders it (secrets redacted), the merged providers and models
// with the quality scores they decide with (config.DecodeKept reads both
// back), and the predictor file as it was read (nil: none).
type versionBodies struct {
	audit.Versions
	config, catalog, predictor []byte
}

func versionsOf(cfg *config.Config, ct *catalog.Catalog, predictor []byte) (versionBodies, error) {
	c, err := cfg.YAML()
	if err != nil {
		return versionBodies{}, fmt.Errorf("config version: %w", err)
	}
	// The models as they decide: with the scorecards' quality applied, so
	// a kept catalog needs no scorecard file to replay.
	models := slices.Clone(cfg.Models)
	for i := range models {
		if m, ok := ct.Lookup(models[i].ID); ok {
			models[i].Quality = m.Quality
		}
	}
	cat, err := yaml.Marshal(struct {
		Providers []config.Provider `yaml:"providers"`
		Models    []config.Model    `yaml:"models"`
	}{cfg.Providers, models})
	if err != nil {
		return versionBodies{}, fmt.Errorf("catalog version: %w", err)
	}
	vb := versionBodies{Versions: audit.Versions{Config: audit.ContentHash(c), Catalog: audit.ContentHash(cat)}, config: c, catalog: cat}
	if predictor != nil {
		vb.Predictor, vb.predictor = audit.ContentHash(predictor), predictor
	}
	return vb, nil
}

// keeper keeps every policy, config and catalog version a record can name
// in the audit store, content-addressed, so `stellwerk replay` can decide
// with them months later. A version the store could not take is tried
// again on the next reload tick; until then its records cannot be
// replayed (replay says which version is missing).
type keeper struct {
	st  *audit.Store
	log *zap.Logger

	mu      sync.Mutex
	pending map[string]keptVersion // by hash
}

type keptVersion struct {
	kind string
	body []byte
}

func newKeeper(st *audit.Store, log *zap.Logger) *keeper {
	return &keeper{st: st, log: log, pending: map[string]keptVersion{}}
}

// keepConfig keeps a config's, its catalog's and its predictor's versions.
func (k *keeper) keepConfig(ctx context.Context, v versionBodies) {
	if k == nil {
		return
	}
	k.keep(ctx, audit.VersionConfig, v.Config, v.config)
	k.keep(ctx, audit.VersionCatalog, v.Catalog, v.catalog)
	if v.Predictor != "" {
		k.keep(ctx, audit.VersionPredictor, v.Predictor, v.predictor)
	}
}

// policyLoad is the change record of a policy version put in force:
// before is the version it replaced, and the detail names the modules
// and tests it added, removed and changed, comma-separated. At start
// (before nil) there is no such version in this process: the record names
// the version alone, as before. The record had said the new version
// alone (the probe); `stellwerk policy diff BEFORE AFTER` shows the lines.
func policyLoad(before, e *policy.Engine) audit.Change {
	c := audit.Change{Actor: policyActor, Action: "load", After: e.Version}
	if before == nil {
		return c
	}
	c.Before = before.Version
	ch := e.ChangesFrom(before)
	for k, names := range map[string][]string{"added": ch.Added, "removed": ch.Removed, "changed": ch.Changed} {
		if len(names) > 0 {
			if c.Detail == nil {
				c.Detail = map[string]string{}
			}
			c.Detail[k] = strings.Join(names, ",")
		}
	}
	return c
}

// keepPolicy keeps a policy version's sources.
func (k *keeper) keepPolicy(ctx context.Context, e *policy.Engine) {
	if k == nil {
		return
	}
	b, err := e.Bundle()
	if err != nil {
		k.log.Error("policy version cannot be kept for replay", zap.String("policy_version", e.Version), zap.Error(err))
		return
	}
	k.keep(ctx, audit.VersionPolicy, e.Version, b)
}

func (k *keeper) keep(ctx context.Context, kind, hash string, body []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.st.PutVersion(ctx, kind, hash, body); err != nil {
		k.log.Warn("version not kept yet (audit store unreachable); trying again", zap.String("kind", kind), zap.String("hash", hash), zap.Error(err))
		k.pending[hash] = keptVersion{kind, body}
		return
	}
	delete(k.pending, hash)
}

// retry keeps what could not be kept before.
func (k *keeper) retry(ctx context.Context) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for hash, v := range k.pending {
		if err := k.st.PutVersion(ctx, v.kind, hash, v.body); err != nil {
			return
		}
		delete(k.pending, hash)
		k.log.Info("version kept", zap.String("kind", v.kind), zap.String("hash", hash))
	}
}
