package decide

import (
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/request"
)

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
routing: {default_model: cheap}
providers: [{name: p, base_url: "http://127.0.0.1:1/v1", residency: eu}]
models:
  - {id: cheap, provider: p, provider_model: c-1, context_window: 10}
  - {id: big, provider: p, context_window: 10}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.OSEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestDecide(t *testing.T) {
	cat := testCatalog(t)
	cases := map[string]struct {
		model, wantID, wantReason string
		wantStatus                int
		wantCode                  string
	}{
		"auto":    {model: "auto", wantID: "cheap", wantReason: "auto: workspace default model"},
		"pinned":  {model: "big", wantID: "big", wantReason: "pinned by request"},
		"unknown": {model: "gpt-9", wantStatus: 404, wantCode: "model_not_found"},
		"route":   {model: "route:support", wantStatus: 404, wantCode: "route_not_found"},
		"case":    {model: "BIG", wantStatus: 404, wantCode: "model_not_found"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := Decide(request.Chat{Model: tc.model, Messages: 1}, cat)
			if tc.wantStatus != 0 {
				e, ok := err.(*apierr.Error)
				if !ok || e.Status != tc.wantStatus || e.Code != tc.wantCode {
					t.Fatalf("got %v", err)
				}
				if tc.wantCode == "model_not_found" && !strings.Contains(e.Message, "big, cheap, auto") {
					t.Errorf("error does not list the models: %s", e.Message)
				}
				return
			}
			if err != nil || d.Model.ID != tc.wantID || d.Reason != tc.wantReason {
				t.Fatalf("got %+v, %v", d, err)
			}
		})
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	cat := testCatalog(t)
	a, _ := Decide(request.Chat{Model: "auto", Messages: 1}, cat)
	b, _ := Decide(request.Chat{Model: "auto", Messages: 1}, cat)
	if a != b {
		t.Fatalf("%+v != %+v", a, b)
	}
}
