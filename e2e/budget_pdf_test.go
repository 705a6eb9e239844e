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

	"github.com/tidwall/gjson"

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
	pdf := pdfPages
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
	// Nor do ten pages written so that a count misses them (the red team:
	// a comment between tokens, a page tree by reference, an octet-stream
	// type with a line before the header), which readers find.
	commented := "%PDF-1.7\n2 0 obj <</Type%c\n/Pages /Kids%c\n[" + strings.Repeat("3 0 R ", 10) + "] /Count%c\n10>> endobj\n" +
		strings.Repeat("3 0 obj <</Type%c\n/Page /Parent 2 0 R>> endobj\n", 10)
	byReference := "%PDF-1.7\n2 0 obj <</Type /Pages /Kids 4 0 R /Count 5 0 R>> endobj\n4 0 obj [" + strings.Repeat("3 0 R ", 10) + "] endobj\n5 0 obj 10 endobj\n"
	for name, fd := range map[string]string{
		"comments":     "data:application/pdf;base64," + base64.StdEncoding.EncodeToString([]byte(commented)),
		"by reference": "data:application/pdf;base64," + base64.StdEncoding.EncodeToString([]byte(byReference)),
		"octet-stream": "data:application/octet-stream;base64," + base64.StdEncoding.EncodeToString([]byte("\n"+commented)),
	} {
		part := `,{"type":"file","file":{"filename":"a.pdf","file_data":"` + fd + `"}}`
		if code, b := send(chat(part)); code != 429 || decodeError(t, []byte(b)).Error.Code != "budget_exceeded" {
			t.Errorf("a 10-page PDF (%s) against a 0.2 EUR budget: %d %s; want 429 budget_exceeded", name, code, b)
		}
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

// TestHostilePDFsAreReadOnce (the fuzzing probe, 2026-12-07): a PDF of
// unterminated object streams was read in quadratic time, by count_tokens
// and since the budgets count pages by every request that sends one: a
// 350 KB file held stellwerk 6 s, about 6 MB of it half an hour, and
// Envoy answered 504 after its message timeout. A PDF of 125,000 empty
// object streams (5 MB) cost 3 s and 15 GB of allocation, a zlib reader
// each (the red team of the fix): the same 503. Each is answered now.
func TestHostilePDFsAreReadOnce(t *testing.T) {
	t.Parallel()
	s := messagesStack(t, nil)
	headers := map[string]string{"Authorization": "Bearer sk-app", "anthropic-version": "2023-06-01"}
	for name, raw := range map[string]string{
		"unterminated object streams": "%PDF-1.7\n" + strings.Repeat("/ObjStm stream\n", 1<<17),
		"empty object streams":        "%PDF-1.7\n" + strings.Repeat("/ObjStm stream\nx\x9c\x03\x00\x00\x00\x00\x01endstream", 125_000),
	} {
		doc := `{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"` + base64.StdEncoding.EncodeToString([]byte(raw)) + `"}}`
		resp, b := post(t, s.URL+"/v1/messages/count_tokens", `{"model":"claude-model","messages":[{"role":"user","content":[`+doc+`,{"type":"text","text":"Summarise"}]}]}`, headers)
		if resp.StatusCode != 200 || gjson.GetBytes(b, "input_tokens").Int() < 1500 {
			t.Errorf("%s, count_tokens: %d %.300s", name, resp.StatusCode, b)
		}
		resp, b = post(t, s.URL+"/v1/messages", `{"model":"claude-model","max_tokens":10,"messages":[{"role":"user","content":[`+doc+`,{"type":"text","text":"Summarise"}]}]}`, headers)
		if resp.StatusCode != 200 || gjson.GetBytes(b, "type").Str != "message" {
			t.Errorf("%s, messages: %d %.300s", name, resp.StatusCode, b)
		}
	}
}

// pdfPages is a PDF of that many pages, base64: each a page object of a
// page tree, as a writer makes them.
func pdfPages(pages int) string {
	var b strings.Builder
	b.WriteString("%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n")
	for i := range pages {
		fmt.Fprintf(&b, "%d 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>> endobj\n", 3+i)
	}
	b.WriteString("%%EOF\n")
	return base64.StdEncoding.EncodeToString([]byte(b.String()))
}
