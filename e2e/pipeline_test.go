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
// meanwhile. A client whose body takes several message timeouts to arrive
// (chunked, with a pause) still gets its answer: stellwerk extends that
// message's timeout once half of it has passed.
func TestSlowUpload(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha-secret"}},
		Models:    []config.Model{{ID: "alpha-small", Provider: "alpha", ContextWindow: 8000}},
		Mutate:    func(c *config.Config) { c.Envoy.ExtProcTimeout = 400 * time.Millisecond },
	})
	host := strings.TrimPrefix(s.URL, "http://")
	body := `{"model":"alpha-small","messages":[{"role":"user","content":"a slow upload, in two parts"}]}`
	for _, pause := range []time.Duration{0, 1500 * time.Millisecond} {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", host)
		half := len(body) / 2
		fmt.Fprintf(c, "%x\r\n%s\r\n", half, body[:half])
		time.Sleep(pause)
		fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(body)-half, body[half:])
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("pause %v: %v", pause, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"routing"`) {
			t.Fatalf("pause %v (message timeout 400ms): status %d: %s", pause, resp.StatusCode, b)
		}
		reqs := s.Providers["alpha"].Requests()
		if len(reqs) == 0 || !strings.Contains(string(reqs[len(reqs)-1].Body), "a slow upload, in two parts") {
			t.Fatalf("pause %v: the provider got %v", pause, reqs)
		}
	}
}
