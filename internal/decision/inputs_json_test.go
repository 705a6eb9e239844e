package decision

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/jsonw/jsonwtest"
)

// TestInputsJSON: the replay inputs' appending encoder writes encoding/json's
// bytes, for inputs whose every member is filled at random (a member added
// later is filled too, and fails the test until the encoder writes it).
func TestInputsJSON(t *testing.T) {
	failed := jsonwtest.Matches(t, rand.New(rand.NewPCG(5, 6)), 3000,
		func(in *Inputs) any { return (*inputFields)(in) }, (*Inputs).AppendJSON)
	if failed > 750 {
		t.Errorf("%d of 3000 could not be encoded", failed)
	}
	var nilIn *Inputs
	if got, _ := nilIn.AppendJSON(nil); string(got) != "null" {
		t.Errorf("nil inputs: %s", got)
	}
}

// inputFields is Inputs without its methods: encoding/json's own encoding
// of its members, the reference.
type inputFields Inputs

// TestLiveLatencyJSON: a live decision's learned latencies (catalog order,
// -1 for a seed) are written as the map a decoded record holds, keys
// sorted, seeds left out, and nothing at all when every model kept its
// seed; LatencyOf reads either form, and encoding/json writes the same.
func TestLiveLatencyJSON(t *testing.T) {
	var models []*catalog.Model
	for _, id := range []string{"zeta", "alpha", "mid/\"q\"", "beta", "a"} {
		models = append(models, &catalog.Model{ID: id})
	}
	idx := newCatalogIndex(models)
	for _, ms := range [][]int32{{5, -1, 0, 120, 7}, {-1, -1, -1, -1, -1}, {1, 2, 3, 4, 5}} {
		live := &Inputs{V: InputsVersion, DecisionID: "d", live: liveLatency{ms: ms, idx: idx}}
		decoded := &Inputs{V: InputsVersion, DecisionID: "d"}
		for i, v := range ms {
			if v >= 0 {
				if decoded.LatencyMS == nil {
					decoded.LatencyMS = map[string]int{}
				}
				decoded.LatencyMS[models[i].ID] = int(v)
			}
		}
		want, err := jsonwtest.Reflect((*inputFields)(decoded))
		if err != nil {
			t.Fatal(err)
		}
		got, err := live.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: err %v\n got: %s\nwant: %s", ms, err, got, want)
		}
		if m, err := json.Marshal(live); err != nil || !bytes.Equal(m, want) {
			t.Fatalf("%v: encoding/json: err %v\n got: %s\nwant: %s", ms, err, m, want)
		}
		for i, v := range ms {
			lv, lok := live.LatencyOf(models[i].ID)
			dv, dok := decoded.LatencyOf(models[i].ID)
			if lv != dv || lok != dok || lok != (v >= 0) {
				t.Errorf("%v: LatencyOf(%s) live %d %v, decoded %d %v", ms, models[i].ID, lv, lok, dv, dok)
			}
		}
	}
}

// BenchmarkInputsJSON: the replay inputs of a decision on the shipped
// catalog's scale (71 learned latencies), appended against encoding/json.
func BenchmarkInputsJSON(b *testing.B) {
	in := &Inputs{V: InputsVersion, DecisionID: "01a235aeca1842b6fd520aa1f2cd1954", Path: "/v1/chat/completions", Model: "auto",
		Messages: 2, Headers: map[string]string{"user-agent": "OpenAI/Python 1.99"}, LatencyMS: map[string]int{}}
	in.Principal = Principal{Authenticated: true, KeyID: "key_support", Workspace: "support"}
	in.Classification.Task, in.Classification.Complexity, in.Classification.Language = "summarization", "low", "en"
	for i := 0; i < 71; i++ {
		in.LatencyMS["provider-"+string(rune('a'+i%26))+"/model-"+string(rune('a'+i/26))+"-instruct"] = 20 + i
	}
	// live: the learned latencies as a router's decision holds them
	// (catalog order), as the audit writer encodes them.
	live := *in
	var models []*catalog.Model
	var ms []int32
	for id, v := range in.LatencyMS {
		models, ms = append(models, &catalog.Model{ID: id}), append(ms, int32(v))
	}
	live.LatencyMS, live.live = nil, liveLatency{ms: ms, idx: newCatalogIndex(models)}
	// table: the same decision with a candidate table in its record, which
	// carries the latencies (InLatencyTable), as the edge writes it now.
	table := live
	table.InLatencyTable()
	for _, enc := range []struct {
		name string
		f    func() ([]byte, error)
	}{{"append", func() ([]byte, error) { return in.AppendJSON(make([]byte, 0, 4096)) }},
		{"append_live", func() ([]byte, error) { return live.AppendJSON(make([]byte, 0, 4096)) }},
		{"append_latency_in_table", func() ([]byte, error) { return table.AppendJSON(make([]byte, 0, 4096)) }},
		{"encoding_json", func() ([]byte, error) { return jsonwtest.Reflect(in) }}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
