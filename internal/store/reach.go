package store

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Reach is whether an in-memory table's last refresh reached its store
// (the key table's, the route table's): what Healthy reports, and the log
// lines when the store goes away and comes back, each once.
type Reach struct {
	healthy atomic.Bool
	lastOK  atomic.Int64 // unix nanos of the last successful refresh
	failing bool         // under the table's refresh lock
}

// Refreshed records a refresh's outcome at now. Call it under the lock
// that serialises refreshes; down is logged with the error at the first
// failure, up with generation once the store answers again.
func (r *Reach) Refreshed(err error, now time.Time, log *zap.Logger, down, up string, generation func() int64) {
	if err != nil {
		r.healthy.Store(false)
		if !r.failing && log != nil {
			log.Warn(down, zap.Error(err))
		}
		r.failing = true
		return
	}
	r.healthy.Store(true)
	r.lastOK.Store(now.UnixNano())
	if r.failing && log != nil {
		log.Info(up, zap.Int64("generation", generation()))
	}
	r.failing = false
}

// Healthy reports whether the last refresh reached the store, and when the
// last successful one was.
func (r *Reach) Healthy() (bool, time.Time) {
	return r.healthy.Load(), time.Unix(0, r.lastOK.Load())
}
