package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stellwerk/stellwerk/internal/jsonw/jsonwtest"
)

// v1Record is a decision record as schema version 1 wrote it (candidates
// as a list of objects), as it stays in stores and exports.
const v1Record = `{"v":1,"kind":"decision","id":"dec-1","time":"2026-11-30T10:00:00Z","workspace":"support",` +
	`"candidates":[{"model":"mistral-small","provider":"mistral","verdict":"chosen","estimated_cost_eur":0.00004,"quality":0.7,"latency_ms":300,"residency":"eu"},` +
	`{"model":"gpt-4o","provider":"openai","verdict":"excluded","reason":"residency us is not allowed for internal data","residency":"us"}],` +
	`"chosen":"mistral-small"}`

// TestCandidatesReadBothVersions: a version 1 record decodes to the same
// lines as its rewrite by columns, and the columns are what version 2
// writes: model and verdict always, other columns only where a line has a
// value.
func TestCandidatesReadBothVersions(t *testing.T) {
	var r1 Record
	if err := json.Unmarshal([]byte(v1Record), &r1); err != nil {
		t.Fatal(err)
	}
	want := Candidates{
		{Model: "mistral-small", Provider: "mistral", Verdict: "chosen", EstimatedCostEUR: 0.00004, Quality: 0.7, LatencyMS: 300, Residency: "eu"},
		{Model: "gpt-4o", Provider: "openai", Verdict: "excluded", Reason: "residency us is not allowed for internal data", Residency: "us"},
	}
	if !reflect.DeepEqual(r1.Candidates, want) {
		t.Fatalf("v1 lines %+v", r1.Candidates)
	}
	r1.V = SchemaVersion
	b, err := jsonRecord(&r1)
	if err != nil {
		t.Fatal(err)
	}
	const cols = `"candidates":{"model":["mistral-small","gpt-4o"],"provider":["mistral","openai"],"verdict":["chosen","excluded"],` +
		`"reason":["","residency us is not allowed for internal data"],"estimated_cost_eur":[0.00004,0],"quality":[0.7,0],"latency_ms":[300,0],"residency":["eu","us"]}`
	if !bytes.Contains(b, []byte(cols)) || !bytes.HasPrefix(b, []byte(`{"v":2,`)) {
		t.Fatalf("version 2 encoding %s", b)
	}
	var r2 Record
	if err := json.Unmarshal(b, &r2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r2.Candidates, want) {
		t.Fatalf("v2 lines %+v", r2.Candidates)
	}
	if len(b) >= len(v1Record) {
		t.Errorf("columns (%d bytes) are not shorter than objects (%d)", len(b), len(v1Record))
	}
}

// TestCandidatesRoundTrip: random lines (strings that need escaping, all-
// zero columns, one line, none) come back as written.
func TestCandidatesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		var cs Candidates
		for range rng.IntN(4) {
			var c Candidate
			jsonwtest.Fill(rng, reflect.ValueOf(&c).Elem(), 1)
			cs = append(cs, c)
		}
		r := Record{Kind: KindDecision, Candidates: cs}
		b, err := jsonRecord(&r)
		if err != nil {
			continue // a NaN: encoding/json refuses it too (TestEncodeMatches)
		}
		var back Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%d: %v: %s", i, err, b)
		}
		if want := viaObjects(t, cs); !reflect.DeepEqual(back.Candidates, want) {
			t.Fatalf("%d: %s\n got %+v\nwant %+v", i, b, back.Candidates, want)
		}
	}
}

// viaObjects is what lines read back as when written as version 1 wrote
// them (a list of objects, by encoding/json): invalid UTF-8 becomes
// U+FFFD and an omitted -0 comes back as 0, in both versions alike, and
// an estimated cost comes back as Money (ten significant digits). No
// lines read back as none.
func viaObjects(t *testing.T, cs Candidates) Candidates {
	t.Helper()
	if len(cs) == 0 {
		return nil
	}
	cs = append(Candidates(nil), cs...)
	for i := range cs {
		cs[i].EstimatedCostEUR = Money(cs[i].EstimatedCostEUR)
	}
	b, err := json.Marshal([]Candidate(cs))
	if err != nil {
		t.Fatal(err)
	}
	var back []Candidate
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// TestCandidatesColumnsMustAgree: columns of different lengths are a
// damaged record, refused with an error rather than read short or
// indexed out of range.
func TestCandidatesColumnsMustAgree(t *testing.T) {
	for _, in := range []string{
		`{"model":["a","b"],"verdict":["chosen"]}`,
		`{"model":["a"],"verdict":["chosen"],"rank":[1,2]}`,
		`{"model":["a"],"verdict":["chosen"],"reason":[]}`,
		`{"verdict":["chosen"]}`,
	} {
		var cs Candidates
		if err := json.Unmarshal([]byte(in), &cs); !errors.Is(err, errColumns) {
			t.Errorf("%s: %v", in, err)
		}
	}
	var cs Candidates
	if err := json.Unmarshal([]byte(`{"model":[],"verdict":[]}`), &cs); err != nil || len(cs) != 0 {
		t.Errorf("no lines: %v %v", cs, err)
	}
	if err := json.Unmarshal([]byte(`{"model":["a"],"verdict":[7]}`), &cs); err == nil || errors.Is(err, errColumns) {
		t.Errorf("a number for a verdict: %v", err)
	}
}

// FuzzCandidates: a stored record is read back by replay, export and the
// console; any bytes decode to lines or an error, never a panic, and lines
// that decode are written and read back unchanged.
func FuzzCandidates(f *testing.F) {
	f.Add([]byte(`{"model":["a","b"],"verdict":["chosen","eligible"],"rank":[0,1],"score":[0,0.5]}`))
	f.Add([]byte(`[{"model":"a","verdict":"chosen"}]`))
	f.Add([]byte(`{"model":["a"],"verdict":["chosen"],"reason":["x"],"latency_ms":[1e3]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cs Candidates
		if json.Unmarshal(b, &cs) != nil {
			return
		}
		r := Record{Candidates: cs}
		enc, err := jsonRecord(&r)
		if err != nil {
			t.Fatalf("decoded lines do not encode: %v", err)
		}
		var back Record
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if want := viaObjects(t, cs); !reflect.DeepEqual(back.Candidates, want) {
			t.Fatalf("%s\n got %+v\nwant %+v", enc, back.Candidates, want)
		}
	})
}
