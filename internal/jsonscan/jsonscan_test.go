package jsonscan

import (
	"fmt"
	"math/rand/v2"
	"strings"
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

// TestElements: Elements yields the raw text gjson reads for each element
// of an array, in order, stops when told to, and yields nothing for what
// is not an array.
func TestElements(t *testing.T) {
	arr := ` [ "a\"]" , {"content":"]}","n":[1,2]},[["x"]], -1.5e3,true ,null,"\\",{} ] `
	var want, got []string
	gjson.Parse(arr).ForEach(func(_, v gjson.Result) bool { want = append(want, v.Raw); return true })
	Elements(arr, func(v string) bool { got = append(got, v); return true })
	if len(got) != 8 || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Elements = %q, gjson %q", got, want)
	}
	n := 0
	Elements(`[1,2,3]`, func(string) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Elements went on after false: %d calls", n)
	}
	for _, notArray := range []string{``, ` `, `{}`, `"[1]"`, `12`} {
		Elements(notArray, func(v string) bool { t.Fatalf("Elements(%q) yielded %q", notArray, v); return true })
	}
}

// iteration lists what a ForEach yields: each key's and value's type,
// raw text, string and number.
func iteration(each func(func(k, v gjson.Result) bool)) string {
	var b strings.Builder
	each(func(k, v gjson.Result) bool {
		fmt.Fprintf(&b, "%d %q %q %v | %d %q %q %v\n", k.Type, k.Raw, k.Str, k.Num, v.Type, v.Raw, v.Str, v.Num)
		return true
	})
	return b.String()
}

func checkForEach(t *testing.T, doc string) {
	t.Helper()
	if !gjson.Valid(doc) {
		return
	}
	v := gjson.Parse(doc)
	if got, want := iteration(func(fn func(k, v gjson.Result) bool) { ForEach(v, fn) }), iteration(v.ForEach); got != want {
		t.Fatalf("%q:\n got %s\nwant %s", doc, got, want)
	}
}

// TestForEach: ForEach yields what gjson's ForEach yields — keys (decoded,
// or an element's index), types, raw text, decoded strings, numbers — for
// objects and arrays of every kind of value, escapes in keys and strings,
// brackets inside strings, nesting, white space, scalars, and random mixes.
func TestForEach(t *testing.T) {
	for _, doc := range []string{
		`{}`, `[]`, ` { "a" : "b" , "c":[1,"]"] } `, "[ \"x\" ,\n\t-1.5e3 , true,false,null,{\"k\":\"}\"} ]",
		`{"mod\u0065l":"gpt","messages":[{"role":"user","content":"a\nb \"q\""}],"n":2,"stream":true,"user":"\ud83d\ude00"}`,
		`"str"`, `12`, `null`, `true`,
	} {
		checkForEach(t, doc)
	}
	pieces := []string{`a`, ` `, `\n`, `\"`, `\\`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `é`, `}`, `]`, `[`, `{`, `,`, `:`}
	rng := rand.New(rand.NewPCG(7, 8))
	str := func() string {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return `"` + b.String() + `"`
	}
	value := func() string {
		switch rng.IntN(5) {
		case 0:
			return str()
		case 1:
			return `{` + str() + `:[` + str() + `,1]}`
		case 2:
			return `[` + str() + `,-0.5,null]`
		case 3:
			return "false"
		}
		return "42"
	}
	for range 20000 {
		var b strings.Builder
		obj := rng.IntN(2) == 0
		if obj {
			b.WriteString("{")
		} else {
			b.WriteString("[")
		}
		for j := range rng.IntN(5) {
			if j > 0 {
				b.WriteString(" ,"[rng.IntN(2):])
			}
			if obj {
				b.WriteString(str() + " : ")
			}
			b.WriteString(value())
		}
		if obj {
			b.WriteString("}")
		} else {
			b.WriteString("]")
		}
		checkForEach(t, b.String())
	}
}

// TestForEachMembers: ForEach yields what gjson's ForEach yields — keys,
// types, raw values and decoded strings — for objects with every kind of
// value, escapes of every kind (surrogate pairs, lone and broken ones),
// nested objects with strings holding brackets and quotes, white space
// everywhere, non-objects, and random mixes of those pieces.
func TestForEachMembers(t *testing.T) {
	for _, doc := range []string{
		`{}`, ` { } `, `{"a":"b"}`, "{ \"a\" :\n\t\"b\" , \"c\":1 }",
		`{"role":"user","content":"line\nbreak \"quoted\" back\\slash \/ \b\f\r\t tab"}`,
		`{"e":"\u00e9\u4e2d\ud83d\ude00 pair","lone":"\ud83d alone","bad":"\ud83d\u0041","low":"\ude00"}`,
		`{"k\"ey":"v","k\\":"\\","\u0041":"A"}`,
		`{"n":-1.5e3,"t":true,"f":false,"z":null,"o":{"x":"}]","y":[1,{"z":"\"}"}]},"a":[]}`,
		`{"content":[{"type":"text","text":"part \"one\""},{"type":"text","text":"two\n"}]}`,
		`[1,2]`, `"str"`, `12`, `null`,
	} {
		checkForEach(t, doc)
	}
	pieces := []string{`a`, ` `, `\n`, `\"`, `\\`, `\/`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\u0000`, `\t`, `é`, `}`, `]`, `{`, `,`, `:`}
	rng := rand.New(rand.NewPCG(3, 4))
	str := func() string { return randomString(rng, pieces) }
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
		checkForEach(t, b.String())
	}
}

// TestForEachElements: ForEach yields what gjson's ForEach yields for
// arrays — types, raw text, decoded strings, numbers — for arrays of every
// kind of value, strings with escapes and brackets, nested arrays and
// objects, white space everywhere, non-arrays, and random mixes; and it
// stops when fn says so.
func TestForEachElements(t *testing.T) {
	for _, doc := range []string{
		`[]`, ` [ ] `, `["a"]`, "[ \"a\" ,\n\t1 , true,false,null , -0.5e-3 ]",
		`[{"role":"user","content":"a\nb \"q\" ]"},{"role":"assistant","content":[{"type":"text","text":"x]"}]}]`,
		`["\u00e9\ud83d\ude00","\ud83d","\\","\/"]`, `[[1,[2,"]"]],{"a":"}"}]`,
		`{"a":1}`, `"str"`, `12`, `null`,
	} {
		checkForEach(t, doc)
	}
	pieces := []string{`a`, ` `, `\n`, `\"`, `\\`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `é`, `}`, `]`, `[`, `,`}
	rng := rand.New(rand.NewPCG(5, 6))
	str := func() string { return randomString(rng, pieces) }
	for range 20000 {
		var b strings.Builder
		b.WriteString("[")
		for j := range rng.IntN(6) {
			if j > 0 {
				b.WriteString(" , "[rng.IntN(2):])
			}
			switch rng.IntN(5) {
			case 0:
				b.WriteString(str())
			case 1:
				b.WriteString(`{"role":` + str() + `,"content":[` + str() + `]}`)
			case 2:
				b.WriteString(`[` + str() + `,-0.5,null]`)
			case 3:
				b.WriteString("true")
			default:
				b.WriteString("123")
			}
		}
		b.WriteString("]")
		checkForEach(t, b.String())
	}
	n := 0
	ForEach(gjson.Parse(`[1,2,3]`), func(_, _ gjson.Result) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("ForEach went on after false: %d calls", n)
	}
}

// FuzzForEach holds ForEach to gjson's on any valid JSON.
func FuzzForEach(f *testing.F) {
	f.Add(`{"model":"auto","messages":[{"role":"user","content":"a\nb"}],"metadata":{"k":"v"}}`)
	f.Add(`["]",[1,{"a":"]"}],"\ud83d\ude00",-0,true]`)
	f.Add(`[{"role":"user","content":"a\nb"}]`)
	f.Add(`{"role":"user","content":"a\nb"}`)
	f.Add(`{"a":{"b":"}"},"c":[1,"]"],"d":"\ud83d\ude00"}`)
	f.Add(`{"x":"\ud800\u0041","y":-0}`)
	f.Fuzz(func(t *testing.T, doc string) { checkForEach(t, doc) })
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

// randomString is a JSON string literal of up to seven pieces drawn from
// pieces (escapes, brackets, multi-byte text).
func randomString(rng *rand.Rand, pieces []string) string {
	var b strings.Builder
	for range rng.IntN(8) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return `"` + b.String() + `"`
}
