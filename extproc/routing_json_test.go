package extproc

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/sjson"

	"github.com/stellwerk/stellwerk/internal/jsonw/jsonwtest"
)

// TestRoutingObjectJSON: the routing object's appended encoding is
// encoding/json's (HTML escaping off), byte for byte, for objects whose
// every member is filled at random (a member added later is filled too,
// and fails the test until AppendJSON writes it).
func TestRoutingObjectJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	failed := 0
	for i := 0; i < 3000; i++ {
		var ro routingObject
		jsonwtest.Fill(rng, reflect.ValueOf(&ro).Elem(), 0)
		want, werr := jsonwtest.Reflect(&ro)
		got, gerr := ro.AppendJSON([]byte("x"))
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("object %d: error %v, encoding/json's %v", i, gerr, werr)
		}
		if werr != nil {
			failed++
			continue
		}
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("object %d differs\n got: %s\nwant: %s", i, got[1:], want)
		}
	}
	if failed > 750 {
		t.Errorf("%d of 3000 could not be encoded", failed)
	}
}

// TestWithRouting: the routing member goes in as sjson puts it — appended
// before the closing brace, or in place of a member of that name — byte
// for byte, for answers with and without members, with white space around
// the braces, nested objects and a routing member of their own.
func TestWithRouting(t *testing.T) {
	ro := []byte(`{"decision_id":"d-1","model":"m"}`)
	for _, body := range []string{
		`{}`, `{ }`, "{\n}\n", `{"id":"x"}`, `{"id":"x"}  `, "{\"id\":\"x\"\n}\r\n",
		`{"choices":[{"message":{"content":"}"}}],"usage":{"prompt_tokens":1}}`,
		`{"routing":{"old":true},"id":"x"}`, `{"id":"x","routing":null}`,
		`{"a":{"routing":1}}`, `{"id":"` + strings.Repeat("y", 5000) + `"}`,
	} {
		want, werr := sjson.SetRawBytes([]byte(body), "routing", ro)
		got, gerr := withRouting([]byte(body), ro)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Errorf("%.60q: got %s (%v), sjson %s (%v)", body, got, gerr, want, werr)
		}
	}
}
