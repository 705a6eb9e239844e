package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestBudgetHoldsPDFPages: a block budget holds each page of a PDF sent
// inline at what count_tokens counts it (1,500 tokens of text and the
// model's image bound), so a request whose pages cost more than the
// budget has left is refused before anything reaches the provider, and a
// burst of PDF requests is admitted only as far as their pages fit. The
// hold counted the prompt's text only: an attacker's burst of PDFs
// against a 0.002 EUR budget spent 19 times it (docs/budgets.md).
func TestBudgetHoldsPDFPages(t *testing.T) {
	t.Parallel()
	// 10 EUR per million input tokens, output free: a page is 2,500
	// tokens (image_tokens 1,000), 0.025 EUR.
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p", Residency: "eu"}},
		Models: []config.Model{{ID: "reader", Provider: "p", ContextWindow: 128000, ImageTokens: 1000,
			Price:        config.Price{InputPerMTok: 10, OutputPerMTok: 0},
			Capabilities: []string{"vision", "files", "streaming"}}},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Routing.DefaultModel = "reader"
			c.Auth.Mode = "keys"
			c.Workspaces = []config.Workspace{{Name: "default"}}
			c.Keys = []config.Key{{ID: "app", SHA256: auth.Hash("sk-app"), Workspace: "default"}}
			c.Budgets.Limits = []config.BudgetRule{{Name: "pdf-block", Scope: "workspace", Subject: "default", AmountEUR: 0.2, Period: "day"}}
		},
	})
	p := s.Providers["p"]
	pdf := func(pages int) string {
		var b strings.Builder
		b.WriteString("%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n")
		for i := range pages {
			fmt.Fprintf(&b, "%d 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>> endobj\n", 3+i)
		}
		b.WriteString("%%EOF\n")
		return base64.StdEncoding.EncodeToString([]byte(b.String()))
	}
	chat := func(content string) string {
		return `{"model":"reader","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"Summarise this"}` + content + `]}]}`
	}
	file := func(pages int) string {
		return `,{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,` + pdf(pages) + `"}}`
	}
	send := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-app")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, b := send(chat("")); code != 200 {
		t.Fatalf("a text request: %d %s", code, b)
	}
	// Ten pages hold 0.25 EUR, more than the whole budget.
	if code, b := send(chat(file(10))); code != 429 || decodeError(t, []byte(b)).Error.Code != "budget_exceeded" {
		t.Errorf("a 10-page PDF against a 0.2 EUR budget: %d %s; want 429 budget_exceeded", code, b)
	}
	before := len(p.Requests())
	if before != 1 {
		t.Errorf("the provider got %d requests; want the text request's only", before)
	}

	// A burst of two-page PDFs, each holding 0.05 EUR and a little text,
	// all in flight at once: three fit what the text request left of
	// 0.2 EUR, the fourth does not.
	p.SetBehavior(mockllm.Behavior{FirstByteDelay: 1500 * time.Millisecond})
	const burst = 12
	codes := make([]int, burst)
	bodies := make([]string, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i] = send(chat(file(2)))
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for i, c := range codes {
		switch {
		case c == 200:
			ok++
		case c == 429 && strings.Contains(bodies[i], "budget_exceeded"):
			refused++
		default:
			t.Errorf("status %d: %s", c, bodies[i])
		}
	}
	if sent := len(p.Requests()) - before; ok != 3 || refused != burst-3 || sent != 3 {
		t.Errorf("%d answered, %d refused, the provider got %d; want 3, %d, 3: the pages' worst case (0.05 EUR a request) is over the 0.2 EUR budget past three",
			ok, refused, sent, burst-3)
	}
}
