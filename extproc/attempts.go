package extproc

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stellwerk/stellwerk/internal/catalog"
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

// attemptLog collects what egress filters saw, by decision id, for the
// client-facing filter of the same request to report. Across replicas an
// attempt handled elsewhere is reported from the plan alone.
type attemptLog struct {
	mu sync.Mutex
	m  map[string]*attemptEntry
}

type attemptEntry struct {
	at       time.Time
	attempts map[int]attempt // by plan index
}

const attemptTTL = 10 * time.Minute

func (l *attemptLog) record(decisionID string, index int, a attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.m == nil {
		l.m = map[string]*attemptEntry{}
	}
	e := l.m[decisionID]
	if e == nil {
		if len(l.m) > 1024 { // entries whose front filter ran on another replica
			for k, old := range l.m {
				if now.Sub(old.at) > attemptTTL {
					delete(l.m, k)
				}
			}
		}
		e = &attemptEntry{at: now, attempts: map[int]attempt{}}
		l.m[decisionID] = e
	}
	e.attempts[index] = a
}

// take returns and forgets what was recorded for a decision.
func (l *attemptLog) take(decisionID string) map[int]attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[decisionID]
	delete(l.m, decisionID)
	if e == nil {
		return nil
	}
	return e.attempts
}

// attemptsFor reports a request's attempts: count is how many Envoy made
// (x-envoy-attempt-count), served the plan index that answered (-1: none).
// Envoy walks the plan in order, so attempt i went to plan[i].
func attemptsFor(plan []*catalog.Model, count, served, status int, seen map[int]attempt) []attempt {
	count = max(count, served+1, 1)
	count = min(count, len(plan))
	out := make([]attempt, 0, count)
	for i := 0; i < count; i++ {
		a, ok := seen[i]
		if !ok {
			a = attempt{Provider: plan[i].Provider.Name, Model: plan[i].ID, Outcome: "failed",
				Reason: "no answer before the attempt timeout, or the connection failed"}
			if i == count-1 && served < 0 && status > 0 {
				a.Status, a.Reason = status, "status "+strconv.Itoa(status)
			}
		}
		a.Model = plan[i].ID
		if i == served {
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

// failureReason names why an attempt failed, from what its answer said.
func failureReason(status int, flags string) string {
	switch {
	case flags != "" && flags != "-":
		switch {
		case strings.Contains(flags, "UT"):
			return "provider timeout (" + flags + ")"
		case strings.Contains(flags, "UF"), strings.Contains(flags, "UH"):
			return "connection failed (" + flags + ")"
		}
		return "provider unreachable (" + flags + ")"
	case status == 429:
		return "rate limited (429)"
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

// retryable is what Envoy's retry policy resends (xds.retryPolicy).
func retryable(status int) bool { return status == 429 || status >= 500 }
