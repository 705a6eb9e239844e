package e2e

import (
	"cmp"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestAudioAndFilesGoWhereTheyAreRead: through Envoy, a request with
// audio goes only to a model whose catalog lists audio, one with a PDF
// only to one that lists files, one with a file by id only to a provider
// serving OpenAI's API natively, which stores it; failover keeps to them;
// a pinned model that cannot read it is a 400 naming what it lacks, and no
// provider sees the request; a PDF reaches an Anthropic model as a
// document block. Until 2026-12-07 each went to the cheapest
// model, text-only or not (the multimodal probe). Each decision replays as
// it was made.
func TestAudioAndFilesGoWhereTheyAreRead(t *testing.T) {
	t.Parallel()
	// Everything in the EU, where the shipped policy keeps content no
	// detector reads; but "us-native", cheaper, which a file by id must
	// not reach.
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{
			{Name: "text", Key: "sk-t", Residency: "eu"}, {Name: "hear", Key: "sk-h", Residency: "eu"},
			{Name: "hear2", Key: "sk-h2", Residency: "eu"}, {Name: "read", Key: "sk-r", Residency: "eu"},
			{Name: "native", Key: "sk-n", Residency: "eu"}, {Name: "usnative", Key: "sk-u", Residency: "us"},
			{Name: "claude", Key: "sk-ant", Residency: "eu", WireFormat: "anthropic"},
		},
		Models: []config.Model{
			{ID: "text-cheap", Provider: "text", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.01, OutputPerMTok: 0.01},
				Capabilities: []string{"tools", "vision", "json_mode", "streaming"}},
			{ID: "hearer", Provider: "hear", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.1},
				Capabilities: []string{"vision", "audio", "streaming"}},
			{ID: "hearer-dear", Provider: "hear2", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 0.5},
				Capabilities: []string{"vision", "audio", "streaming"}},
			{ID: "reader", Provider: "read", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.2, OutputPerMTok: 0.2},
				Capabilities: []string{"vision", "files", "streaming"}},
			{ID: "claude-reader", Provider: "claude", ContextWindow: 200000, Price: config.Price{InputPerMTok: 0.15, OutputPerMTok: 0.15},
				Capabilities: []string{"vision", "files", "streaming"}},
			{ID: "native-gpt", Provider: "native", ContextWindow: 128000, Price: config.Price{InputPerMTok: 2, OutputPerMTok: 2},
				Capabilities: []string{"vision", "files", "streaming", "chat", "responses"}},
			{ID: "us-native", Provider: "usnative", ContextWindow: 128000, Price: config.Price{InputPerMTok: 1, OutputPerMTok: 1},
				Capabilities: []string{"vision", "files", "streaming", "chat", "responses"}},
		},
		Mutate: func(c *config.Config) {
			c.Routing.DefaultModel = "text-cheap"
			c.Workspaces = append(c.Workspaces, config.Workspace{Name: "default", Objective: "cost"})
		},
	})
	const (
		wav = `{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=","format":"wav"}}`
		// A PDF of one page: one whose pages cannot be counted is
		// estimated at each model's context window, where reader's
		// smaller one is cheaper than claude-reader's.
		pdf  = `{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQKMSAwIG9iaiA8PC9UeXBlIC9DYXRhbG9nIC9QYWdlcyAyIDAgUj4+IGVuZG9iagozIDAgb2JqIDw8L1R5cGUgL1BhZ2UgL1BhcmVudCAyIDAgUiAvTWVkaWFCb3ggWzAgMCA2MTIgNzkyXT4+IGVuZG9iagolJUVPRgo="}}`
		byID = `{"type":"file","file":{"file_id":"file-abc123"}}`
	)
	chat := func(model, part string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":[{"type":"text","text":"Transcribe this recording"},` + part + `]}]}`
	}
	reset := func() {
		for _, p := range s.Providers {
			p.Reset()
		}
	}
	var decisions []string // to replay
	for name, tc := range map[string]struct {
		path, body string
		model      string // served by, or "" for an error
		status     int
		says       string
		got        string // in the body the provider got
	}{
		"audio, auto":                 {body: chat("auto", wav), model: "hearer"},
		"pdf, auto":                   {body: chat("auto", pdf), model: "claude-reader", got: `"type":"document"`}, // the PDF as a document block
		"pdf, pinned reader":          {body: chat("reader", pdf), model: "reader", got: `"file_data":"data:application/pdf`},
		"file by id, auto":            {body: chat("auto", byID), model: "native-gpt"}, // in the EU, not us-native
		"responses input_file, auto":  {path: "/v1/responses", model: "native-gpt", body: `{"model":"auto","input":[{"role":"user","content":[{"type":"input_text","text":"Summarise"},{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQKJSVFT0YK"}]}]}`},
		"text, auto":                  {body: `{"model":"auto","messages":[{"role":"user","content":"Say hello."}]}`, model: "text-cheap"},
		"audio, pinned text-only":     {body: chat("text-cheap", wav), status: 400, says: "capability: the request contains audio"},
		"pdf, pinned text-only":       {body: chat("text-cheap", pdf), status: 400, says: "capability: the request contains files"},
		"pdf, pinned audio model":     {body: chat("hearer", pdf), status: 400, says: "capability: the request contains files"},
		"file by id, pinned reader":   {body: chat("reader", byID), status: 400, says: "a file by file_id is stored at the provider it was uploaded to"},
		"audio and pdf: none of them": {body: `{"model":"auto","messages":[{"role":"user","content":[` + wav + `,` + pdf + `]}]}`, status: 503, says: "capability: the request contains"},
	} {
		t.Run(name, func(t *testing.T) {
			reset()
			resp, b := post(t, s.URL+cmp.Or(tc.path, "/v1/chat/completions"), tc.body, nil)
			decisions = append(decisions, resp.Header.Get("x-stellwerk-decision-id"))
			if tc.model == "" {
				e := decodeError(t, b).Error
				code := map[int]string{400: "model_unsuitable", 503: "no_eligible_model"}[tc.status]
				if resp.StatusCode != tc.status || e.Code != code || !strings.Contains(e.Message, tc.says) {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				for pn, p := range s.Providers {
					if n := len(p.Requests()); n != 0 {
						t.Errorf("%s received %d requests", pn, n)
					}
				}
				return
			}
			if m := resp.Header.Get("x-stellwerk-model"); resp.StatusCode != 200 || m != tc.model {
				t.Fatalf("%d %s: %s", resp.StatusCode, m, b)
			}
			if tc.got != "" {
				p := s.Providers[resp.Header.Get("x-stellwerk-provider")]
				if p == nil || len(p.Requests()) != 1 || !strings.Contains(string(p.Requests()[0].Body), tc.got) {
					t.Errorf("the provider did not get %s", tc.got)
				}
			}
		})
	}
	// A provider that fails: the request fails over to the other model
	// that hears, never to the cheaper one that does not.
	reset()
	s.Providers["hear"].SetBehavior(mockllm.Behavior{Status: 503})
	resp, b := post(t, s.URL+"/v1/chat/completions", chat("auto", wav), nil)
	decisions = append(decisions, resp.Header.Get("x-stellwerk-decision-id"))
	if m := resp.Header.Get("x-stellwerk-model"); resp.StatusCode != 200 || m != "hearer-dear" || len(s.Providers["text"].Requests()) != 0 {
		t.Errorf("failover: %d %s (text got %d): %s", resp.StatusCode, m, len(s.Providers["text"].Requests()), b)
	} else if body := string(s.Providers["hear2"].Requests()[0].Body); !strings.Contains(body, `"input_audio"`) {
		t.Errorf("the audio did not reach the fallback: %s", body)
	}
	s.Providers["hear"].SetBehavior(mockllm.Behavior{})

	s.Stop("stellwerk")
	for _, id := range decisions {
		if out, code := replayCLI(t, filepath.Join(s.Dir, "stellwerk.yaml"), id); code != 0 || !out.Identical {
			t.Errorf("replay %s: exit %d %+v", id, code, out)
		}
	}
}
