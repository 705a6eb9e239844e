package serve

import (
	"slices"
	"testing"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/store"
)

// TestStateFilesNamed: the file the store takes as a sign of earlier
// state is the one the key store writes for an embedded store; the audit
// log's signing key, which a server on PostgreSQL writes too, is none.
func TestStateFilesNamed(t *testing.T) {
	if !slices.Contains(store.StateFiles, keys.HashKeyFile) || slices.Contains(store.StateFiles, audit.KeyFile) {
		t.Errorf("store.StateFiles %v: want %s and not %s", store.StateFiles, keys.HashKeyFile, audit.KeyFile)
	}
}
