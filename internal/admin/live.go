package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/live"
)

// LiveService is what the console's live endpoints need of the server: the
// decision hub the edge publishes to, and where Envoy's listener is.
type LiveService interface {
	Live() *live.Hub
	EnvoyListener() string
}

// tryers may send a request through Envoy from the console: it spends
// money at a provider.
var tryers = []string{config.RoleOperator, config.RoleAdmin}

// heartbeat keeps an idle stream open through proxies, lets the server
// notice a watcher that went away, and is when the watcher's token is
// checked again (a variable for the tests).
var heartbeat = 15 * time.Second

// stalled is how long one write to a watcher may take.
const stalled = 30 * time.Second

// maxTryBytes bounds the body POST /admin/try forwards.
const maxTryBytes = 1 << 20

func registerLive(guarded func(string, []string, http.HandlerFunc), ls LiveService, admitted func(*http.Request) bool, log *zap.Logger) {
	guarded("GET /admin/decisions/stream", readers, streamDecisions(ls.Live(), admitted))
	guarded("POST /admin/try", tryers, tryRequest(ls, log))
}

// streamDecisions answers server-sent events: one "decision" event per
// finished chat request (the audit record without body, replay inputs or
// content), a "dropped" event when this watcher's buffer overflowed, and a
// comment every heartbeat. At each heartbeat the caller's token must still
// be admitted: a token removed from the config ends its open streams within
// a heartbeat.
func streamDecisions(hub *live.Hub, admitted func(*http.Request) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fl, ok := w.(http.Flusher)
		if !ok {
			writeError(w, apierr.Internal())
			return
		}
		sub := hub.Subscribe()
		defer sub.Close()
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "event: hello\ndata: {\"watchers\":"+strconv.FormatInt(hub.Watchers(), 10)+"}\n\n")
		fl.Flush()
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		// A watcher that takes nothing for this long (a stalled network, a
		// suspended laptop) is let go rather than held by a blocked write.
		rc := http.NewResponseController(w)
		var told int64
		var buf []byte
		for {
			_ = rc.SetWriteDeadline(time.Now().Add(stalled))
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if !admitted(r) {
					_, _ = io.WriteString(w, "event: end\ndata: {\"reason\":\"the admin token is no longer valid\"}\n\n")
					return
				}
				if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
					return
				}
			case rec := <-sub.C:
				b, err := json.Marshal(rec)
				if err != nil {
					continue
				}
				buf = append(buf[:0], "event: decision\nid: "...)
				buf = append(buf, rec.ID...)
				buf = append(buf, "\ndata: "...)
				buf = append(buf, b...)
				buf = append(buf, "\n\n"...)
				if d := sub.Dropped(); d != told {
					told = d
					buf = append(buf, "event: dropped\ndata: {\"dropped\":"...)
					buf = strconv.AppendInt(buf, d, 10)
					buf = append(buf, "}\n\n"...)
				}
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
			fl.Flush()
		}
	}
}

// tryRequest forwards a chat request from the console to Envoy's listener,
// exactly as a client would send it: with the virtual key the user typed
// (header.TryKey) as its bearer token, never the admin token. The admin
// token only decides who may use the console to spend; what the request
// may do is the key's and the policy's to say, as for any client. The
// answer (status, x-stellwerk-* headers, body, streamed or not) comes back
// unchanged. The browser cannot call Envoy itself: Envoy's listener sends
// no CORS headers and is often on another host.
func tryRequest(ls LiveService, log *zap.Logger) http.HandlerFunc {
	client := &http.Client{Timeout: 2 * time.Minute}
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTryBytes))
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				writeError(w, apierr.TooLarge(maxTryBytes))
				return
			}
			writeError(w, apierr.Invalid("invalid_body", "", "cannot read the request body"))
			return
		}
		url := "http://" + dialable(ls.EnvoyListener()) + "/v1/chat/completions"
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, url, strings.NewReader(string(body)))
		if err != nil {
			writeError(w, apierr.Internal())
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if k := strings.TrimSpace(r.Header.Get(header.TryKey)); k != "" {
			req.Header.Set("Authorization", "Bearer "+k)
		}
		resp, err := client.Do(req)
		if err != nil {
			log.Warn("try-it request could not reach Envoy's listener", zap.String("listener", ls.EnvoyListener()), zap.Error(err))
			writeError(w, apierr.Upstream("envoy_unreachable", "Envoy's listener (envoy.listener) cannot be reached from stellwerk"))
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			lk := strings.ToLower(k)
			if strings.HasPrefix(lk, "x-stellwerk-") || lk == "content-type" || lk == "retry-after" {
				w.Header()[k] = vs
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(resp.StatusCode)
		fl, _ := w.(http.Flusher)
		b := make([]byte, 16<<10)
		for {
			n, err := resp.Body.Read(b)
			if n > 0 {
				if _, werr := w.Write(b[:n]); werr != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
			}
			if err != nil {
				return
			}
		}
	}
}

// dialable turns a listen address into one to connect to: a wildcard host
// (0.0.0.0, ::, none) means this machine.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
