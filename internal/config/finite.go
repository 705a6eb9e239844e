package config

import (
	"fmt"
	"math"
	"reflect"
	"strings"
)

// nonFinite lists every number of v (a config, or part of one) that is NaN
// or infinite, by its YAML path: YAML reads .nan and .inf as numbers, and
// checks written as x < 0 || x > 1 let NaN through. A NaN injection
// threshold made the policy panic on every request, a NaN price made every
// audit record unwritable and its requests free, a NaN quality won every
// selection (the config probe).
func nonFinite(v reflect.Value, path string, out []string) []string {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			out = append(out, path)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			out = nonFinite(v.Elem(), path, out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case name == "-":
				continue
			case name == "" && f.Anonymous:
				out = nonFinite(v.Field(i), path, out)
				continue
			case name == "":
				name = strings.ToLower(f.Name)
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			out = nonFinite(v.Field(i), p, out)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			out = nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			out = nonFinite(iter.Value(), fmt.Sprintf("%s.%v", path, iter.Key()), out)
		}
	}
	return out
}
