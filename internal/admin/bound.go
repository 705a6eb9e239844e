package admin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// Bounds of the admin API's calls to the state store. A call that waits
// longer (a table locked, PostgreSQL stopped or not answering) is answered
// 503 with the endpoint's *_store_unavailable code: the probe's locked
// virtual_keys held GET and POST /admin/keys and GET /admin/audit for 69 s.
var (
	// storeTimeout bounds an endpoint reading or changing a few rows: the
	// time SQLite's busy_timeout already waits for a writer.
	storeTimeout = 5 * time.Second
	// searchTimeout bounds a page of the audit log, a search that may
	// scan (spend reports have spendQueryTimeout).
	searchTimeout = 10 * time.Second
	// providerChangeTimeout bounds PUT /admin/providers/{name}: it reads
	// the provider keys and waits up to 5 s for Envoy to apply the change.
	providerChangeTimeout = 15 * time.Second
	// rotateTimeout bounds POST /admin/provider-keys/rotate-master, one
	// transaction per provider key: cut at 5 s, 624 of 3,000 keys were
	// re-encrypted and the answer said nothing had changed (the red-team
	// probe).
	rotateTimeout = 10 * time.Minute
)

// Nothing the admin API streams reads the store as it writes: a spend
// report (CSV too) is read whole within its bound before the first byte is
// sent, and the live decision stream (live.go) reads no store, so it is not
// bound here and runs as long as its caller stays. The long exports
// (stellwerk audit export) are the CLI's.

// storeSlots is how many admin requests may use the state store at once,
// of the 16 connections PostgreSQL's pool holds (store.OpenPostgres). The
// pool is shared with the audit and spend writers and the key and route
// polls: 20 admin requests waiting on a locked table took all 16, and the
// writers failed for 30 s while their own tables were free (the probe). A
// request beyond these waits for a slot within its bound, then is answered
// 503: the admin API waits, the writers never do. A gate is simpler than a
// second pool, which every component's store would have to be opened on
// twice.
const storeSlots = 4

// storeGate admits at most storeSlots admin requests to the state store.
type storeGate struct{ slots chan struct{} }

func newStoreGate() *storeGate { return &storeGate{slots: make(chan struct{}, storeSlots)} }

// bound runs h with a deadline of d on its context once a slot is free;
// a request that gets no slot within d is answered 503 code. h maps the
// store's own errors (a deadline exceeded among them) to its answer.
func (g *storeGate) bound(code string, d time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The body is read before a slot is taken, within the bound: a
		// caller trickling four bodies a byte at a time held every slot
		// and the admins got 503 as long as it kept on (the red-team
		// probe). A handler reads its copy with its own limit.
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(time.Now().Add(d))
			body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
			if err != nil {
				// The deadline stays: the server would otherwise wait
				// for the rest of the body before it answers.
				w.Header().Set("Connection", "close")
				writeError(w, apierr.Invalid("request_timeout", "", "the request body did not arrive within %v", d))
				return
			}
			_ = rc.SetReadDeadline(time.Time{})
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			e := apierr.Unavailable(code, "the state store is busy with other admin requests; try again")
			e.RetryAfter = 1
			writeError(w, e)
			return
		}
		defer func() { <-g.slots }()
		// And the answer must be taken within its bound and as long
		// again, or the slot is given back: a caller that reads no
		// answer would hold it too.
		_ = rc.SetWriteDeadline(time.Now().Add(2 * d))
		h(w, r.WithContext(ctx))
	}
}

// guard wraps guarded so that each endpoint it registers is bound.
func (g *storeGate) guard(guarded func(string, []string, http.HandlerFunc), code string, d time.Duration) func(string, []string, http.HandlerFunc) {
	return func(pattern string, roles []string, h http.HandlerFunc) {
		guarded(pattern, roles, g.bound(code, d, h))
	}
}
