package classify

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// members lists what an iteration yields: each key's and value's type,
// raw text and string.
func members(each func(func(k, v gjson.Result) bool)) string {
	var b strings.Builder
	each(func(k, v gjson.Result) bool {
		fmt.Fprintf(&b, "%d %q %q | %d %q %q\n", k.Type, k.Raw, k.Str, v.Type, v.Raw, v.Str)
		return true
	})
	return b.String()
}

func checkMembers(t *testing.T, doc string) {
	t.Helper()
	if !gjson.Valid(doc) {
		return
	}
	obj := gjson.Parse(doc)
	want := members(obj.ForEach)
	got := members(func(fn func(k, v gjson.Result) bool) { eachMember(obj, fn) })
	if got != want {
		t.Fatalf("%q:\n got %s\nwant %s", doc, got, want)
	}
}

// TestEachMember: eachMember yields what gjson's ForEach yields — keys,
// types, raw values and decoded strings — for objects with every kind of
// value, escapes of every kind (surrogate pairs, lone and broken ones),
// nested objects with strings holding brackets and quotes, white space
// everywhere, non-objects, and random mixes of those pieces.
func TestEachMember(t *testing.T) {
	for _, doc := range []string{
		`{}`, ` { } `, `{"a":"b"}`, "{ \"a\" :\n\t\"b\" , \"c\":1 }",
		`{"role":"user","content":"line\nbreak \"quoted\" back\\slash \/ \b\f\r\t tab"}`,
		`{"e":"\u00e9\u4e2d\ud83d\ude00 pair","lone":"\ud83d alone","bad":"\ud83d\u0041","low":"\ude00"}`,
		`{"k\"ey":"v","k\\":"\\","\u0041":"A"}`,
		`{"n":-1.5e3,"t":true,"f":false,"z":null,"o":{"x":"}]","y":[1,{"z":"\"}"}]},"a":[]}`,
		`{"content":[{"type":"text","text":"part \"one\""},{"type":"text","text":"two\n"}]}`,
		`[1,2]`, `"str"`, `12`, `null`,
	} {
		checkMembers(t, doc)
	}
	pieces := []string{`a`, ` `, `\n`, `\"`, `\\`, `\/`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\u0000`, `\t`, `é`, `}`, `]`, `{`, `,`, `:`}
	rng := rand.New(rand.NewPCG(3, 4))
	str := func() string {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return `"` + b.String() + `"`
	}
	for range 20000 {
		var b strings.Builder
		b.WriteString("{")
		for j := range rng.IntN(5) {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString(str() + ":")
			switch rng.IntN(4) {
			case 0:
				b.WriteString(str())
			case 1:
				b.WriteString(`{"x":` + str() + `,"y":[` + str() + `]}`)
			case 2:
				b.WriteString(`[` + str() + `,-0.5,null]`)
			default:
				b.WriteString("123")
			}
		}
		b.WriteString("}")
		checkMembers(t, b.String())
	}
}

// FuzzEachMember: on any valid JSON, eachMember yields what ForEach does.
func FuzzEachMember(f *testing.F) {
	f.Add(`{"role":"user","content":"a\nb"}`)
	f.Add(`{"a":{"b":"}"},"c":[1,"]"],"d":"\ud83d\ude00"}`)
	f.Add(`{"x":"\ud800\u0041","y":-0}`)
	f.Fuzz(func(t *testing.T, doc string) { checkMembers(t, doc) })
}
