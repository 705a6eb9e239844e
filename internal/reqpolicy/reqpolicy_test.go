package reqpolicy

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

func TestParse(t *testing.T) {
	p, err := FromBody(gjson.Parse(`{"residency":"eu","optimize":"cost","max_cost":0.05,"sla_ms":2000,"min_quality":0.7,"allow":["b","a","a"],"deny":["provider:x"],"max_risk":"medium"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Residency != "eu" || p.Optimize != "cost" || p.MaxCost != 0.05 || p.SLAMS != 2000 || *p.MinQuality != 0.7 ||
		strings.Join(p.Allow, ",") != "a,b" || p.Deny[0] != "provider:x" || p.MaxRisk != "medium" || !p.Set {
		t.Errorf("%+v", p)
	}
	if got := Canonical(p); got != `{"allow":["a","b"],"deny":["provider:x"],"max_cost":0.05,"max_risk":"medium","min_quality":0.7,"optimize":"cost","residency":"eu","sla_ms":2000}` {
		t.Errorf("canonical %s", got)
	}
	// The fingerprint ignores key order, list order and duplicates.
	q, _ := FromHeader(`{"max_risk":"medium","deny":["provider:x"],"allow":["a","b"],"sla_ms":2000,"min_quality":0.70,"max_cost":5e-2,"optimize":"cost","residency":"eu"}`)
	if p.Fingerprint != q.Fingerprint || len(p.Fingerprint) != 16 {
		t.Errorf("fingerprints %s %s", p.Fingerprint, q.Fingerprint)
	}
	if none, _ := FromBody(gjson.Result{}); none.Set || none.Fingerprint != "" {
		t.Errorf("absent policy: %+v", none)
	}
	// null is absent, as for every other member (a 400 before).
	if null, err := FromBody(gjson.Parse(`null`)); err != nil || null.Set {
		t.Errorf("null policy: %+v %v", null, err)
	}
	if empty, _ := FromBody(gjson.Parse(`{}`)); !empty.Set || empty.Fingerprint == "" {
		t.Errorf("empty policy: %+v", empty)
	}
}

func TestRejects(t *testing.T) {
	cases := map[string]struct{ body, param, mention string }{
		"unknown field":     {`{"residnecy":"eu"}`, "policy.residnecy", "not a policy field"},
		"fallback a string": {`{"fallback":"yes"}`, "policy.fallback", "must be true or false"},
		"bad residency":     {`{"residency":"mars"}`, "policy.residency", `"mars" is not one of eu, on_prem, any`},
		"residency type":    {`{"residency":1}`, "policy.residency", "not one of"},
		"bad optimize":      {`{"optimize":"speed"}`, "policy.optimize", "cost, latency"},
		"negative cost":     {`{"max_cost":-1}`, "policy.max_cost", "positive"},
		"cost string":       {`{"max_cost":"1"}`, "policy.max_cost", "positive"},
		"float sla":         {`{"sla_ms":1.5}`, "policy.sla_ms", "integer"},
		"quality > 1":       {`{"min_quality":1.5}`, "policy.min_quality", "between 0 and 1"},
		"allow not array":   {`{"allow":"gpt-4o"}`, "policy.allow", "array"},
		"allow numbers":     {`{"allow":[1]}`, "policy.allow", "entries"},
		"duplicate field":   {`{"residency":"eu","residency":"any"}`, "policy.residency", "more than once"},
		"not an object":     {`["eu"]`, "policy", "JSON object"},
		"bad risk":          {`{"max_risk":"extreme"}`, "policy.max_risk", "low, medium, high"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := FromBody(gjson.Parse(tc.body))
			e, ok := err.(*apierr.Error)
			if !ok || e.Kind != apierr.KindInvalid || e.Param != tc.param || !strings.Contains(e.Message, tc.mention) || !strings.HasPrefix(e.Message, tc.param) {
				t.Fatalf("got %#v", err)
			}
		})
	}
	if _, err := FromHeader(`{bad`); err == nil || err.(*apierr.Error).Param != "x-stellwerk-policy" {
		t.Errorf("header: %v", err)
	}
	if _, err := FromHeader(`{"x":1}`); err == nil || err.(*apierr.Error).Param != "x-stellwerk-policy.x" {
		t.Errorf("header field: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"residency":"eu"}`, `{"allow":["a"],"max_cost":1}`, `{"sla_ms":1e300}`, `{"min_quality":-0}`, `[]`, `"x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := FromHeader(s)
		if err != nil {
			if e, ok := err.(*apierr.Error); !ok || e.Kind != apierr.KindInvalid {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if p.Fingerprint == "" || !gjson.Valid(Canonical(p)) {
			t.Fatalf("accepted %q without a valid canonical form", s)
		}
	})
}

// TestFallback: policy.fallback is kept as sent (absent, true or false),
// in the canonical form and so in the fingerprint.
func TestFallback(t *testing.T) {
	on, err := FromBody(gjson.Parse(`{"fallback":true}`))
	if err != nil || on.Fallback == nil || !*on.Fallback || Canonical(on) != `{"fallback":true}` {
		t.Fatalf("%+v %v %s", on, err, Canonical(on))
	}
	off, _ := FromBody(gjson.Parse(`{"fallback":false}`))
	none, _ := FromBody(gjson.Parse(`{}`))
	if off.Fallback == nil || *off.Fallback || none.Fallback != nil {
		t.Errorf("off %+v none %+v", off, none)
	}
	if on.Fingerprint == off.Fingerprint || off.Fingerprint == none.Fingerprint {
		t.Errorf("fingerprints do not tell them apart: %s %s %s", on.Fingerprint, off.Fingerprint, none.Fingerprint)
	}
}
