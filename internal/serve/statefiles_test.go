package serve

import (
	"slices"
	"testing"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/store"
)

// TestStateFilesNamed: the files the store takes as signs of earlier state
// are the ones the key store and the audit log write.
func TestStateFilesNamed(t *testing.T) {
	for _, f := range []string{keys.HashKeyFile, audit.KeyFile} {
		if !slices.Contains(store.StateFiles, f) {
			t.Errorf("store.StateFiles %v lacks %s", store.StateFiles, f)
		}
	}
}
