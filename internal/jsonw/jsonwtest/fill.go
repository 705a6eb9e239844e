// Package jsonwtest holds the appending encoders to encoding/json's bytes:
// Fill puts random values into every exported member of a value, through
// reflection, so a member added to a type later is filled too, and
// Reflect is the reference encoding to compare with.
package jsonwtest

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/jsonw"
)

// Reflect is encoding/json's encoding of v with HTML escaping off.
func Reflect(v any) ([]byte, error) { return jsonw.Marshal(v) }

// Matches fills n values of T at random (Fill) and fails tb unless
// appending each (after a prefix it must keep) writes Reflect(ref(v))'s
// bytes, and fails exactly where Reflect does. It returns how many of them
// encoding/json refused (a NaN, a year past 9999).
func Matches[T any](tb testing.TB, rng *rand.Rand, n int, ref func(*T) any, appendJSON func(*T, []byte) ([]byte, error)) (refused int) {
	tb.Helper()
	for i := range n {
		var v T
		Fill(rng, reflect.ValueOf(&v).Elem(), 0)
		want, werr := Reflect(ref(&v))
		got, gerr := appendJSON(&v, []byte("x"))
		if (werr != nil) != (gerr != nil) {
			tb.Fatalf("value %d: error %v, encoding/json's %v", i, gerr, werr)
		}
		if werr != nil {
			refused++
			continue
		}
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			tb.Fatalf("value %d differs\n got: %s\nwant: %s", i, got[1:], want)
		}
	}
	return refused
}

// Strings are the strings Fill draws from: escapes, HTML, non-ASCII,
// invalid UTF-8.
var Strings = []string{"", "support", "gpt-4o", "quo\"te\\", "line\nbreak\t", "<&>", "é漢\u2028", "\xff bad", "\x00\x1f"}

// Fill sets v (settable) to random values, leaving members zero about a
// third of the time (omitempty and omitzero), now and then a NaN or a
// time beyond the year 9999 (which encoding/json refuses). Interface
// members get one of anys (nil among them).
func Fill(rng *rand.Rand, v reflect.Value, depth int, anys ...any) {
	if rng.IntN(3) == 0 && depth > 0 {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			if rng.IntN(50) == 0 {
				v.Set(reflect.ValueOf(time.Date(10000+rng.IntN(10), 1, 1, 0, 0, 0, 0, time.UTC)))
				return
			}
			zones := []*time.Location{time.UTC, time.FixedZone("x", 5400), time.FixedZone("y", -7*3600)}
			v.Set(reflect.ValueOf(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || f.Tag.Get("json") == "-" {
				continue
			}
			Fill(rng, v.Field(i), depth+1, anys...)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		Fill(rng, p.Elem(), depth+1, anys...)
		v.Set(p)
	case reflect.String:
		v.SetString(Strings[rng.IntN(len(Strings))])
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		v.SetInt(rng.Int64N(1<<40) - 1<<39)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		v.SetUint(rng.Uint64() >> 40)
	case reflect.Float64, reflect.Float32:
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
			Fill(rng, s.Index(i), 0, anys...)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < rng.IntN(4); i++ {
			k := reflect.New(v.Type().Key()).Elem()
			Fill(rng, k, 0, anys...)
			val := reflect.New(v.Type().Elem()).Elem()
			Fill(rng, val, 0, anys...)
			m.SetMapIndex(k, val)
		}
		v.Set(m)
	case reflect.Interface:
		if len(anys) > 0 {
			if x := anys[rng.IntN(len(anys))]; x != nil {
				v.Set(reflect.ValueOf(x))
			}
		}
	default:
		panic("jsonwtest.Fill: no filler for " + v.Type().String())
	}
}
