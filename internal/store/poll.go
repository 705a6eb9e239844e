package store

import (
	"context"
	"errors"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Poll calls refresh every interval (state.refresh_interval: at most
// config.MaxRefreshInterval, so a change reaches every replica within a
// second) until ctx ends. Each call gets twice the interval plus a second;
// its errors are the caller's to log (a table keeps serving what it has).
// The in-memory tables of store-backed components (keys, route versions)
// run on it.
func Poll(ctx context.Context, every time.Duration, refresh func(context.Context) error) {
	if every <= 0 || every > config.MaxRefreshInterval {
		every = config.DefaultRefreshInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, 2*every+time.Second)
			err := refresh(rctx)
			cancel()
			if errors.Is(err, context.Canceled) {
				return
			}
		}
	}
}
