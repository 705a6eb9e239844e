package decision

import (
	"context"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
)

func accessRouter(t *testing.T) *Router {
	t.Helper()
	r, _ := libraryRouter(t, `
routing: {default_model: a1}
providers:
  - {name: pa, base_url: "http://127.0.0.1:9001/v1", residency: us}
  - {name: pb, base_url: "http://127.0.0.1:9002/v1", residency: eu}
models:
  - {id: a1, provider: pa, context_window: 8000}
  - {id: a2, provider: pa, context_window: 8000}
  - {id: b1, provider: pb, context_window: 8000}
  - {id: b2, provider: pb, context_window: 8000}
workspaces:
  - name: default
    deny: [b2]
  - name: narrow
    allow: [a1, b1]
  - name: eu
    allow: [provider:pb]
  - name: mixed
    allow: [a1, provider:pb]
    teams:
      - {name: no-pb, deny: [provider:pb]}
      - {name: only-b2, allow: [b2]}
      - {name: open}
`)
	return r
}

// TestVisible checks what each principal may see, and that it is exactly
// what the shipped policy's access rules leave: a model is invisible if and
// only if the policy excludes it for access.
func TestVisible(t *testing.T) {
	r := accessRouter(t)
	cases := map[string]struct {
		workspace, team string
		want            string
	}{
		"default workspace deny":        {"default", "", "a1 a2 b1"},
		"anonymous is default":          {"", "", "a1 a2 b1"},
		"unknown workspace is default":  {"ghost", "", "a1 a2 b1"},
		"allow by id":                   {"narrow", "", "a1 b1"},
		"allow by provider":             {"eu", "", "b1 b2"},
		"allow mixed":                   {"mixed", "", "a1 b1 b2"},
		"team denies a provider":        {"mixed", "no-pb", "a1"},
		"team narrows the allow list":   {"mixed", "only-b2", "b2"},
		"team without lists":            {"mixed", "open", "a1 b1 b2"},
		"unknown team is the workspace": {"mixed", "ghost", "a1 b1 b2"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := auth.Principal{Workspace: tc.workspace, Team: tc.team}
			v := r.Visible(p)
			var got []string
			for _, m := range v.Models() {
				got = append(got, m.ID)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("visible %v, want %s", got, tc.want)
			}
			res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: p,
				Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`)})
			if err != nil {
				t.Fatal(err)
			}
			for _, vd := range res.Selection.Table() {
				if access := strings.HasPrefix(vd.Reason, "access:"); access == v.Has(vd.ID) {
					t.Errorf("%s: visible %v but the policy says %s %q", vd.ID, v.Has(vd.ID), vd.Verdict, vd.Reason)
				}
			}
		})
	}
}

// TestInvisibleModelIsNotFound: a model the caller may not use is answered
// like one that does not exist, and the answer lists only visible models.
func TestInvisibleModelIsNotFound(t *testing.T) {
	r := accessRouter(t)
	cases := map[string]struct {
		workspace, team, model string
		status                 int
		code, list             string
	}{
		"unknown":                 {"narrow", "", "zz", 404, "model_not_found", "available: a1, b1, auto"},
		"exists, excluded":        {"narrow", "", "b2", 404, "model_not_found", "available: a1, b1, auto"},
		"team excluded":           {"mixed", "no-pb", "b1", 404, "model_not_found", "available: a1, auto"},
		"visible":                 {"narrow", "", "b1", 0, "", ""},
		"not in the key's models": {"narrow", "key:a1", "b1", 404, "model_not_found", "available: a1, auto"},
		"in the key's models":     {"narrow", "key:a1", "a1", 0, "", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := auth.Principal{Workspace: tc.workspace, Team: tc.team}
			if m, ok := strings.CutPrefix(tc.team, "key:"); ok { // a store key limited to m
				p = auth.Principal{Workspace: tc.workspace, KeyID: "k", Models: []string{m}}
			}
			_, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions",
				Principal: p,
				Body:      []byte(`{"model":"` + tc.model + `","messages":[{"role":"user","content":"hi"}]}`)})
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("visible model refused: %v", err)
				}
				return
			}
			e := apierr.As(err)
			if apierr.HTTPStatus(e) != tc.status || e.Code != tc.code || !strings.HasSuffix(e.Message, tc.list) {
				t.Fatalf("got %d %s %q, want %d %s …%s", apierr.HTTPStatus(e), e.Code, e.Message, tc.status, tc.code, tc.list)
			}
			want := `the model "` + tc.model + `" does not exist or is not available to you; ` + tc.list
			if e.Message != want {
				t.Errorf("message %q\nwant    %q (the same for unknown and excluded models)", e.Message, want)
			}
		})
	}
}

func TestVisibleSetsShared(t *testing.T) {
	r := accessRouter(t)
	// mixed and mixed/open see the same models: one set, one precomputed answer.
	if r.Visible(auth.Principal{Workspace: "mixed"}) != r.Visible(auth.Principal{Workspace: "mixed", Team: "open"}) {
		t.Errorf("equal sets are not shared")
	}
	if n := len(r.VisibleSets()); n != 6 {
		t.Errorf("%d distinct sets, want 6", n)
	}
	if testing.AllocsPerRun(100, func() { r.Visible(auth.Principal{Workspace: "mixed", Team: "no-pb"}) }) != 0 {
		t.Errorf("Visible allocates")
	}
}

// TestKeyModels: a store key limited to some models never gets another
// from auto, and sees the limit in the decision table.
func TestKeyModels(t *testing.T) {
	r := accessRouter(t)
	p := auth.Principal{Workspace: "mixed", KeyID: "k", Models: []string{"provider:pb"}}
	res, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: p,
		Body: []byte(`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Selection.Model.Provider.Name; m != "pb" {
		t.Errorf("auto chose a model of provider %s", m)
	}
	for _, vd := range res.Selection.Table() {
		if vd.ID == "a1" && (vd.Verdict != "excluded" || !strings.Contains(vd.Reason, "key k")) {
			t.Errorf("a1: %s %q", vd.Verdict, vd.Reason)
		}
	}
}

// TestPolicyListsNameUsableModels (issue 18): a per-request allow or deny
// list naming a model or provider the caller cannot use is a 400 naming
// it, not a 503 with nothing eligible; a hidden model reads like an
// unknown one.
func TestPolicyListsNameUsableModels(t *testing.T) {
	r := accessRouter(t)
	for name, tc := range map[string]struct {
		policy, param, says string
	}{
		"unknown model in allow":  {`{"allow":["nope"]}`, "policy.allow", `unknown model "nope"`},
		"hidden model in deny":    {`{"deny":["b2"]}`, "policy.deny", `unknown model "b2"`},
		"unknown provider":        {`{"allow":["provider:zz"]}`, "policy.allow", `unknown provider "zz"`},
		"usable model":            {`{"allow":["a1"]}`, "", ""},
		"known provider":          {`{"deny":["provider:pb"]}`, "", ""},
		"usable model, by header": {`{"allow":["b1"]}`, "", ""},
		// A provider none of whose models the caller may use reads like
		// an unknown one (the security probe told them apart).
		"hidden provider": {`{"deny":["provider:pa"]}`, "policy.deny", `unknown provider "pa"`},
	} {
		t.Run(name, func(t *testing.T) {
			p := auth.Principal{Workspace: "narrow"}
			if name == "hidden provider" {
				p = auth.Principal{Workspace: "eu"}
			}
			_, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: p,
				Body: []byte(`{"model":"auto","policy":` + tc.policy + `,"messages":[{"role":"user","content":"hi"}]}`)})
			if tc.param == "" {
				if e := apierr.As(err); err != nil && e.Code == "invalid_policy" {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e := apierr.As(err)
			if e.Kind != apierr.KindInvalid || e.Code != "invalid_policy" || e.Param != tc.param || !strings.Contains(e.Message, tc.says) {
				t.Fatalf("got %d %s %s %q", apierr.HTTPStatus(e), e.Code, e.Param, e.Message)
			}
		})
	}
}

// TestNoEligibleNamesOnlyVisibleModels: why no model may serve a request
// is told without the models the caller may not see (their count and
// reasons told the security probe how many were hidden, and by what).
func TestNoEligibleNamesOnlyVisibleModels(t *testing.T) {
	r := accessRouter(t)
	p := auth.Principal{Workspace: "eu", KeyID: "k", Models: []string{"b1"}}
	_, err := r.Route(context.Background(), Request{Path: "/v1/chat/completions", Principal: p,
		Body: []byte(`{"model":"auto","policy":{"deny":["b1"]},"messages":[{"role":"user","content":"hi"}]}`)})
	e := apierr.As(err)
	if e.Code != "no_eligible_model" || !strings.Contains(e.Message, "(1)") || strings.Contains(e.Message, "key k") ||
		strings.Contains(e.Message, "access") || strings.Contains(e.Message, "(3)") {
		t.Fatalf("%s: %q", e.Code, e.Message)
	}
}
