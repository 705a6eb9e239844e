package jsonw

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Encoder writes a JSON object member by member, as encoding/json writes
// a struct: the caller names the members in declaration order and honours
// omitempty by calling the ...Omit form. B is the output, Err the first
// error (a NaN, a value encoding/json refuses); writing goes on after one.
type Encoder struct {
	B    []byte
	Err  error
	more bool // the object being written has a member: the next one needs a comma
}

// Open starts an object (a member's value after Key, or an array element);
// pass what it returns to Close.
func (e *Encoder) Open() (outer bool) {
	e.B = append(e.B, '{')
	outer, e.more = e.more, false
	return outer
}

// Close ends the object Open started.
func (e *Encoder) Close(outer bool) {
	e.B = append(e.B, '}')
	e.more = outer
}

// Key writes a member's name (verbatim: a constant of the caller) and
// the separator before it.
func (e *Encoder) Key(k string) {
	if e.more {
		e.B = append(e.B, ',')
	}
	e.more = true
	e.B = append(e.B, '"')
	e.B = append(e.B, k...)
	e.B = append(e.B, '"', ':')
}

// Str writes a string member.
func (e *Encoder) Str(k, v string) {
	e.Key(k)
	e.B = AppendString(e.B, v)
}

// StrOmit writes a string member unless it is empty.
func (e *Encoder) StrOmit(k, v string) {
	if v != "" {
		e.Str(k, v)
	}
}

// Int writes an integer member.
func (e *Encoder) Int(k string, v int64) {
	e.Key(k)
	e.B = AppendInt(e.B, v)
}

// IntOmit writes an integer member unless it is 0.
func (e *Encoder) IntOmit(k string, v int64) {
	if v != 0 {
		e.Int(k, v)
	}
}

// Float writes a number member; NaN and Inf set Err.
func (e *Encoder) Float(k string, v float64) {
	e.Key(k)
	var err error
	if e.B, err = AppendFloat(e.B, v); err != nil && e.Err == nil {
		e.Err = err
	}
}

// FloatOmit writes a number member unless it is 0.
func (e *Encoder) FloatOmit(k string, v float64) {
	if v != 0 {
		e.Float(k, v)
	}
}

// Bool writes a boolean member.
func (e *Encoder) Bool(k string, v bool) {
	e.Key(k)
	if v {
		e.B = append(e.B, "true"...)
	} else {
		e.B = append(e.B, "false"...)
	}
}

// BoolOmit writes a boolean member when true.
func (e *Encoder) BoolOmit(k string, v bool) {
	if v {
		e.Bool(k, v)
	}
}

// Strs writes a string list; nil is null, as encoding/json writes a nil
// slice member without omitempty.
func (e *Encoder) Strs(k string, vs []string) {
	e.List(k, len(vs), vs == nil, func(i int) { e.B = AppendString(e.B, vs[i]) })
}

// List writes a list member of n elements, element i by item(i) (an
// object's members with Open and Close); null when isNil (a nil slice), as
// encoding/json writes a nil slice member without omitempty.
func (e *Encoder) List(k string, n int, isNil bool, item func(i int)) {
	e.Key(k)
	if isNil {
		e.B = append(e.B, "null"...)
		return
	}
	e.B = append(e.B, '[')
	for i := range n {
		if i > 0 {
			e.B = append(e.B, ',')
		}
		item(i)
	}
	e.B = append(e.B, ']')
}

// StrsOmit writes a string list member unless it is empty.
func (e *Encoder) StrsOmit(k string, vs []string) {
	if len(vs) > 0 {
		e.Strs(k, vs)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// MapKey writes a map's key through the string writer (Key writes member
// names verbatim: they are the caller's constants).
func (e *Encoder) MapKey(k string) {
	if e.more {
		e.B = append(e.B, ',')
	}
	e.more = true
	e.B = AppendString(e.B, k)
	e.B = append(e.B, ':')
}

// EncodedKey is a member's name as Key and MapKey write it (a JSON string
// and a colon), for RawKey.
func EncodedKey(k string) []byte { return append(AppendString(nil, k), ':') }

// RawKey writes a member's name from EncodedKey's bytes: names written
// again and again are escaped once.
func (e *Encoder) RawKey(k []byte) {
	if e.more {
		e.B = append(e.B, ',')
	}
	e.more = true
	e.B = append(e.B, k...)
}

// mapOmit writes a map member, keys sorted, each value by value;
// nothing when the map is empty.
func mapOmit[V any](e *Encoder, k string, m map[string]V, value func(V)) {
	if len(m) == 0 {
		return
	}
	e.Key(k)
	outer := e.Open()
	for _, name := range sortedKeys(m) {
		e.MapKey(name)
		value(m[name])
	}
	e.Close(outer)
}

// IntMap writes a map of integers, keys sorted; null when nil.
func (e *Encoder) IntMap(k string, m map[string]int) {
	if m == nil {
		e.Key(k)
		e.B = append(e.B, "null"...)
		return
	}
	if len(m) == 0 {
		e.Key(k)
		e.B = append(e.B, '{', '}')
		return
	}
	e.IntMapOmit(k, m)
}

// IntMapOmit writes a map of integers, keys sorted; nothing when empty
// (and no closure made for it: an empty map, the usual case, allocates
// nothing).
func (e *Encoder) IntMapOmit(k string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	mapOmit(e, k, m, func(v int) { e.B = AppendInt(e.B, int64(v)) })
}

// FloatMapOmit writes a map of numbers, keys sorted; nothing when empty.
func (e *Encoder) FloatMapOmit(k string, m map[string]float64) {
	if len(m) == 0 {
		return
	}
	mapOmit(e, k, m, func(v float64) {
		var err error
		if e.B, err = AppendFloat(e.B, v); err != nil && e.Err == nil {
			e.Err = err
		}
	})
}

// StringMapOmit writes a map of strings, keys sorted; nothing when empty.
func (e *Encoder) StringMapOmit(k string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	mapOmit(e, k, m, func(v string) { e.B = AppendString(e.B, v) })
}

// ErrTimeRange is Time's error for a year outside 0–9999, which
// time.Time's JSON form cannot hold (encoding/json refuses it too).
var ErrTimeRange = errors.New("json: time outside the years 0 to 9999")

// Time writes a time as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted).
func (e *Encoder) Time(k string, t time.Time) {
	e.Key(k)
	e.B = append(e.B, '"')
	var err error
	if e.B, err = t.AppendText(e.B); err != nil && e.Err == nil {
		e.Err = ErrTimeRange
	}
	e.B = append(e.B, '"')
}

// Marshal is encoding/json's encoding of v with HTML escaping off, without
// the encoder's trailing newline: what the appenders reproduce, and what
// prompt text such as "<b>" keeps readable in.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Appender is a value that writes its own encoding: the bytes encoding/json
// would write for it with HTML escaping off (a nil pointer writes null).
type Appender interface {
	AppendJSON(dst []byte) ([]byte, error)
}

// Value writes v with its AppendJSON when it has one, otherwise with
// encoding/json as the reflection encoder would: compact, no HTML
// escaping.
func (e *Encoder) Value(k string, v any) {
	e.Key(k)
	if a, ok := v.(Appender); ok {
		b, err := a.AppendJSON(e.B)
		if err != nil && e.Err == nil {
			e.Err = err
		}
		e.B = b
		return
	}
	b, err := Marshal(v)
	if err != nil {
		if e.Err == nil {
			e.Err = err
		}
		e.B = append(e.B, "null"...)
		return
	}
	e.B = append(e.B, b...)
}
