package flow

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestSamples(t *testing.T) {
	f := loadFile(t, "testdata/support.yaml")
	data, err := os.ReadFile("testdata/support-samples.json")
	if err != nil {
		t.Fatal(err)
	}
	samples, err := ParseSamples(data)
	if err != nil || len(samples) != 4 {
		t.Fatalf("%d samples, %v", len(samples), err)
	}
	for _, s := range samples {
		r := s.Run(context.Background(), f, testEnv, nil)
		if r.Error != "" || len(r.Mismatch) > 0 {
			t.Errorf("%s: %s %v", s.Name, r.Error, r.Mismatch)
		}
	}
	// A wrong expectation is reported.
	s := samples[0]
	s.Expect = &Expect{Model: "claude-sonnet", End: 429}
	if r := s.Run(context.Background(), f, testEnv, nil); len(r.Mismatch) != 2 {
		t.Errorf("mismatch %v", r.Mismatch)
	}
	// Metadata twice, a bad body, unknown fields.
	s = Sample{Name: "twice", Body: []byte(`{"model":"route:support","messages":[{"role":"user","content":"hi"}],"metadata":{"plan":"paid"}}`),
		Headers: map[string]string{"x-stellwerk-metadata": `{"plan":"free"}`}}
	if r := s.Run(context.Background(), f, testEnv, nil); !strings.Contains(r.Error, "send it once") {
		t.Errorf("metadata twice: %+v", r)
	}
	s = Sample{Name: "bad", Body: []byte(`{"messages":[]}`)}
	if r := s.Run(context.Background(), f, testEnv, nil); !strings.Contains(r.Error, "model") {
		t.Errorf("bad body: %+v", r)
	}
	if _, err := ParseSamples([]byte(`[{"body":{}, "colour":"red"}]`)); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := ParseSamples([]byte(`{"samples":[{"name":"x"}]}`)); err == nil {
		t.Error("sample without a body accepted")
	}
}

func TestReplayLimiter(t *testing.T) {
	f := loadFile(t, "testdata/support.yaml")
	in := &Input{RequestID: "r", Limiter: &countLimiter{n: map[string]int64{"route.support.free-tier": 100}}}
	first := f.Evaluate(context.Background(), in)
	in.Limiter = ReplayLimiter(first.Limits)
	if again := f.Evaluate(context.Background(), in); again.Explain() != first.Explain() || again.End == nil {
		t.Errorf("replay %s, recorded %s", again.Explain(), first.Explain())
	}
}

// TestStickyWarnings: samples of a service key with a user of its own all
// hash by that user under sticky: user, whatever their body's user: routes
// test warns; under sticky: request.user they spread, and it does not.
func TestStickyWarnings(t *testing.T) {
	doc := func(sticky string) *Flow {
		f, err := Load("t", []byte("route: ab\nnodes:\n  - id: ab\n    split:\n      sticky: "+sticky+
			"\n      arms:\n        - {name: a, weight: 50, next: m}\n        - {name: b, weight: 50, next: m}\n  - {id: m, model: gpt-4o}\n"), testEnv)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	samples := func() []Sample {
		var out []Sample
		for _, u := range []string{"ana", "ben", "cleo"} {
			out = append(out, Sample{Name: u, RequestID: u, Principal: &SamplePrincipal{Key: "app", User: "svc@example.com"},
				Body: []byte(`{"model":"route:ab","user":"` + u + `","messages":[{"role":"user","content":"hi"}]}`)})
		}
		return out
	}
	run := func(f *Flow) []string {
		var rs []SampleResult
		for _, s := range samples() {
			rs = append(rs, s.Run(context.Background(), f, testEnv, nil))
		}
		return StickyWarnings(rs)
	}
	w := run(doc("user"))
	if len(w) != 1 || !strings.Contains(w[0], `split ab: all 3 samples that cross it have one sticky subject, the key's user "svc@example.com"`) ||
		!strings.Contains(w[0], "sticky: request.user") {
		t.Errorf("sticky: user: %q", w)
	}
	if w := run(doc("request.user")); len(w) != 0 {
		t.Errorf("sticky: request.user: %q", w)
	}
	if w := run(doc("none")); len(w) != 0 {
		t.Errorf("sticky: none: %q", w)
	}
}
