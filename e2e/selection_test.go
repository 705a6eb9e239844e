package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestObjectivesPickWhatTheCatalogSays: three providers with different
// prices, latencies and quality; auto with each objective picks the model
// the catalog says it should, and the answer says why.
func TestObjectivesPickWhatTheCatalogSays(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "cheapo", Key: "k1"}, {Name: "speedy", Key: "k2"}, {Name: "smart", Key: "k3"}},
		Models: []config.Model{
			{ID: "cheap-model", Provider: "cheapo", ContextWindow: 32000, LatencyMS: 400,
				Price: config.Price{InputPerMTok: 0.1, OutputPerMTok: 0.2}, Quality: map[string]float64{"default": 0.6}},
			{ID: "fast-model", Provider: "speedy", ContextWindow: 32000, LatencyMS: 20,
				Price: config.Price{InputPerMTok: 1, OutputPerMTok: 2}, Quality: map[string]float64{"default": 0.7}},
			{ID: "smart-model", Provider: "smart", ContextWindow: 128000, LatencyMS: 250,
				Price: config.Price{InputPerMTok: 5, OutputPerMTok: 15}, Quality: map[string]float64{"default": 0.95, "code": 0.97}},
		},
		DefaultModel: "fast-model",
		Mutate: func(c *config.Config) {
			c.Routing.BaselineModel = "smart-model"
		},
	})
	// The fakes answer as slowly as the catalog says, since stellwerk learns
	// latency from the answers.
	for name, d := range map[string]time.Duration{"cheapo": 400 * time.Millisecond, "speedy": 20 * time.Millisecond, "smart": 250 * time.Millisecond} {
		s.Providers[name].SetBehavior(mockllm.Behavior{FirstByteDelay: d})
	}
	// The SLA case leaves the smart model (250 ms) 130 ms of slack for a
	// loaded machine, and still excludes the cheap one (400 ms).
	cases := map[string]struct{ policy, want, why, provider string }{
		"cost":                       {`{"optimize":"cost"}`, "cheap-model", "cheapest", "cheapo"},
		"latency":                    {`{"optimize":"latency"}`, "fast-model", "fastest", "speedy"},
		"accuracy":                   {`{"optimize":"accuracy"}`, "smart-model", "most accurate", "smart"},
		"cost above a quality floor": {`{"optimize":"cost","min_quality":0.65}`, "fast-model", "cheapest above quality floor 0.65", "speedy"},
		"latency under an sla":       {`{"optimize":"accuracy","sla_ms":380}`, "smart-model", "most accurate", "smart"},
		"balanced default":           {`{}`, "fast-model", "workspace default", "speedy"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := s.Providers[tc.provider]
			before := len(p.Requests())
			resp, b := post(t, s.URL+"/v1/chat/completions",
				`{"model":"auto","policy":`+tc.policy+`,"messages":[{"role":"user","content":"Write a Go function that reverses a string."}]}`, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if got := resp.Header.Get("x-stellwerk-model"); got != tc.want {
				t.Fatalf("model %s, want %s (reason %q)", got, tc.want, resp.Header.Get("x-stellwerk-reason"))
			}
			if r := resp.Header.Get("x-stellwerk-reason"); !strings.Contains(r, tc.why) || !strings.Contains(r, "for code") {
				t.Errorf("reason %q lacks %q", r, tc.why)
			}
			if len(p.Requests()) != before+1 {
				t.Errorf("%s did not receive the request", tc.provider)
			}
			var out struct {
				Routing struct {
					Reason    string `json:"reason"`
					Objective string `json:"objective"`
					Saving    *struct {
						BaselineModel string  `json:"baseline_model"`
						BaselineEUR   float64 `json:"baseline_eur"`
						EUR           float64 `json:"eur"`
						Source        string  `json:"source"`
					} `json:"saving"`
					Cost struct{ EUR float64 } `json:"cost"`
				} `json:"routing"`
			}
			mustJSON(t, b, &out)
			sv := out.Routing.Saving
			if sv == nil || sv.BaselineModel != "smart-model" || sv.Source != "provider_usage" || out.Routing.Reason != resp.Header.Get("x-stellwerk-reason") {
				t.Fatalf("routing %+v", out.Routing)
			}
			if tc.want != "smart-model" && !(sv.EUR > 0 && sv.BaselineEUR > out.Routing.Cost.EUR) {
				t.Errorf("no saving against the baseline: %+v cost %v", sv, out.Routing.Cost.EUR)
			}
		})
	}
}

// TestLatencyIsLearnedFromTraffic: "hare" is configured as fast but answers
// slowly; after one observed answer, latency-optimised requests go to "tortoise".
func TestLatencyIsLearnedFromTraffic(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "hare", Key: "k1"}, {Name: "tortoise", Key: "k2"}},
		Models: []config.Model{
			{ID: "hare-model", Provider: "hare", ContextWindow: 32000, LatencyMS: 100},
			{ID: "tortoise-model", Provider: "tortoise", ContextWindow: 32000, LatencyMS: 400},
		},
	})
	s.Providers["hare"].SetBehavior(mockllm.Behavior{FirstByteDelay: 900 * time.Millisecond})
	body := `{"model":"auto","policy":{"optimize":"latency"},"messages":[{"role":"user","content":"hello"}]}`
	var models []string
	for range 3 {
		resp, b := post(t, s.URL+"/v1/chat/completions", body, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		models = append(models, resp.Header.Get("x-stellwerk-model"))
	}
	if strings.Join(models, ",") != "hare-model,tortoise-model,tortoise-model" {
		t.Errorf("choices %v: the observed latency was not used", models)
	}
}
