package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/store"
)

// deployedRoutes is config check's reading of the deployed routes: it
// says what a route whose file does not load keeps serving (its live
// version, when that loads under the config; it warned "its route keeps
// its live version" also when the live version was the same text and
// failed the same way: the routes probe), and which live versions would
// not load under the config. The store is read only when it exists
// (config check makes none), and opened once.
type deployedRoutes struct {
	cfg *config.Config
	env *flow.Env

	opened bool
	st     *flowstore.Store
	db     *store.DB
	err    error // why the store was not read
}

func (l *deployedRoutes) close() {
	if l.db != nil {
		l.db.Close()
	}
}

func (l *deployedRoutes) store(ctx context.Context) (*flowstore.Store, error) {
	if l.opened {
		return l.st, l.err
	}
	l.opened = true
	if l.err = storeExists(l.cfg.State); l.err != nil {
		return nil, l.err
	}
	db, err := store.Open(ctx, l.cfg.State, os.Getenv)
	if err != nil {
		l.err = err
		return nil, err
	}
	l.db = db
	l.st, l.err = flowstore.Open(ctx, db)
	return l.st, l.err
}

// warning is config check's line for a route file that does not load.
func (l *deployedRoutes) warning(ctx context.Context, f flowstore.File) string {
	route := strings.TrimSuffix(f.Name, filepath.Ext(f.Name))
	st, err := l.store(ctx)
	if err != nil {
		return fmt.Sprintf("route file does not load (its route keeps its live version, if it has one that loads: the state store was not read: %v): %v", err, f.Err)
	}
	v, err := st.Get(ctx, route, 0)
	switch {
	case errors.Is(err, flowstore.ErrNoRoute), errors.Is(err, flowstore.ErrNotDeployed):
		return fmt.Sprintf("route file does not load (route %s has no live version: requests to it get 404 or 503): %v", route, f.Err)
	case err != nil:
		return fmt.Sprintf("route file does not load (its route keeps its live version, if it has one that loads: the state store was not read: %v): %v", err, f.Err)
	}
	label := fmt.Sprintf("%s@%d", route, v.Version)
	if lerr := flowstore.Loads(l.env)(v); lerr != nil {
		data, _ := os.ReadFile(f.Path)
		same := "another text, which fails too"
		if flow.Hash(data) == v.Hash {
			same = "the same text"
		}
		return fmt.Sprintf("route file does not load, nor does its route's live version %s (%s; the error below): %v", label, same, f.Err)
	}
	return fmt.Sprintf("route file does not load (its route keeps its live version %s): %v", label, f.Err)
}

// broken are the live route versions that do not load under the config
// (a model they name removed): a running serve refuses such a reload
// (the policy rollout probe found the check passing it). None when the
// store does not exist: it holds no route.
func (l *deployedRoutes) broken(ctx context.Context) ([]error, error) {
	st, err := l.store(ctx)
	if errors.Is(err, errNoStore) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t := flowstore.NewTable(st, l.env, nil)
	if err := t.Refresh(ctx); err != nil {
		return nil, err
	}
	b := t.Broken()
	out := make([]error, 0, len(b))
	for _, name := range slices.Sorted(maps.Keys(b)) {
		e := b[name]
		if re := (*flowstore.ResolveError)(nil); errors.As(e, &re) {
			e = re.Err // it names the route and version itself
		}
		out = append(out, e)
	}
	return out, nil
}
