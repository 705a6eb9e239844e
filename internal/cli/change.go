package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stellwerk/stellwerk/extproc"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

// recordChange puts a change made from the command line on the audit
// record, as the admin API does for its own: written by a writer of its
// own ("cli@<replica>/<boot id>"), so it never contends with a running
// server's chain, opened and closed (signed) around the one record. The
// change is already made: when it cannot be recorded, stderr says so.
func recordChange(ctx context.Context, cfg *config.Config, db *store.DB, kind, workspace string, c audit.Change, stderr io.Writer) {
	if !cfg.Audit.IsEnabled() {
		return
	}
	err := func() error {
		st, err := audit.OpenStore(ctx, db)
		if err != nil {
			return err
		}
		signer, _, err := audit.LoadSigner(cfg.Audit, cfg.State.Dir, os.Getenv)
		if err != nil {
			return err
		}
		o := audit.OptionsFrom(cfg.Audit, cfg.State.Dir)
		o.Replica, o.Spool = "cli@"+replicaName(cfg), false // the store was just written: it is up
		l, err := audit.Open(ctx, st, signer, o, nil)
		if err != nil {
			return err
		}
		l.Record(&audit.Record{Kind: kind, ID: extproc.NewDecisionID(), Workspace: workspace, Change: &c})
		closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return l.Close(closeCtx)
	}()
	if err != nil {
		fmt.Fprintf(stderr, "warning: the change was made but could not be put on the audit record: %v\n", err)
	}
}

// replicaName is the server's writer name (audit.writer, default the host
// name).
func replicaName(cfg *config.Config) string {
	if cfg.Audit.Writer != "" {
		return cfg.Audit.Writer
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
