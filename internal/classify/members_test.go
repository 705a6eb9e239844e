package classify

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

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

// elements lists what an iteration over an array yields: each value's
// type, raw text, string and number.
func elements(each func(func(v gjson.Result) bool)) string {
	var b strings.Builder
	each(func(v gjson.Result) bool {
		fmt.Fprintf(&b, "%d %q %q %v\n", v.Type, v.Raw, v.Str, v.Num)
		return true
	})
	return b.String()
}

func checkElements(t *testing.T, doc string) {
	t.Helper()
	if !gjson.Valid(doc) {
		return
	}
	arr := gjson.Parse(doc)
	want := elements(func(fn func(v gjson.Result) bool) {
		arr.ForEach(func(_, v gjson.Result) bool { return fn(v) })
	})
	got := elements(func(fn func(v gjson.Result) bool) { eachElement(arr, fn) })
	if got != want {
		t.Fatalf("%q:\n got %s\nwant %s", doc, got, want)
	}
}

// TestEachElement: eachElement yields what gjson's ForEach yields as
// values — types, raw text, decoded strings, numbers — for arrays of every
// kind of value, strings with escapes and brackets, nested arrays and
// objects, white space everywhere, non-arrays, and random mixes; and it
// stops when fn says so.
func TestEachElement(t *testing.T) {
	for _, doc := range []string{
		`[]`, ` [ ] `, `["a"]`, "[ \"a\" ,\n\t1 , true,false,null , -0.5e-3 ]",
		`[{"role":"user","content":"a\nb \"q\" ]"},{"role":"assistant","content":[{"type":"text","text":"x]"}]}]`,
		`["\u00e9\ud83d\ude00","\ud83d","\\","\/"]`, `[[1,[2,"]"]],{"a":"}"}]`,
		`{"a":1}`, `"str"`, `12`, `null`,
	} {
		checkElements(t, doc)
	}
	pieces := []string{`a`, ` `, `\n`, `\"`, `\\`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `é`, `}`, `]`, `[`, `,`}
	rng := rand.New(rand.NewPCG(5, 6))
	str := func() string {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return `"` + b.String() + `"`
	}
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
		checkElements(t, b.String())
	}
	n := 0
	eachElement(gjson.Parse(`[1,2,3]`), func(gjson.Result) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("eachElement went on after false: %d calls", n)
	}
}

// FuzzEachElement: on any valid JSON, eachElement yields what ForEach does.
func FuzzEachElement(f *testing.F) {
	f.Add(`[{"role":"user","content":"a\nb"}]`)
	f.Add(`["]",[1,{"a":"]"}],"\ud83d\ude00",-0,true]`)
	f.Fuzz(func(t *testing.T, doc string) { checkElements(t, doc) })
}

// FuzzEachMember: on any valid JSON, eachMember yields what ForEach does.
func FuzzEachMember(f *testing.F) {
	f.Add(`{"role":"user","content":"a\nb"}`)
	f.Add(`{"a":{"b":"}"},"c":[1,"]"],"d":"\ud83d\ude00"}`)
	f.Add(`{"x":"\ud800\u0041","y":-0}`)
	f.Fuzz(func(t *testing.T, doc string) { checkMembers(t, doc) })
}

// unescapeBytewise is unescape as it was before it skipped eight bytes at
// a time: the reference TestUnescapeWords and FuzzUnescape hold it to.
func unescapeBytewise(s string) string {
	b := make([]byte, 0, len(s))
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' {
			return string(append(b, s[run:i]...))
		}
		if c != '\\' {
			continue
		}
		b = append(b, s[run:i]...)
		if i++; i == len(s) {
			return string(b)
		}
		switch c = s[i]; c {
		case '\\', '/', '"':
			b = append(b, c)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if i+5 > len(s) {
				return string(b)
			}
			r := hexRune(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) && i+7 <= len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				r = utf16.DecodeRune(r, hexRune(s[i+3:]))
				i += 6
			}
			b = utf8.AppendRune(b, r)
		default:
			return string(b)
		}
		run = i + 1
	}
	return string(append(b, s[run:]...))
}

// TestUnescapeWords: unescape decodes as the byte-by-byte loop did, with
// escapes, control characters, cut escapes and multi-byte text at every
// offset from the eight-byte words it skips (lengths 0–40, random mixes).
func TestUnescapeWords(t *testing.T) {
	pieces := []string{`a`, `bcdefgh`, `é`, `中`, `\n`, `\"`, `\\`, `\/`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\u12`, `\x`, "\x00", "\x1f", "\t", " ", "\x7f", "\xff", `\`}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 100000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		if got, want := unescape(s), unescapeBytewise(s); got != want {
			t.Fatalf("unescape(%q) = %q, want %q", s, got, want)
		}
	}
	for n := range 41 {
		for at := range n {
			for _, special := range []string{`\n`, "\x01", `\`, `\u0041`} {
				s := strings.Repeat("x", at) + special + strings.Repeat("y", n-at)
				if got, want := unescape(s), unescapeBytewise(s); got != want {
					t.Fatalf("unescape(%q) = %q, want %q", s, got, want)
				}
			}
		}
	}
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`plain text of some length`, `a\nb\"c\\d`, `\ud83d\ude00 and more text`, "ctl\x01here", `cut\u00`, `end\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := unescape(s), unescapeBytewise(s); got != want {
			t.Fatalf("unescape(%q) = %q, want %q", s, got, want)
		}
	})
}

// BenchmarkUnescape: 32 KB of a message as a JSON body carries it —
// paragraphs of prose, a quoted word in each, a blank line between them
// (documents), and the same with an escape every 50 bytes (dialogue).
func BenchmarkUnescape(b *testing.B) {
	sentence := "The committee reviewed the figures and asked for a summary of the changes since the last meeting. "
	for _, c := range []struct{ name, para string }{
		{"documents", strings.Repeat(sentence, 3) + `It called them \"encouraging\". ` + strings.Repeat(sentence, 3) + `\n\n`},
		{"dialogue", `\"The committee reviewed the figures,\" she said.\n`},
	} {
		s := strings.Repeat(c.para, 32<<10/len(c.para))
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			b.ReportAllocs()
			for b.Loop() {
				unescape(s)
			}
		})
	}
}
