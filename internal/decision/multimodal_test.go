package decision

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// TestAudioAndFilesOnTheShippedCatalog: on the shipped production config,
// a request with audio, a PDF or a file by id is decided, and fails over,
// only to models that read it (the catalog's audio and files, a file by id
// at the provider that stores it), on the chat, Responses and Messages
// APIs; a pinned model that cannot is a 400 naming what it lacks, and
// auto with none left in the EU a 503; a PDF reaches Claude as a document
// block. Until 2026-12-07 each went to the
// cheapest text-only model, ovh/gpt-oss-120b (the multimodal probe).
func TestAudioAndFilesOnTheShippedCatalog(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "examples", "production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Workspaces that let unread content leave the EU: the shipped policy
	// keeps audio and files there, where no shipped model reads them
	// ("legal" below).
	for i := range cfg.Workspaces {
		if cfg.Workspaces[i].Name != "legal" {
			cfg.Workspaces[i].UnreadSensitive = []string{}
		}
	}
	r := routerOver(t, cfg, catalog.Env{Getenv: func(string) string { return "k" }, ReadFile: os.ReadFile})

	const (
		wav  = `{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=","format":"wav"}}`
		pdf  = `{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQKJSVFT0YK"}}`
		byID = `{"type":"file","file":{"file_id":"file-abc123"}}`
	)
	chat := func(model, part string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":[{"type":"text","text":"Transcribe or summarise this, please"},` + part + `]}]}`
	}
	hears := func(m *catalog.Model) bool { return m.Audio }
	reads := func(m *catalog.Model) bool { return m.Files }
	native := func(m *catalog.Model) bool { return m.Files && m.NativeResponses() }
	anthropic := func(m *catalog.Model) bool { return m.Files && m.Provider.WireFormat == "anthropic" }
	cases := map[string]struct {
		path, body, workspace string
		can                   func(*catalog.Model) bool // every model of the plan
		code, says            string                    // the error, or "" for a decision
	}{
		"audio, auto":               {body: chat("auto", wav), can: hears},
		"pdf, auto":                 {body: chat("auto", pdf), can: reads},
		"file by id, auto":          {body: chat("auto", byID), can: native},
		"audio, pinned text-only":   {body: chat("ovh/gpt-oss-120b", wav), code: "model_unsuitable", says: "capability: the request contains audio"},
		"pdf, pinned gemini":        {body: chat("gemini-2.5-flash", pdf), code: "model_unsuitable", says: "capability: the request contains files"},
		"pdf, pinned claude":        {body: chat("claude-sonnet-4-5", pdf), workspace: "default", can: anthropic},
		"file by id, pinned claude": {body: chat("claude-sonnet-4-5", byID), code: "model_unsuitable", says: "content parts of type file"},
		"file by id, pinned gemini": {body: chat("gemini-2.5-flash", byID), code: "model_unsuitable",
			says: "a file by file_id is stored at the provider it was uploaded to"},
		"audio, pinned gemini": {body: chat("gemini-2.5-flash", wav), can: hears},
		"pdf, pinned gpt-4o":   {body: chat("gpt-4o", pdf), workspace: "default", can: reads},
		"audio, eu only":       {body: chat("auto", wav), workspace: "legal", code: "no_eligible_model", says: "capability: the request contains audio"},
		"pdf, eu only":         {body: chat("auto", pdf), workspace: "legal", code: "no_eligible_model", says: "capability: the request contains files"},
		"responses input_file": {path: "/v1/responses", can: native,
			body: `{"model":"auto","input":[{"role":"user","content":[{"type":"input_text","text":"Summarise"},{"type":"input_file","filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQKJSVFT0YK"}]}]}`},
		"messages document": {path: "/v1/messages", can: anthropic,
			body: `{"model":"auto","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"Summarise"},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQKJSVFT0YK"}}]}]}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := Request{Path: tc.path, Body: []byte(tc.body), DecisionID: "d", Principal: auth.Principal{Workspace: "support"}, Record: true}
			if tc.workspace != "" {
				req.Principal.Workspace = tc.workspace
			}
			switch tc.path {
			case "/v1/responses":
				b, needs, err := translate.ResponsesForDecision(req.Body)
				if err != nil {
					t.Fatal(err)
				}
				req.Body, req.Needs = b, needs
			case "/v1/messages":
				b, _, _, native, err := translate.MessagesForDecision(req.Body)
				if err != nil {
					t.Fatal(err)
				}
				req.Body, req.Needs.Native = b, native
			default:
				req.Path = "/v1/chat/completions"
			}
			res, err := r.Route(context.Background(), req)
			// The decision replays as it was made, refusals included: the
			// record keeps what the request needs of a model.
			if in := res.ReplayInputs(&req); in != nil {
				b, _ := json.Marshal(in)
				var back Inputs
				if jerr := json.Unmarshal(b, &back); jerr != nil {
					t.Fatal(jerr)
				}
				res2, err2 := r.Replay(context.Background(), &back, false)
				if got, want := explain(res2, err2), explain(res, err); !reflect.DeepEqual(got, want) {
					t.Errorf("replay differs: %+v, want %+v", got, want)
				}
			} else if tc.code == "" {
				t.Error("no replay inputs recorded")
			}
			if tc.code != "" {
				e, ok := err.(*apierr.Error)
				if !ok || e.Code != tc.code || !strings.Contains(e.Message, tc.says) {
					t.Fatalf("%v, want %s saying %q", err, tc.code, tc.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			plan := res.Selection.Plan(4)
			if len(plan) == 0 {
				t.Fatal("no plan")
			}
			for _, m := range plan {
				if !tc.can(m) {
					t.Errorf("the plan holds %s, which cannot read it (chosen: %s)", m.ID, plan[0].ID)
				}
			}
		})
	}
}
