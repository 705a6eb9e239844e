package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestSlowUpload: in the pipelined mode stellwerk holds its answer to the
// request headers until the body is in, and Envoy's message timeout runs
// meanwhile, restarted by every chunk of the body it passes on. A client
// whose body takes several message timeouts to arrive (chunked, with
// pauses) still gets its answer: stellwerk extends the timeout once half
// of it has passed since the last chunk — after every chunk, since Envoy
// restarts it with each (two pauses were a 503 router_unavailable).
func TestSlowUpload(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha-secret"}},
		Models:    []config.Model{{ID: "alpha-small", Provider: "alpha", ContextWindow: 8000}},
		Mutate:    func(c *config.Config) { c.Envoy.ExtProcTimeout = 400 * time.Millisecond },
	})
	host := strings.TrimPrefix(s.URL, "http://")
	body := `{"model":"alpha-small","messages":[{"role":"user","content":"a slow upload, in three parts"}]}`
	for _, pauses := range [][]time.Duration{{0, 0}, {1500 * time.Millisecond, 0}, {1000 * time.Millisecond, 1000 * time.Millisecond}} {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", host)
		third := len(body) / 3
		parts := []string{body[:third], body[third : 2*third], body[2*third:]}
		for i, part := range parts {
			if i > 0 {
				time.Sleep(pauses[i-1])
			}
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(part), part)
		}
		fmt.Fprint(c, "0\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("pauses %v: %v", pauses, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"routing"`) {
			t.Fatalf("pauses %v (message timeout 400ms): status %d: %s", pauses, resp.StatusCode, b)
		}
		reqs := s.Providers["alpha"].Requests()
		if len(reqs) == 0 || !strings.Contains(string(reqs[len(reqs)-1].Body), "a slow upload, in three parts") {
			t.Fatalf("pauses %v: the provider got %v", pauses, reqs)
		}
	}
}
