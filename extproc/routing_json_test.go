package extproc

import (
	"bytes"
	"math/rand/v2"
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
	refused := jsonwtest.Matches(t, rand.New(rand.NewPCG(7, 8)), 3000,
		func(ro *routingObject) any { return ro }, (*routingObject).AppendJSON)
	if refused > 750 {
		t.Errorf("%d of 3000 could not be encoded", refused)
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
