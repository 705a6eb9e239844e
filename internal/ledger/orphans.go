package ledger

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// maxOrphans bounds the reservations waiting to be given back; past it the
// oldest is forgotten (its hold becomes a charge when its lease ends, as
// before this queue existed), and that is logged.
const maxOrphans = 100_000

// orphanRetry is how often the store is tried again while it does not
// answer.
const orphanRetry = time.Second

// orphans are reservations whose Reserve failed in transit: a timeout after
// Redis ran the script, a connection lost with the reply in it. The store
// may hold such a reservation, and its lease would end in a charge of the
// worst case for a request that was refused, or admitted unchecked and
// charged at Settle. Each is released (nothing charged; an expired one's
// charge replaced by nothing) as soon as the store answers, by one
// goroutine, started with the first.
type orphans struct {
	mu      sync.Mutex
	ids     []string
	dropped int
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

func (o *orphans) add(l *Ledger, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.wake == nil {
		o.wake, o.quit, o.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go o.run(l, o.wake, o.quit, o.done)
	}
	if len(o.ids) >= maxOrphans {
		o.ids = o.ids[1:]
		o.dropped++
	}
	o.ids = append(o.ids, id)
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *orphans) stop() {
	o.mu.Lock()
	quit, done := o.quit, o.done
	o.quit = nil
	o.mu.Unlock()
	if quit != nil {
		close(quit)
		<-done
	}
}

// pending is how many reservations wait to be given back.
func (o *orphans) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids)
}

func (o *orphans) run(l *Ledger, wake, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(orphanRetry)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-wake:
		case <-t.C:
		}
		o.release(l)
	}
}

// release gives back the waiting reservations, oldest first, until the
// store fails to answer.
func (o *orphans) release(l *Ledger) {
	o.mu.Lock()
	ids, dropped := o.ids, o.dropped
	o.ids, o.dropped = nil, 0
	o.mu.Unlock()
	if dropped > 0 {
		l.log.Warn("reservations not given back: too many waited for the state store; their holds are charged when their leases end",
			zap.Int("reservations", dropped))
	}
	done := 0
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := l.backend.settle(ctx, id, l.now().UnixMilli(), l.retain().Milliseconds(), 0, 0, true)
		cancel()
		if err != nil {
			break
		}
		done++
	}
	if done < len(ids) {
		o.mu.Lock()
		o.ids = append(ids[done:len(ids):len(ids)], o.ids...)
		o.mu.Unlock()
	}
	if done > 0 {
		l.log.Info("reservations whose reserve failed in transit given back", zap.Int("reservations", done))
	}
}
