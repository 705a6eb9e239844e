package jsonscan

import (
	"testing"

	"github.com/tidwall/gjson"
)

// firstMember is what Member must return: gjson's own reading of obj's
// members, the first one named key.
func firstMember(obj, key string) (raw string, ok bool) {
	gjson.Parse(obj).ForEach(func(k, v gjson.Result) bool {
		if k.Str == key {
			raw, ok = v.Raw, true
			return false
		}
		return true
	})
	return raw, ok
}

func TestMember(t *testing.T) {
	obj := `{ "role" : "user", "name":"a\"b", "content":"line\none \"quoted\" \\", "parts":[{"type":"text","text":"]}"},1], ` +
		`"n": -1.5e3 ,"t":true,"o":{"content":"inner"}, "k\u0065y":"escaped key", "content":"second"}`
	for key, want := range map[string]string{
		"role":    `"user"`,
		"name":    `"a\"b"`,
		"content": `"line\none \"quoted\" \\"`, // the first of two, as gjson
		"parts":   `[{"type":"text","text":"]}"},1]`,
		"n":       `-1.5e3`,
		"t":       `true`,
		"o":       `{"content":"inner"}`,
		"key":     `"escaped key"`,
	} {
		got, ok := Member(obj, key)
		if !ok || got != want {
			t.Errorf("Member(%q) = %q, %v; want %q", key, got, ok, want)
		}
		if ref, _ := firstMember(obj, key); ref != want {
			t.Errorf("gjson reads %q as %q; the test's expectation %q is wrong", key, ref, want)
		}
	}
	for _, key := range []string{"missing", "inner", "type", ""} {
		if got, ok := Member(obj, key); ok {
			t.Errorf("Member(%q) = %q, want not found", key, got)
		}
	}
	if got, ok := Member(" \n{\"content\": \"x\"} ", "content"); !ok || got != `"x"` {
		t.Errorf("Member with blanks around the object = %q, %v", got, ok)
	}
	for _, notObject := range []string{``, ` `, `[]`, `"content"`, `12`} {
		if got, ok := Member(notObject, "content"); ok {
			t.Errorf("Member(%q) = %q, want not found", notObject, got)
		}
	}
}

// FuzzMember holds Member to gjson's reading of any valid JSON object.
func FuzzMember(f *testing.F) {
	f.Add(`{"role":"user","content":"a\nb \"c\""}`, "content")
	f.Add(`{"content":[{"type":"image_url","image_url":{"url":"x"}}]}`, "content")
	f.Add(`{"a\u0062":1,"ab":2}`, "ab")
	f.Add(" \t{\"a\" : 1 }\n", "a")
	f.Add(`{"a":{"b":[1,{"c":"}"}]},"b":"\\\\"}`, "b")
	f.Fuzz(func(t *testing.T, obj, key string) {
		if !gjson.Valid(obj) || !gjson.Parse(obj).IsObject() {
			return
		}
		got, ok := Member(obj, key)
		want, wantOK := firstMember(obj, key)
		if got != want || ok != wantOK {
			t.Fatalf("Member(%q, %q) = %q, %v; gjson reads %q, %v", obj, key, got, ok, want, wantOK)
		}
	})
}
