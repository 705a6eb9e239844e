package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Target is an OpenAI-compatible endpoint the load is sent to.
type Target struct {
	Name    string
	URL     string // base URL without /v1, e.g. http://127.0.0.1:10000
	Headers map[string]string
	Timeout time.Duration // per request
	// Keys, when set, are virtual keys the requests take in turn (request
	// i sends Keys[i mod len] as its bearer token, replacing Headers'):
	// the load of many tenants (Tenants).
	Keys []string

	client *http.Client
	sent   int // requests sent so far: the next one's body (request.body)
}

func newTarget(name, url string, headers map[string]string, timeout time.Duration) *Target {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &Target{Name: name, URL: strings.TrimSuffix(url, "/"), Headers: headers, Timeout: timeout,
		client: &http.Client{Transport: tr}}
}

func (t *Target) close() { t.client.CloseIdleConnections() }

// result is one request. Latencies count from the time the request was due,
// not from when it was sent: if the load generator or the stack stalls, the
// stall is latency, and requests are never skipped to catch up
// (no coordinated omission).
type result struct {
	Total  time.Duration // due → last byte of the body
	TTFB   time.Duration // due → first byte of the body
	Status int
	Err    string
	Route  string // x-stellwerk-provider/x-stellwerk-model, if the answer has them
}

func (r result) ok() bool { return r.Err == "" }

// attack sends requests to t at a constant rate for dur, each one at its
// scheduled time regardless of how many are still in flight (open loop), and
// waits for all of them. It returns how many were sent and how long sending
// took. Each target goes through rq's bodies in the same order, across its
// calls of attack; one target is attacked by one call at a time.
func attack(ctx context.Context, t *Target, rate float64, dur time.Duration, rq request, record func(result)) (int, time.Duration) {
	n := int(math.Round(rate * dur.Seconds()))
	if n < 1 {
		n = 1
	}
	interval := float64(time.Second) / rate
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	start := time.Now()
	sent := 0
loop:
	for i := range n {
		due := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		sent++
		body := rq.body(t.sent)
		key := ""
		if len(t.Keys) > 0 {
			key = t.Keys[t.sent%len(t.Keys)]
		}
		t.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			record(t.doAs(ctx, due, rq, body, key))
		}()
	}
	window := time.Since(start)
	wg.Wait()
	return sent, window
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// do sends one request of rq with body and reads the whole answer.
func (t *Target) do(ctx context.Context, due time.Time, rq request, body []byte) result {
	return t.doAs(ctx, due, rq, body, "")
}

// doAs is do with key as the bearer token, unless key is "".
func (t *Target) doAs(ctx context.Context, due time.Time, rq request, body []byte, key string) result {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	stream := rq.stream
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+rq.path, bytes.NewReader(body))
	if err != nil {
		return result{Err: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range rq.headers {
		req.Header.Set(k, v)
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rq.keyIn != "" {
		if key, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
			req.Header.Del("Authorization")
			req.Header.Set(rq.keyIn, key)
		}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return result{Err: shortErr(err)}
	}
	defer resp.Body.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var r result
	r.Status = resp.StatusCode
	if m := resp.Header.Get("x-stellwerk-model"); m != "" {
		r.Route = resp.Header.Get("x-stellwerk-provider") + "/" + m
	}
	var tail []byte // the last bytes: what does an error say
	ended := false  // a stream's end (rq.end) came
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if r.TTFB == 0 {
				r.TTFB = time.Since(due)
			}
			if stream || resp.StatusCode != http.StatusOK {
				tail = append(tail, buf[:n]...)
				// The end may follow a large event (response.completed
				// carries the whole response): look before trimming.
				ended = ended || stream && bytes.Contains(tail, rq.end)
				if len(tail) > 256 {
					tail = tail[len(tail)-256:]
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.Err = shortErr(err)
			return r
		}
	}
	r.Total = time.Since(due)
	switch {
	case resp.StatusCode != http.StatusOK:
		r.Err = fmt.Sprintf("status %d", resp.StatusCode)
		if i := bytes.Index(tail, []byte(`"code":"`)); i >= 0 { // the OpenAI error code, so failures group by cause
			code := tail[i+len(`"code":"`):]
			if j := bytes.IndexByte(code, '"'); j > 0 {
				r.Err += " " + string(code[:j])
			}
		} else if len(tail) > 0 { // not stellwerk's answer: Envoy's own reply
			r.Err += ": " + strings.TrimSpace(string(tail[:min(len(tail), 80)]))
		}
	case stream && !ended:
		r.Err = "stream ended without " + string(rq.end)
	}
	return r
}

// shortErr drops the URL from client errors so they group when counted.
func shortErr(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return err.Error()
}
