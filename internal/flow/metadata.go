package flow

import (
	"fmt"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/request"
)

// MetadataHeader bounds: the same as the body's metadata object
// (internal/request).
const (
	maxMetadataKeys  = 16
	maxMetadataKey   = 64
	maxMetadataValue = 512
)

// ParseMetadataHeader reads the x-stellwerk-metadata header: a JSON object
// of string values, for clients that cannot add a body field. Anything
// else is an error the edge answers with 400 (never ignored).
func ParseMetadataHeader(v string) (map[string]string, error) {
	if !gjson.Valid(v) {
		return nil, fmt.Errorf("x-stellwerk-metadata is not valid JSON")
	}
	// As a body's text (request.CheckBody): bytes that are not UTF-8 and a
	// lone surrogate's escape are read one way here and another by the
	// audit log and the route conditions (the non-English probe: Latin-1
	// "Z\xfcrich" was kept as "Z\ufffdrich", and no condition on it held).
	if !utf8.ValidString(v) {
		return nil, fmt.Errorf("x-stellwerk-metadata is not valid UTF-8; send the header's JSON as UTF-8")
	}
	if request.LoneSurrogate([]byte(v)) {
		return nil, fmt.Errorf("x-stellwerk-metadata has a \\u escape of a lone surrogate, which is no character")
	}
	r := gjson.Parse(v)
	if !r.IsObject() {
		return nil, fmt.Errorf("x-stellwerk-metadata must be a JSON object of strings")
	}
	out := map[string]string{}
	var err error
	r.ForEach(func(k, val gjson.Result) bool {
		switch {
		case val.Type != gjson.String:
			err = fmt.Errorf("x-stellwerk-metadata: %q must be a string", truncate(k.Str, 64))
		case len(k.Str) == 0 || len(k.Str) > maxMetadataKey || len(val.Str) > maxMetadataValue:
			err = fmt.Errorf("x-stellwerk-metadata: keys are 1 to %d bytes, values at most %d", maxMetadataKey, maxMetadataValue)
		case len(out) == maxMetadataKeys:
			err = fmt.Errorf("x-stellwerk-metadata: at most %d keys", maxMetadataKeys)
		default:
			if _, dup := out[k.Str]; dup {
				err = fmt.Errorf("x-stellwerk-metadata: %q is given twice", truncate(k.Str, 64))
				return false
			}
			out[k.Str] = val.Str
			return true
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
