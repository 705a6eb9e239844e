package decision

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
)

// mediaRouter has three vision models whose images are priced apart:
// "dear-text" has the dearer text and cheap images (image_tokens 100),
// "cheap-text" the cheaper text and dear images (the default bound,
// 2,700), "reader" reads files; the baseline is "dear-text".
func mediaRouter(t testing.TB) *Router {
	t.Helper()
	r, _ := libraryRouter(t, `
routing: {default_model: cheap-text, baseline_model: dear-text}
currency: {usd_to_eur: 1}
providers:
  - {name: eu, base_url: "http://127.0.0.1:9001/v1", residency: eu}
models:
  - {id: dear-text, provider: eu, context_window: 128000, image_tokens: 100, capabilities: [vision, streaming], price: {input_per_mtok: 2, output_per_mtok: 2}, quality: {default: 0.7}}
  - {id: cheap-text, provider: eu, context_window: 128000, capabilities: [vision, streaming], price: {input_per_mtok: 1, output_per_mtok: 1}, quality: {default: 0.7}}
  - {id: reader, provider: eu, context_window: 64000, image_tokens: 500, capabilities: [vision, files, streaming], price: {input_per_mtok: 1.5, output_per_mtok: 1.5}, quality: {default: 0.7}}
workspaces:
  - {name: default}
`)
	return r
}

const mediaImage = `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`

// mediaChat is a chat request with the given images and inline PDF (its
// base64, "" for none), and a request policy ("" for none).
func mediaChat(images int, pdf, pol string) string {
	parts := []string{`{"type":"text","text":"describe these"}`}
	for range images {
		parts = append(parts, mediaImage)
	}
	if pdf != "" {
		parts = append(parts, `{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,`+pdf+`"}}`)
	}
	if pol != "" {
		pol = `"policy":` + pol + `,`
	}
	return `{"model":"auto",` + pol + `"max_tokens":100,"messages":[{"role":"user","content":[` + strings.Join(parts, ",") + `]}]}`
}

// pagesPDF is a PDF of n pages PDFPageBound counts, in base64.
func pagesPDF(n int) string {
	var b strings.Builder
	b.WriteString("%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n")
	for i := range n {
		fmt.Fprintf(&b, "%d 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>> endobj\n", 3+i)
	}
	b.WriteString("%%EOF\n")
	return base64.StdEncoding.EncodeToString([]byte(b.String()))
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12+1e-9*math.Abs(b) }

// TestEstimatedCostCountsMedia: each candidate's estimated cost, and the
// baseline's, counts the request's images at that model's image_tokens
// and each inline PDF page at 1,500 tokens and an image, at its input
// price; a PDF whose pages cannot be counted at the model's context
// window; a request without media as its text. The estimate counted the
// text alone.
func TestEstimatedCostCountsMedia(t *testing.T) {
	r := mediaRouter(t)
	for name, tc := range map[string]struct {
		images int
		pdf    string
		media  map[string]int // model → its media tokens
	}{
		"text only":   {media: map[string]int{"dear-text": 0, "cheap-text": 0, "reader": 0}},
		"ten images":  {images: 10, media: map[string]int{"dear-text": 1000, "cheap-text": 27000, "reader": 5000}},
		"three pages": {pdf: pagesPDF(3), media: map[string]int{"reader": 3 * (1500 + 500)}},
		"two images, uncounted PDF": {images: 2, pdf: base64.StdEncoding.EncodeToString([]byte("%PDF-1.4\n%%EOF\n")),
			media: map[string]int{"reader": 2*500 + 64000}},
	} {
		t.Run(name, func(t *testing.T) {
			req := Request{Body: []byte(mediaChat(tc.images, tc.pdf, "")), DecisionID: "d", Principal: auth.Principal{Workspace: "default"}}
			res, err := r.Route(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, v := range res.Selection.Table() {
				media, ok := tc.media[v.ID]
				if !ok {
					continue
				}
				seen++
				m, _ := r.Catalog.Lookup(v.ID)
				if want := m.CostEUR(res.Class.InputTokens+media, 100); !near(v.EstimatedCostEUR, want) {
					t.Errorf("%s: estimated %g EUR, want %g (%d media tokens)", v.ID, v.EstimatedCostEUR, want, media)
				}
			}
			if seen != len(tc.media) {
				t.Errorf("%d of %d models in the table: %+v", seen, len(tc.media), res.Selection.Table())
			}
			if media, ok := tc.media["dear-text"]; ok {
				if want := res.Baseline.CostEUR(res.Class.InputTokens+media, 100); !near(res.BaselineCostEUR, want) {
					t.Errorf("baseline: %g EUR, want %g", res.BaselineCostEUR, want)
				}
			}
		})
	}
}

// TestMaxCostCountsImages: a max_cost the text alone fits refuses the
// models whose images push their estimate over it (cheap-text's 0.054
// EUR, reader's 0.015), and the cost objective
// prefers the model whose images are cheaper though its text is dearer.
// Both went to cheap-text, by its text (twenty images: 54,000 tokens,
// 0.054 EUR, on it; 2,000, 0.004 EUR, on dear-text).
func TestMaxCostCountsImages(t *testing.T) {
	r := mediaRouter(t)
	for name, tc := range map[string]struct {
		images int
		pol    string
		want   string
		avoid  []string // rejected for their cost
	}{
		"cost, text only":          {pol: `{"optimize":"cost"}`, want: "cheap-text"},
		"cost, twenty images":      {images: 20, pol: `{"optimize":"cost"}`, want: "dear-text"},
		"max_cost, twenty images":  {images: 20, pol: `{"optimize":"accuracy","max_cost":0.01}`, want: "dear-text", avoid: []string{"cheap-text", "reader"}},
		"max_cost, text only fits": {pol: `{"optimize":"accuracy","max_cost":0.01}`},
	} {
		t.Run(name, func(t *testing.T) {
			req := Request{Body: []byte(mediaChat(tc.images, "", tc.pol)), DecisionID: "d", Principal: auth.Principal{Workspace: "default"}}
			res, err := r.Route(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && res.Selection.Model.ID != tc.want {
				t.Errorf("chose %s, want %s: %s", res.Selection.Model.ID, tc.want, res.Selection.Reason)
			}
			for _, v := range res.Selection.Table() {
				over := v.Verdict == "rejected" && strings.HasPrefix(v.Reason, "cost:")
				switch {
				case slices.Contains(tc.avoid, v.ID) && !over:
					t.Errorf("%s: %s %q, want rejected for its cost (%g EUR)", v.ID, v.Verdict, v.Reason, v.EstimatedCostEUR)
				case !slices.Contains(tc.avoid, v.ID) && over:
					t.Errorf("%s rejected: %s", v.ID, v.Reason)
				}
			}
		})
	}
}

// TestReplayOfVersion5CountsNoMedia: a record of inputs version 5, which
// kept no image count, replays as it was decided then: its candidates'
// costs from the text alone, the images on a vision request uncounted.
func TestReplayOfVersion5CountsNoMedia(t *testing.T) {
	r := mediaRouter(t)
	req := Request{Body: []byte(mediaChat(20, "", `{"optimize":"cost"}`)), DecisionID: "d", Principal: auth.Principal{Workspace: "default"}, Record: true}
	res, err := r.Route(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	in := res.ReplayInputs(&req)
	if in.V != InputsVersion || in.Images != 20 || !in.Vision {
		t.Fatalf("recorded v%d, %d images, vision %v", in.V, in.Images, in.Vision)
	}
	old := *in
	old.V, old.Images = 5, 0 // what this build's predecessor wrote
	got, err := r.Replay(context.Background(), &old, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Selection.Model.ID != "cheap-text" {
		t.Errorf("version 5 replayed to %s, want cheap-text (by its text)", got.Selection.Model.ID)
	}
	for _, v := range got.Selection.Table() {
		m, _ := r.Catalog.Lookup(v.ID)
		if want := m.CostEUR(res.Class.InputTokens, 100); !near(v.EstimatedCostEUR, want) {
			t.Errorf("%s: %g EUR, want %g", v.ID, v.EstimatedCostEUR, want)
		}
	}
}
