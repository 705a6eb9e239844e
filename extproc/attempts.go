package extproc

import (
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/health"
)

// encodePlan is the header value: "<decision id>;<model id>,<model id>…".
// Neither kind of id can hold ';' or ',' (config validates model ids), so
// nothing needs escaping.
func encodePlan(decisionID string, plan []*catalog.Model) string {
	n := len(decisionID) + len(plan)
	for _, m := range plan {
		n += len(m.ID)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(decisionID)
	for i, m := range plan {
		if i == 0 {
			b.WriteByte(';')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(m.ID)
	}
	return b.String()
}

// decodePlan reads the header; model ids are resolved against the egress
// filter's own catalog.
func decodePlan(s string) (decisionID string, models []string, ok bool) {
	id, list, found := strings.Cut(s, ";")
	if !found || id == "" || list == "" {
		return "", nil, false
	}
	models = strings.Split(list, ",")
	if slices.Contains(models, "") {
		return "", nil, false
	}
	return id, models, true
}

// attempt is one try of a request on one provider.
type attempt struct {
	Provider  string  `json:"provider"`
	Model     string  `json:"model"`
	Status    int     `json:"status,omitempty"` // 0: no response
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Outcome   string  `json:"outcome"` // served, failed
	Reason    string  `json:"reason,omitempty"`
}

// attemptLog holds what egress streams saw of the attempts of requests
// whose edge stream runs in this process, for the edge to report. The edge
// opens an entry when it sends its request on and closes it when it reads
// the attempts or its stream ends, whichever comes first; an egress stream
// only writes into an open entry. So the log holds at most one entry per
// request in flight here, whatever became of a request (served, failed over,
// every attempt failed, the client went away, the stream broke off), and an
// attempt whose edge stream runs on another replica leaves nothing behind:
// the edge there reports it from the plan alone.
//
// Shards keep concurrent requests from queueing on one mutex.
type attemptLog struct {
	shards [attemptShards]attemptShard
	size   atomic.Int64
	// byRequest names the decision of a request whose first attempt went
	// straight to its provider, by Envoy's request id: the upstream log's
	// entry for that attempt carries no plan (upstreamlog.go).
	byRequest sync.Map
}

// directFirst is a request whose first attempt went straight to its
// provider: its decision and that attempt's model.
type directFirst struct{ decision, model string }

// direct notes a request whose first attempt goes straight to its
// provider, until directDone, and reports whether it did: a request id
// another request in flight has already (an operator's Envoy that keeps
// the client's x-request-id) is left to that one, and this request's
// first attempt is then reported as its provider's, not its own.
func (l *attemptLog) direct(requestID string, d directFirst) bool {
	_, taken := l.byRequest.LoadOrStore(requestID, d)
	return !taken
}

// directDone forgets a request noted by direct.
func (l *attemptLog) directDone(requestID string) { l.byRequest.Delete(requestID) }

// directRequest is a request noted by direct on this replica.
func (l *attemptLog) directRequest(requestID string) (directFirst, bool) {
	v, ok := l.byRequest.Load(requestID)
	if !ok {
		return directFirst{}, false
	}
	return v.(directFirst), true
}

const attemptShards = 32

type attemptShard struct {
	mu sync.Mutex
	m  map[string][]attempt // by decision id; by plan index, Outcome "" when not seen
	_  [48]byte             // a cache line per shard
}

// attemptSeed spreads decision ids over the shards.
var attemptSeed = maphash.MakeSeed()

// attemptEntries counts the entries of every log of the process, for
// /debug/vars on the admin port (AttemptEntriesInProcess).
var attemptEntries atomic.Int64

func (l *attemptLog) shard(decisionID string) *attemptShard {
	return &l.shards[maphash.String(attemptSeed, decisionID)%attemptShards]
}

// open starts collecting the attempts of a plan of n models.
func (l *attemptLog) open(decisionID string, n int) {
	s := l.shard(decisionID)
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string][]attempt{}
	}
	_, had := s.m[decisionID]
	s.m[decisionID] = make([]attempt, n)
	s.mu.Unlock()
	if !had {
		l.size.Add(1)
		attemptEntries.Add(1)
	}
}

// record keeps what an egress stream saw if the request's edge stream is
// waiting for it here; it reports whether it was kept.
func (l *attemptLog) record(decisionID string, index int, a attempt) bool {
	s := l.shard(decisionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[decisionID]
	if !ok || index < 0 || index >= len(e) {
		return false
	}
	e[index] = a
	return true
}

// take returns and forgets what was recorded for a decision (nil if it was
// not open).
func (l *attemptLog) take(decisionID string) []attempt {
	s := l.shard(decisionID)
	s.mu.Lock()
	e, ok := s.m[decisionID]
	if ok {
		delete(s.m, decisionID)
	}
	s.mu.Unlock()
	if ok {
		l.size.Add(-1)
		attemptEntries.Add(-1)
	}
	return e
}

// seen reports whether an attempt of an open entry was recorded.
func (l *attemptLog) seen(decisionID string, index int) bool {
	s := l.shard(decisionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[decisionID]
	return ok && index >= 0 && index < len(e) && e[index].Outcome != ""
}

// overflowed is the model of the last attempt before index whose prompt
// overflowed its context window ("" if none, or the entry is not open here).
func (l *attemptLog) overflowed(decisionID string, index int) string {
	s := l.shard(decisionID)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[decisionID]
	for i := min(index, len(e)) - 1; i >= 0; i-- {
		if e[i].Outcome == outcomeOverflow {
			return e[i].Model
		}
	}
	return ""
}

// Len is the number of open entries.
func (l *attemptLog) Len() int { return int(l.size.Load()) }

// AttemptEntriesInProcess is how many requests' attempt records every
// server of this process holds.
func AttemptEntriesInProcess() int64 { return attemptEntries.Load() }

// AttemptEntries is how many requests' attempt records the server holds:
// at most the requests in flight through it with failover.
func (s *Server) AttemptEntries() int { return s.attempts.Len() }

// openAttempts has this process's egress streams keep what they see of the
// edge stream's attempts, until it reads them or ends.
func (p *edge) openAttempts() {
	p.seen.open(p.id, len(p.plan))
	p.seenOpen = true
}

// takeAttempts returns what egress streams here saw of the edge stream's
// attempts, once, and closes its entry. When the edge rewrote the first
// attempt and Envoy moved on from it, its failure comes from Envoy's
// upstream log (upstreamlog.go), sent when the attempt ended: by the time
// the last attempt answered it has almost always arrived; it is given up
// to firstAttemptWait more before the attempt is reported from the plan
// alone.
func (p *edge) takeAttempts(attemptCount int) []attempt {
	if !p.seenOpen {
		return nil
	}
	if p.rewrote && attemptCount > 1 && !p.seen.seen(p.id, 0) {
		for deadline := time.Now().Add(firstAttemptWait); time.Now().Before(deadline) && !p.seen.seen(p.id, 0); {
			time.Sleep(time.Millisecond)
		}
	}
	p.seenOpen = false
	return p.seen.take(p.id)
}

// firstAttemptWait bounds how long a failed-over answer waits for its first
// attempt's record from the upstream log.
const firstAttemptWait = 25 * time.Millisecond

// attemptsFor reports a request's attempts: count is how many Envoy made
// (x-envoy-attempt-count), served the plan index that answered (-1: none).
// Envoy walks the plan in order, so attempt i went to plan[i].
func attemptsFor(plan []*catalog.Model, count, served, status int, seen []attempt) []attempt {
	count = max(count, served+1, 1)
	count = min(count, len(plan))
	out := make([]attempt, 0, count)
	for i := 0; i < count; i++ {
		var a attempt
		if i < len(seen) {
			a = seen[i]
		}
		if a.Outcome == "" { // not seen here
			a = attempt{Provider: plan[i].Provider.Name, Model: plan[i].ID, Outcome: "failed",
				Reason: "no answer before the attempt timeout, or the connection failed"}
			if i == count-1 && served < 0 && status > 0 {
				a.Status, a.Reason = status, "status "+strconv.Itoa(status)
			}
		}
		a.Model = plan[i].ID
		if i == served && status >= 400 {
			// Its answer went to the client, a 4xx about the request:
			// nothing was served (recordAttempt names it alike).
			a.Outcome, a.Status = "rejected", status
			if a.Reason == "" {
				a.Reason = "status " + strconv.Itoa(status)
			}
		} else if i == served {
			a.Outcome, a.Reason = "served", ""
		} else if a.Outcome == "" || a.Outcome == "served" {
			a.Outcome = "failed"
		}
		out = append(out, a)
	}
	return out
}

// summarizeAttempts is one line for an error message.
func summarizeAttempts(as []attempt) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.Model + " at " + a.Provider + " (" + a.Reason + ")"
	}
	return strings.Join(parts, "; ")
}

// timeoutReason begins the reason of an attempt whose provider did not
// answer in time.
const timeoutReason = "provider timeout"

// modelNotFoundReason is the reason of an attempt whose provider answered
// 404. The provider's words are not quoted: they name the provider's own
// model name, which an auto caller is not told.
const modelNotFoundReason = "the provider does not serve the model (404): check its provider_model"

// failureReason names why an attempt failed, from what its answer said.
func failureReason(status int, flags string) string {
	switch {
	case flags != "" && flags != "-":
		switch {
		case strings.Contains(flags, "UT"):
			return timeoutReason + " (" + flags + ")"
		case strings.Contains(flags, "UF"), strings.Contains(flags, "UH"):
			return "connection failed (" + flags + ")"
		case strings.Contains(flags, "UO"):
			return "the provider's circuit breaker is full (" + flags + "): cluster.circuit_breakers"
		}
		return "provider unreachable (" + flags + ")"
	case status == 429:
		return "rate limited (429)"
	case credentialRefused(status):
		return "the provider refused stellwerk's credential (" + strconv.Itoa(status) + ")"
	case modelNotFound(status):
		return modelNotFoundReason
	default:
		return "status " + strconv.Itoa(status)
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(min(n, maxRetryAfter)) * time.Second
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter*time.Second)
	}
	return 0
}

// maxRetryAfter (seconds) keeps absurd values from overflowing; the
// cooldown is capped far lower by failover.max_cooldown.
const maxRetryAfter = 86400

// attemptTarget is what an attempt on model m used, for the provider's
// health: the workspace's own key when it has one for the provider.
func attemptTarget(st *State, m *catalog.Model, workspace string) health.Target {
	tg := health.Target{Provider: m.Provider.Name, Model: m.ID, PerModel: m.Provider.PerModelLimits}
	if st.workspaceCluster(workspace, m.Provider.Name) != "" {
		tg.Workspace = workspace
	}
	return tg
}

// retryable is what Envoy's retry policy resends (xds.retryPolicy). A
// provider's 401 or 403 is about stellwerk's credential for it (the
// client's key never reaches a provider): the provider's failure, not the
// request's.
func retryable(status int) bool {
	return status == 429 || status >= 500 || credentialRefused(status) || modelNotFound(status)
}

// credentialRefused: the provider refused the credential stellwerk sent.
func credentialRefused(status int) bool { return status == 401 || status == 403 }

// modelNotFound: the provider does not serve the model it was sent (an
// Ollama whose model was not pulled, a vLLM serving another). stellwerk
// chose the path and the model name, so a provider's 404 is its
// configuration's, not the client's: failed over, and the model cooled.
func modelNotFound(status int) bool { return status == 404 }
