package e2e

import (
	"os"
	"testing"

	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestMain stops the PostgreSQL server the fleet tests share once every
// test has run.
func TestMain(m *testing.M) { os.Exit(testsrv.Main(m)) }
