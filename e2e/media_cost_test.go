package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestEstimatedCostCountsImages: through Envoy, a request's estimated
// cost on each model counts its images at that model's image_tokens and
// each page of an inline PDF at 1,500 tokens and an image: a max_cost its
// text fits but its twenty images do not refuses the model whose images
// are dear, or the request when no model's fit; the cost objective sends
// images and PDFs to the model whose images are cheaper though its text is
// dearer; the routing object's estimated_cost_eur counts them. Each
// decision replays identical. The estimate counted the text alone: every
// such request went to text-cheap, or passed a cap it exceeded fiftyfold.
func TestEstimatedCostCountsImages(t *testing.T) {
	t.Parallel()
	// In the EU, where the shipped policy keeps content no detector reads.
	// text-cheap: 1 EUR per million input tokens, an image 2,700 tokens
	// (the default bound), 0.0027 EUR; images-cheap: 2 EUR, an image 100
	// tokens, 0.0002 EUR. Output costs nothing.
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "t", Key: "sk-t", Residency: "eu"}, {Name: "i", Key: "sk-i", Residency: "eu"}},
		Models: []config.Model{
			{ID: "text-cheap", Provider: "t", ContextWindow: 128000, Price: config.Price{InputPerMTok: 1},
				Quality: map[string]float64{"default": 0.9}, Capabilities: []string{"vision", "files", "streaming"}},
			{ID: "images-cheap", Provider: "i", ContextWindow: 128000, ImageTokens: 100, Price: config.Price{InputPerMTok: 2},
				Quality: map[string]float64{"default": 0.6}, Capabilities: []string{"vision", "files", "streaming"}},
		},
		Mutate: func(c *config.Config) {
			c.Currency.USDToEUR = 1
			c.Routing.DefaultModel = "text-cheap"
			c.Routing.BaselineModel = "text-cheap"
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default"})
		},
	})
	image := `,{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}}`
	pdf := func(pages int) string {
		return `,{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,` + pdfPages(pages) + `"}}`
	}
	chat := func(policy, media string) string {
		return `{"model":"auto","max_tokens":10,"policy":` + policy + `,"messages":[{"role":"user","content":[{"type":"text","text":"What is in these?"}` + media + `]}]}`
	}
	var decisions []string // to replay
	for name, tc := range map[string]struct {
		body  string
		model string  // served by, or "" for a refusal
		media float64 // the served model's images and pages in EUR, which its estimate counts
		code  string  // the refusal's status and code
		says  string  // in its message
	}{
		"text, cost":              {body: chat(`{"optimize":"cost"}`, ""), model: "text-cheap"},
		"twenty images, cost":     {body: chat(`{"optimize":"cost"}`, strings.Repeat(image, 20)), model: "images-cheap", media: 20 * 100 * 2e-6},
		"a 3-page pdf, cost":      {body: chat(`{"optimize":"cost"}`, pdf(3)), model: "images-cheap", media: 3 * 1600 * 2e-6},
		"twenty images, max_cost": {body: chat(`{"optimize":"accuracy","max_cost":0.01}`, strings.Repeat(image, 20)), model: "images-cheap", media: 20 * 100 * 2e-6},
		"text, max_cost":          {body: chat(`{"optimize":"accuracy","max_cost":0.01}`, ""), model: "text-cheap"},
		"twenty images, too dear": {body: chat(`{"max_cost":0.001}`, strings.Repeat(image, 20)), code: "503 no_eligible_model", says: "cost: estimated 0.0540"},
		"pinned over its max_cost": {body: strings.Replace(chat(`{"max_cost":0.01}`, strings.Repeat(image, 20)), `"auto"`, `"text-cheap"`, 1),
			code: "400 model_unsuitable", says: "cost: estimated 0.0540"},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(s.Providers["t"].Requests()) + len(s.Providers["i"].Requests())
			resp, b := post(t, s.URL+"/v1/chat/completions", tc.body, nil)
			decisions = append(decisions, resp.Header.Get("x-stellwerk-decision-id"))
			sent := len(s.Providers["t"].Requests()) + len(s.Providers["i"].Requests()) - before
			if tc.model == "" {
				e := decodeError(t, b).Error
				if got := fmt.Sprint(resp.StatusCode, " ", e.Code); got != tc.code || !strings.Contains(e.Message, tc.says) || sent != 0 {
					t.Fatalf("%s (%d sent): %s; want %s saying %q, nothing sent", got, sent, e.Message, tc.code, tc.says)
				}
				return
			}
			if m := resp.Header.Get("x-stellwerk-model"); resp.StatusCode != 200 || m != tc.model {
				t.Fatalf("%d %s (%s): %s", resp.StatusCode, m, resp.Header.Get("x-stellwerk-reason"), b)
			}
			var out struct {
				Routing struct {
					EstimatedEUR float64 `json:"estimated_cost_eur"`
				} `json:"routing"`
			}
			mustJSON(t, b, &out)
			// The text is a few hundred tokens at most: 0.001 EUR.
			if est := out.Routing.EstimatedEUR; est < tc.media || est > tc.media+0.001 {
				t.Errorf("estimated_cost_eur %g, want its media's %g and its text", est, tc.media)
			}
		})
	}
	s.Stop("stellwerk")
	for _, id := range decisions {
		if out, code := replayCLI(t, filepath.Join(s.Dir, "stellwerk.yaml"), id); code != 0 || !out.Identical {
			t.Errorf("replay %s: exit %d %+v", id, code, out)
		}
	}
}
