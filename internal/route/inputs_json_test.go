package route

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stellwerk/stellwerk/internal/jsonw/jsonwtest"
)

// TestInputsJSON: the replay inputs' appending encoder writes encoding/json's
// bytes, for inputs whose every member is filled at random (a member added
// later is filled too, and fails the test until the encoder writes it).
func TestInputsJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	failed := 0
	for i := 0; i < 3000; i++ {
		var in Inputs
		jsonwtest.Fill(rng, reflect.ValueOf(&in).Elem(), 0)
		want, werr := jsonwtest.Reflect(&in)
		got, gerr := in.AppendJSON([]byte("x"))
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("inputs %d: error %v, encoding/json's %v", i, gerr, werr)
		}
		if werr != nil {
			failed++
			continue
		}
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("inputs %d differ\n got: %s\nwant: %s", i, got[1:], want)
		}
	}
	if failed > 750 {
		t.Errorf("%d of 3000 could not be encoded", failed)
	}
	var nilIn *Inputs
	if got, _ := nilIn.AppendJSON(nil); string(got) != "null" {
		t.Errorf("nil inputs: %s", got)
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
	for _, enc := range []struct {
		name string
		f    func() ([]byte, error)
	}{{"append", func() ([]byte, error) { return in.AppendJSON(make([]byte, 0, 4096)) }}, {"encoding_json", func() ([]byte, error) { return jsonwtest.Reflect(in) }}} {
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
