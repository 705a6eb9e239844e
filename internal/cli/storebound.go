package cli

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// storeTimeout bounds a verb's work with the state store: with PostgreSQL
// stopped (SIGSTOP) `stellwerk keys create` waited with no end, and with a
// table locked as long as the lock was held (the PostgreSQL probe). The
// long reads (audit verify, export and prune) bound only opening the store
// (connecting, reading its schema versions): they may rightly take longer.
var storeTimeout = 30 * time.Second

// boundStore is ctx ending after storeTimeout.
func boundStore(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, storeTimeout)
}

// storeTimedOut says so when err came of ctx's bound passing: the store's
// own error reads "state store unavailable: … context deadline exceeded"
// (or "timeout: …"), which does not say that it was stellwerk that gave up.
func storeTimedOut(ctx context.Context, err error) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("the state store did not answer within %v (PostgreSQL stopped or unreachable, or a table locked): %w", storeTimeout, err)
}
