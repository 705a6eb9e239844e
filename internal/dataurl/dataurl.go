// Package dataurl reads the text a data: URL carries, for the classifiers:
// a file a request sends inline (a chat "file" part's file_data, a
// Responses input_file) is text the model reads when it is a text file.
package dataurl

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// Text is the text of a data URL whose media type is text (text/*, JSON,
// XML, YAML, CSV), base64-encoded or not, at most max bytes of it; false
// for any other URL, another media type (a PDF, an image), a payload that
// does not decode or is not UTF-8. A payload larger than max is cut at
// max bytes (whole runes).
func Text(s string, max int) (string, bool) {
	rest, ok := strings.CutPrefix(s, "data:")
	if !ok {
		return "", false
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok {
		return "", false
	}
	mediaType, params, _ := strings.Cut(meta, ";")
	if !isText(strings.ToLower(strings.TrimSpace(mediaType))) {
		return "", false
	}
	var out string
	if strings.HasSuffix(strings.ToLower(params), "base64") {
		// Decode at most what max needs: 3 bytes per 4 characters.
		if n := (max/3 + 1) * 4; len(payload) > n {
			payload = payload[:n]
		}
		b, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(payload, "="))
			if err != nil {
				return "", false
			}
		}
		out = string(b)
	} else {
		out = payload // percent-encoding left as it is: the detectors read it
	}
	if len(out) > max {
		out = out[:max]
		for len(out) > 0 && !utf8.ValidString(out) {
			out = out[:len(out)-1]
		}
	}
	if !utf8.ValidString(out) {
		return "", false
	}
	return out, true
}

func isText(t string) bool {
	switch t {
	case "application/json", "application/xml", "application/yaml", "application/x-yaml", "application/csv", "application/x-ndjson":
		return true
	}
	return strings.HasPrefix(t, "text/")
}
