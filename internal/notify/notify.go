// Package notify posts budget events to an operator's webhook, off the
// request path: events queue in a bounded channel, one goroutine posts
// them, and a full queue drops (and counts) rather than slowing a request.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/header"
)

// Event is one budget crossing a threshold.
type Event struct {
	Kind    string    `json:"kind"` // budget_warning, budget_exhausted
	Budget  string    `json:"budget"`
	Scope   string    `json:"scope"`
	Subject string    `json:"subject,omitempty"`
	Period  string    `json:"period"`
	Ratio   float64   `json:"ratio"`
	Limit   float64   `json:"limit_eur"`
	Used    float64   `json:"used_eur"`
	Resets  time.Time `json:"resets_at,omitzero"`
	At      time.Time `json:"at"`
	// Replica says which stellwerk told it (of the replicas sharing
	// Claims, the first to see it).
	Replica string `json:"replica,omitempty"`
}

// Claims remembers which events were told beyond this process: Redis
// (ledger.Ledger) for a fleet, the state store (spend.Notices) otherwise.
// Claim marks key until until (zero: for good) and reports whether this
// call was the first to mark it.
type Claims interface {
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// claimTimeout bounds one Claim; an event whose claim fails is posted (a
// receiver may get it twice, but does not miss it).
const claimTimeout = 2 * time.Second

// Webhook posts events to one URL.
type Webhook struct {
	url     string
	secret  []byte
	client  *http.Client
	log     *zap.Logger
	replica string
	claims  Claims // nil: this process alone decides what was told
	queue   chan Event
	dropped atomic.Int64

	mu   sync.Mutex
	sent map[string]time.Time // dedupe key → until when it stays told
	done chan struct{}
}

// queueSize bounds the events waiting to be posted.
const queueSize = 256

// New starts a webhook poster; Close stops it. secret may be empty;
// claims, when set, makes an event told once across the processes that
// share it and across restarts.
func New(url string, secret []byte, replica string, claims Claims, log *zap.Logger) *Webhook {
	w := &Webhook{url: url, secret: secret, replica: replica, claims: claims, log: log,
		client: &http.Client{Timeout: 5 * time.Second},
		queue:  make(chan Event, queueSize), sent: map[string]time.Time{}, done: make(chan struct{})}
	go w.run()
	return w
}

// Tell queues ev unless this process already told it for the budget's
// current period (until resets; a total budget is told once), and reports
// whether it is new here. It never blocks: the poster asks Claims whether
// another replica, or this one before a restart, told it already.
func (w *Webhook) Tell(ev Event) bool {
	if w == nil {
		return false
	}
	key := ev.Kind + "\x00" + ev.Budget + "\x00" + ev.Subject
	now := ev.At
	w.mu.Lock()
	if until, ok := w.sent[key]; ok && (until.IsZero() || now.Before(until)) {
		w.mu.Unlock()
		return false
	}
	w.sent[key] = ev.Resets
	if len(w.sent) > 100_000 { // forget periods that ended
		for k, until := range w.sent {
			if !until.IsZero() && now.After(until) {
				delete(w.sent, k)
			}
		}
	}
	w.mu.Unlock()
	ev.Replica = w.replica
	select {
	case w.queue <- ev:
	default:
		w.dropped.Add(1)
		w.log.Warn("budget webhook queue full; event dropped", zap.String("budget", ev.Budget), zap.String("kind", ev.Kind))
	}
	return true
}

// Dropped counts events a full queue dropped.
func (w *Webhook) Dropped() int64 { return w.dropped.Load() }

// Close posts what is queued (for at most a few seconds) and stops.
func (w *Webhook) Close() {
	if w == nil {
		return
	}
	close(w.queue)
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
	}
}

func (w *Webhook) run() {
	defer close(w.done)
	for ev := range w.queue {
		if w.first(ev) {
			w.post(ev)
		}
	}
}

// first asks Claims whether ev is told here first; without Claims, or when
// they cannot answer, it is.
func (w *Webhook) first(ev Event) bool {
	if w.claims == nil {
		return true
	}
	key := ev.Kind + "/" + ev.Budget + "/" + ev.Subject
	if !ev.Resets.IsZero() {
		key += "/" + strconv.FormatInt(ev.Resets.UnixMilli(), 10)
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	first, err := w.claims.Claim(ctx, key, ev.Resets)
	cancel()
	if err != nil {
		w.log.Warn("budget webhook: cannot tell whether the event was told already; posting it", zap.String("budget", ev.Budget),
			zap.String("kind", ev.Kind), zap.Error(err))
		return true
	}
	return first
}

func (w *Webhook) post(ev Event) {
	body, err := json.Marshal(ev)
	if err != nil {
		return
	}
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "stellwerk-budget-webhook")
		if len(w.secret) > 0 {
			m := hmac.New(sha256.New, w.secret)
			m.Write(body)
			req.Header.Set(header.WebhookSignature, "sha256="+hex.EncodeToString(m.Sum(nil)))
		}
		resp, err := w.client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
			err = &statusError{resp.StatusCode}
		}
		// The URL may carry a token: log where, never the whole URL.
		w.log.Warn("budget webhook post failed", zap.String("budget", ev.Budget), zap.Int("attempt", attempt+1), zap.Error(redact(err)))
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + http.StatusText(e.code) }

// redact drops the URL from a client error (it may carry a token).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
