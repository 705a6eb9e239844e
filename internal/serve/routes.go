package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/store"
)

// routes are the process's named routes (docs/routes.md): their versions
// in the state store, the table requests resolve them in, and the routes/
// directory beside the config file, synced into the store whenever a file
// in it changes (files auto-deploy).
type routes struct {
	st    *flowstore.Store
	table *flowstore.Table
	dir   string
	log   *zap.Logger

	alog *audit.Log // the changes a file sync makes go on the record (nil: no audit log)

	mu   sync.Mutex
	env  *flow.Env // what route documents compile against: the config in force
	seen string    // hash of routes/ as last synced
}

// routesActor changes routes from files: whoever can write routes/.
const routesActor = "routes-dir"

// openRoutes opens the route store, syncs routes/ into it and loads the
// table. A route file that does not load is logged and skipped; a store
// that cannot be read is an error.
func openRoutes(ctx context.Context, db *store.DB, configPath string, env *flow.Env, alog *audit.Log, log *zap.Logger) (*routes, error) {
	st, err := flowstore.Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	r := &routes{st: st, table: flowstore.NewTable(st, env, log), dir: flowstore.Dir(configPath), log: log, env: env, alog: alog}
	r.sync(ctx)
	if err := r.table.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return r, nil
}

// setEnv recompiles every route against a reloaded config, and syncs the
// files again (one that named a model only now in the catalog loads).
func (r *routes) setEnv(ctx context.Context, env *flow.Env) {
	r.mu.Lock()
	r.env, r.seen = env, ""
	r.mu.Unlock()
	r.table.SetEnv(env)
	r.sync(ctx)
}

// run keeps the table current with the store (deploys and rollbacks from
// any replica) and the store with routes/.
func (r *routes) run(ctx context.Context, every, filesEvery time.Duration) {
	go r.table.Run(ctx, every)
	store.Poll(ctx, filesEvery, func(ctx context.Context) error {
		r.sync(ctx)
		return nil
	})
}

// sync records routes/ in the store when a file in it changed since the
// last sync. Files that do not load are logged (routes list shows them);
// when the store cannot be written, the next tick tries again.
func (r *routes) sync(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := hashDir(r.dir)
	if err != nil {
		r.log.Warn("routes directory cannot be read", zap.String("dir", r.dir), zap.Error(err))
		return
	}
	if h == r.seen {
		return
	}
	res, err := flowstore.SyncDir(ctx, r.st, r.dir, r.env, true)
	for _, s := range res {
		switch {
		case s.Error != "":
			r.log.Error("route file does not load; its route keeps its live version", zap.String("file", s.File), zap.String("error", s.Error))
		case s.Deployed:
			r.log.Info("route file deployed", zap.String("file", s.File), zap.String("route", s.Route), zap.Int64("version", s.Version))
		case s.Stale:
			r.log.Warn("route file is older than the version another replica synced from a newer copy; not deployed (this replica's copy has not caught up)",
				zap.String("file", s.File), zap.String("route", s.Route))
		}
		if a := s.Action(); a != "" {
			recordChange(r.alog, audit.KindRoute, "", audit.RouteChange(routesActor, audit.RouteSwitch{Route: s.Route, Action: a, From: s.From, To: s.Version}))
		}
	}
	if err != nil {
		r.log.Warn("route files not synced: the state store cannot be written; trying again", zap.Error(err))
		return
	}
	r.seen = h
}

// hashDir hashes the names and contents of a directory's route files; a
// missing directory hashes as empty.
func hashDir(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "none", nil
	}
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
