package apierr

import (
	"encoding/json"
	"testing"
)

// TestHTTPStatus is the edges' one table: each kind the contract names
// answers with its status (ARCHITECTURE.md, Errors), a provider's refusal
// with the provider's status.
func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		e    *Error
		want int
	}{
		{Invalid("c", "p", "m"), 400},
		{Unauthenticated("m"), 401},
		{Denied("c", "", "m"), 403},
		{NotFound("c", "", "m"), 404},
		{WrongMethod("m"), 405},
		{Conflict("c", "", "m"), 409},
		{TooLarge(10), 413},
		{Exhausted("budget_exceeded", 3, "m"), 429},
		{Internal(), 500},
		{Misrouted(), 500},
		{Upstream("c", "m"), 502},
		{Unavailable("c", "m"), 503},
		{ProviderError(418), 418},
		{ProviderError(529), 529},
		{ProviderError(200), 502}, // not an error status: never passed on as one
		{&Error{Message: "built without a kind"}, 500},
	} {
		if got := HTTPStatus(tc.e); got != tc.want {
			t.Errorf("%s (kind %d): %d, want %d", tc.e.Code, tc.e.Kind, got, tc.want)
		}
		if ServerSide(tc.e) != (tc.want >= 500) {
			t.Errorf("%s: ServerSide %v for %d", tc.e.Code, ServerSide(tc.e), tc.want)
		}
	}
}

func TestJSON(t *testing.T) {
	var got struct {
		Error struct {
			Message, Type, Code string
			Param               *string
		}
	}
	if err := json.Unmarshal(Invalid("bad", "model", "model %q", "x\"y").JSON(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Error.Message != `model "x\"y"` || got.Error.Type != "invalid_request_error" || got.Error.Code != "bad" || got.Error.Param == nil || *got.Error.Param != "model" {
		t.Fatalf("%+v", got)
	}
	if err := json.Unmarshal(Internal().JSON(), &got); err != nil || got.Error.Param != nil {
		t.Fatalf("param of an error without one: %v %v", err, got.Error.Param)
	}
}
