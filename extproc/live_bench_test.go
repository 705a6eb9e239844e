package extproc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/live"
)

// BenchmarkLiveStream is a whole chat request through the edge (the
// shipped 71-model catalog, headers, body, response headers and body,
// then the end of its stream) with no console, with the console's hub and
// nobody watching, and with one watcher. The watcher is what GET
// /admin/decisions/stream does with each decision: it encodes it to JSON,
// on its own goroutine as in the server. No audit log is configured, so
// with a watcher the record is built for the stream alone: the worst case.
func BenchmarkLiveStream(b *testing.B) {
	body := `{"model":"auto","max_tokens":300,"messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`
	msgs := []*extprocv3.ProcessingRequest{
		headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-team"), bodyMsg(body),
		respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":412,"completion_tokens":180}}`, true),
	}
	for _, watchers := range []int{-1, 0, 1} {
		name := map[int]string{-1: "no_console", 0: "0_watchers", 1: "1_watcher"}[watchers]
		b.Run(name, func(b *testing.B) {
			st := productionState(b)
			st.Spend = &rowsRecorder{}
			if watchers >= 0 {
				st.Live = &live.Hub{}
			}
			var seen chan int
			if watchers == 1 {
				sub := st.Live.Subscribe()
				stop := make(chan struct{})
				seen = make(chan int)
				go func() {
					n := 0
					for {
						select {
						case d := <-sub.C:
							if _, err := json.Marshal(d); err != nil {
								panic(err)
							}
							n++
						case <-stop:
							seen <- n
							return
						}
					}
				}()
				b.Cleanup(func() { sub.Close() })
				defer func() {
					close(stop)
					n := <-seen
					b.ReportMetric(float64(sub.Dropped())/float64(b.N), "dropped/op")
					if n == 0 {
						b.Error("the watcher saw no decision")
					}
				}()
			}
			b.ReportAllocs()
			for b.Loop() {
				p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
				for _, m := range msgs {
					if r := p.handle(m); r.GetImmediateResponse() != nil {
						b.Fatalf("refused: %v", r)
					}
				}
				p.finish()
			}
		})
	}
}

// BenchmarkLiveHandOver is only what the end of a request adds for the
// live stream (edge.audit with no audit log): one atomic load with nobody
// watching; with a watcher, the record built, its view copied and sent.
func BenchmarkLiveHandOver(b *testing.B) {
	body := `{"model":"auto","max_tokens":300,"messages":[{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + `"}]}`
	for _, watchers := range []int{0, 1} {
		b.Run(map[int]string{0: "0_watchers", 1: "1_watcher"}[watchers], func(b *testing.B) {
			st := productionState(b)
			st.Spend = &rowsRecorder{}
			st.Live = &live.Hub{}
			if watchers == 1 {
				sub := st.Live.Subscribe()
				stop := make(chan struct{})
				go func() {
					for {
						select {
						case <-sub.C:
						case <-stop:
							return
						}
					}
				}()
				b.Cleanup(func() { close(stop); sub.Close() })
			}
			p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
			for _, m := range []*extprocv3.ProcessingRequest{
				headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-team"), bodyMsg(body),
				respHeadersMsg("200", "application/json"),
				respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":412,"completion_tokens":180}}`, true),
			} {
				p.handle(m)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.audited = false
				p.audit()
			}
		})
	}
}
