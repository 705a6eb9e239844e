package mockllm

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
)

// Quirks are what OpenAI-compatible servers send that OpenAI does not
// (x-mock-quirk, Behavior.Quirk), on an answer the mock otherwise writes
// as usual:
//
//	gzip          compress the answer (Content-Encoding: gzip) unless the
//	              request's Accept-Encoding is identity only, as a CDN or
//	              an egress proxy in front of a provider does
//	gzip-always   compress it whatever the request accepts
//	bom           a UTF-8 byte-order mark before a JSON answer
//	mixed-case    the Content-Type in mixed case (Application/JSON,
//	              Text/Event-Stream; charset=utf-8)
//	no-done       a stream without its final data: [DONE] (older TGI,
//	              llama.cpp servers)
//	error-200     a 200 whose JSON body is an error object
//	rate-headers  the account's rate-limit headers on every answer
//	              (x-ratelimit-*, anthropic-ratelimit-*, retry-after-ms)
//	endless       a hostile one: a chat stream of 1,000-character chunks
//	              without usage and without end, whatever was asked
//	prompt-200k   a hostile one: a chat answer claiming 200,000 prompt
//	              tokens, whatever the prompt
const (
	QuirkGzip        = "gzip"
	QuirkGzipAlways  = "gzip-always"
	QuirkBOM         = "bom"
	QuirkMixedCase   = "mixed-case"
	QuirkNoDone      = "no-done"
	QuirkError200    = "error-200"
	QuirkRate        = "rate-headers"
	QuirkEndless     = "endless"
	QuirkPromptClaim = "prompt-200k"
)

// quirkWriter writes an answer with one quirk.
type quirkWriter struct {
	http.ResponseWriter
	quirk   string
	gz      *gzip.Writer
	started bool
}

func newQuirkWriter(w http.ResponseWriter, r *http.Request, quirk string) http.ResponseWriter {
	switch quirk {
	case QuirkGzip:
		if ae := strings.ToLower(r.Header.Get("Accept-Encoding")); ae == "identity" {
			return w
		}
	case QuirkGzipAlways, QuirkBOM, QuirkMixedCase, QuirkNoDone, QuirkRate:
	default:
		return w
	}
	return &quirkWriter{ResponseWriter: w, quirk: quirk}
}

func (q *quirkWriter) WriteHeader(status int) {
	h := q.Header()
	switch q.quirk {
	case QuirkGzip, QuirkGzipAlways:
		h.Set("Content-Encoding", "gzip")
		h.Del("Content-Length")
		q.gz = gzip.NewWriter(q.ResponseWriter)
	case QuirkMixedCase:
		switch ct := h.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/event-stream"):
			h.Set("Content-Type", "Text/Event-Stream; charset=utf-8")
		case strings.HasPrefix(ct, "application/json"):
			h.Set("Content-Type", "Application/JSON")
		}
	case QuirkBOM:
		h.Del("Content-Length")
	case QuirkRate:
		h.Set("X-Ratelimit-Limit-Requests", "5000")
		h.Set("X-Ratelimit-Remaining-Requests", "4999")
		h.Set("Anthropic-Ratelimit-Requests-Remaining", "4999")
		h.Set("Retry-After-Ms", "15000")
	}
	q.ResponseWriter.WriteHeader(status)
}

func (q *quirkWriter) Write(b []byte) (int, error) {
	if !q.started {
		q.started = true
		if q.Header().Get("Content-Type") == "" {
			q.Header().Set("Content-Type", "application/json")
		}
		q.WriteHeader(http.StatusOK)
		if q.quirk == QuirkBOM && strings.HasPrefix(q.Header().Get("Content-Type"), "application/json") {
			if _, err := q.ResponseWriter.Write([]byte("\ufeff")); err != nil {
				return 0, err
			}
		}
	}
	if q.quirk == QuirkNoDone {
		if i := bytes.Index(b, []byte("data: [DONE]")); i >= 0 {
			if _, err := q.ResponseWriter.Write(b[:i]); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	if q.gz != nil {
		return q.gz.Write(b)
	}
	return q.ResponseWriter.Write(b)
}

// Flush sends what was written, compressed as far as it goes.
func (q *quirkWriter) Flush() {
	if q.gz != nil {
		_ = q.gz.Flush()
	}
	if f, ok := q.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// close ends a compressed answer.
func (q *quirkWriter) close() {
	if q.gz != nil {
		_ = q.gz.Close()
	}
}
