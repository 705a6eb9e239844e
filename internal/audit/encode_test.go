package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// reflectRecord is the reference: encoding/json of Record with HTML
// escaping off, which the appending encoder must reproduce byte for byte.
func reflectRecord(r *Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// TestEncodeMatches fills every exported member of a record (through
// reflection, so a member added later is filled too) with random values,
// zero about a third of the time, and compares the two encoders.
func TestEncodeMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	failed := 0
	for i := 0; i < n; i++ {
		var r Record
		fill(rng, reflect.ValueOf(&r).Elem(), 0)
		want, werr := reflectRecord(&r)
		got, gerr := jsonRecord(&r)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("record %d: error %v, encoding/json's %v", i, gerr, werr)
		}
		if werr != nil {
			failed++
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("record %d differs\n got: %s\nwant: %s", i, got, want)
		}
	}
	if failed == 0 || failed > n/4 {
		t.Errorf("%d of %d records could not be encoded: the filler should make a few (NaN, years beyond 9999) and no more", failed, n)
	}
}

// TestEncodeDecision: the shape of a routed decision, the record the writer
// sees thousands of times a second.
func TestEncodeDecision(t *testing.T) {
	r := decision(7, "support")
	want, err := reflectRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := jsonRecord(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("err %v\n got: %s\nwant: %s", err, got, want)
	}
}

var fillStrings = []string{"", "support", "gpt-4o", "quo\"te\\", "line\nbreak\t", "<&>", "é漢\u2028", "\xff bad", "\x00\x1f"}

func fill(rng *rand.Rand, v reflect.Value, depth int) {
	if rng.IntN(3) == 0 && depth > 0 {
		return // leave it zero: omitempty and omitzero
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			if rng.IntN(50) == 0 {
				v.Set(reflect.ValueOf(time.Date(10000+rng.IntN(10), 1, 1, 0, 0, 0, 0, time.UTC)))
				return
			}
			zones := []*time.Location{time.UTC, time.FixedZone("x", 5400), time.FixedZone("y", -7*3600)}
			t := time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])
			v.Set(reflect.ValueOf(t))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			fill(rng, v.Field(i), depth+1)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(rng, p.Elem(), depth+1)
		v.Set(p)
	case reflect.String:
		v.SetString(fillStrings[rng.IntN(len(fillStrings))])
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(rng.Int64N(1<<40) - 1<<39)
	case reflect.Float64:
		fs := []float64{0, 1, -2.5, 0.00024508799999999997, 1e-7, 3e21, rng.Float64(), rng.NormFloat64() * 1e6, math.Copysign(0, -1)}
		f := fs[rng.IntN(len(fs))]
		if rng.IntN(400) == 0 {
			f = math.NaN()
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage{}) {
			v.SetBytes([]byte(` { "prefer" : [ "eu" , 1.5 ], "max_cost_eur": null } `))
			return
		}
		if rng.IntN(4) == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0)) // empty, not nil
			return
		}
		s := reflect.MakeSlice(v.Type(), 1+rng.IntN(3), 3)
		for i := 0; i < s.Len(); i++ {
			fill(rng, s.Index(i), 0)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < rng.IntN(4); i++ {
			k := reflect.New(v.Type().Key()).Elem()
			fill(rng, k, 0)
			val := reflect.New(v.Type().Elem()).Elem()
			fill(rng, val, 0)
			m.SetMapIndex(k, val)
		}
		v.Set(m)
	case reflect.Interface: // the replay inputs: any JSON value
		vs := []any{nil, map[string]any{"decision_id": "d", "latency_ms": map[string]int{"b": 2, "a": 1}, "html": "<&>"}, []any{1.5, "x"}}
		if x := vs[rng.IntN(len(vs))]; x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		panic("fill: no filler for " + v.Type().String())
	}
}

// BenchmarkEncodeDecision: a decision record on the shipped catalog's
// scale (71 candidate lines), appended against encoding/json.
func BenchmarkEncodeDecision(b *testing.B) {
	r := decision(7, "support")
	for len(r.Candidates) < 71 {
		c := r.Candidates[len(r.Candidates)%8]
		c.Model += fmt.Sprint("-", len(r.Candidates))
		c.Verdict, c.Reason = "rejected", "quality: 0.32 for summarization is below 90% of the best eligible model"
		r.Candidates = append(r.Candidates, c)
	}
	// The replay inputs' largest member is a latency per model.
	lat := map[string]int{}
	for i, c := range r.Candidates {
		lat[c.Model] = 20 + i
	}
	r.Replay = map[string]any{"v": 1, "decision_id": r.ID, "path": "/v1/chat/completions", "model": "auto", "latency_ms": lat}
	for _, enc := range []struct {
		name string
		f    func(*Record) ([]byte, error)
	}{{"append", jsonRecord}, {"encoding_json", reflectRecord}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.f(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeNoReplay(b *testing.B) {
	r := decision(7, "support")
	for len(r.Candidates) < 71 {
		c := r.Candidates[len(r.Candidates)%8]
		c.Model += fmt.Sprint("-", len(r.Candidates))
		r.Candidates = append(r.Candidates, c)
	}
	for _, enc := range []struct {
		name string
		f    func(*Record) ([]byte, error)
	}{{"append", jsonRecord}, {"encoding_json", reflectRecord}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.f(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
