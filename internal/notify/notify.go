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
	// Replica says which stellwerk saw it (each replica tells once per
	// budget, subject, kind and period).
	Replica string `json:"replica,omitempty"`
}

// Webhook posts events to one URL.
type Webhook struct {
	url     string
	secret  []byte
	client  *http.Client
	log     *zap.Logger
	replica string
	queue   chan Event
	dropped atomic.Int64

	mu   sync.Mutex
	sent map[string]time.Time // dedupe key → until when it stays told
	done chan struct{}
}

// queueSize bounds the events waiting to be posted.
const queueSize = 256

// New starts a webhook poster; Close stops it. secret may be empty.
func New(url string, secret []byte, replica string, log *zap.Logger) *Webhook {
	w := &Webhook{url: url, secret: secret, replica: replica, log: log,
		client: &http.Client{Timeout: 5 * time.Second},
		queue:  make(chan Event, queueSize), sent: map[string]time.Time{}, done: make(chan struct{})}
	go w.run()
	return w
}

// Tell queues ev unless this replica already told it for the budget's
// current period (until resets; a total budget is told once), and reports
// whether it is new. It never blocks.
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
		w.post(ev)
	}
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
