package request

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"io"
	"strings"
)

// PDFReader counts the pages of the PDFs one request sends inline. What
// it inflates of their object streams is bounded for the request, not for
// each file (maxInflate in all): a request of ninety-six small files
// inflating 64 MiB each cost 25 s and 15 GiB of allocation (the fuzzing
// probe). Its zero value is ready.
type PDFReader struct {
	inflated int // bytes inflated, of maxInflate
	streams  int // object streams read, of maxObjStreams
	// One decompressor and one buffer for the request's object streams:
	// a zlib reader made for each of 150,000 empty streams allocated
	// 15 GB and took 3 s (the red team of 2026-12-07).
	zr  io.ReadCloser
	br  bytes.Reader
	buf []byte
}

// maxObjStreams bounds the object streams a request's PDFs are read for;
// a file with more is not counted (Bound's ok false). A writer puts a
// hundred or so objects in each: a thousand-page file has tens.
const maxObjStreams = 4096

// Bound is the most pages a provider may find in a PDF, for a budget's
// hold and count_tokens' answer (Anthropic charges a PDF by its pages:
// each page's text and the page as an image), which must not be less than
// what the provider bills. It reads each byte of the file a bounded number
// of times, whatever the file (a file of unterminated streams was read in
// quadratic time: a 512 KB one took 16 s). It is the most of
// the page objects (/Type /Page), the page tree's kids (a reader counts a
// leaf without /Type as a page) and its /Count. ok is false when the file
// cannot be counted so: no %PDF- header, encrypted, an object stream that
// does not inflate (another filter, damaged, past the request's inflate
// bound), a name written with # escapes that reads as one the count looks
// for (/P#61ge), or no page found at all. A client crafting such a file
// must not have it held at less than the provider reads.
func (r *PDFReader) Bound(pdf []byte) (pages int, ok bool) {
	s := r.scan(pdf)
	pages = max(s.typed, s.kids, s.count)
	return max(pages, 1), s.ok && pages > 0 && bytes.Contains(pdf[:min(len(pdf), 1024)], []byte("%PDF-"))
}

// Inline reads a file part's file_data, a data URL: pdf is true when it
// holds a PDF (its media type application/pdf, or base64 of a file
// starting %PDF-, which a provider may read as one whatever the type
// says), and pages is then Bound's count of it, ok false when that is not
// to be trusted or the data does not decode. Only a PDF is decoded: any
// other file_data costs a prefix comparison.
func (r *PDFReader) Inline(fileData string) (pages int, pdf, ok bool) {
	// A data URL, or bare base64 (which a provider may take too).
	meta, data, b64 := "", fileData, true
	if rest, isURL := strings.CutPrefix(fileData, "data:"); isURL {
		comma := strings.IndexByte(rest, ',')
		if comma < 0 {
			return 0, false, false
		}
		meta, data = rest[:comma], rest[comma+1:]
		b64 = strings.HasSuffix(strings.ToLower(meta), ";base64")
	}
	mt, _, _ := strings.Cut(meta, ";")
	// By its type, or by what it holds: a reader finds %PDF- anywhere in
	// a file's first kilobyte, whatever the type says (a file of
	// application/octet-stream, or with a line before its header, was
	// held at nothing: the red team).
	if !strings.Contains(strings.ToLower(mt), "pdf") && !(b64 && pdfPrefix(data)) {
		return 0, false, false
	}
	if !b64 {
		return 1, true, false
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(data); err != nil {
			return 1, true, false
		}
	}
	pages, ok = r.Bound(raw)
	return pages, true, ok
}

// pdfPrefix reports whether base64 text decodes to bytes holding %PDF- in
// their first kilobyte, where a reader looks for the header.
func pdfPrefix(b64 string) bool {
	b64 = strings.TrimLeft(b64, " \r\n\t")
	var dst [1026]byte
	n, _ := base64.StdEncoding.Decode(dst[:], []byte(b64[:min(len(b64), 1368)]))
	return bytes.Contains(dst[:n], []byte("%PDF-"))
}

// pdfScan is what scan found in a file and its object streams.
type pdfScan struct {
	typed, kids, count int  // page objects, references in /Kids arrays, the largest /Count
	ok                 bool // false: something the count cannot read (Bound)
}

// scan reads pdf and its object streams, each stream once: the search
// goes on after a stream's end (a stream without one runs to the end of
// the file, and ends the scan).
func (r *PDFReader) scan(pdf []byte) pdfScan {
	s := pdfScan{ok: true}
	s.read(pdf)
	for rest := pdf; ; {
		i := bytes.Index(rest, []byte("/ObjStm"))
		if i < 0 {
			break
		}
		at := len(pdf) - len(rest) + i // where /ObjStm is in pdf
		rest = rest[i+len("/ObjStm"):]
		j := bytes.Index(rest, []byte("stream"))
		if j < 0 {
			s.ok = false
			break
		}
		if r.streams++; r.streams > maxObjStreams {
			s.ok = false
			break
		}
		if !plainFlate(pdf, at, rest[:j]) {
			s.ok = false // its objects are read by no one here: not counted
		}
		body := rest[j+len("stream"):]
		// The keyword is followed by an end of line (CRLF or LF).
		body = bytes.TrimPrefix(body, []byte("\r"))
		body = bytes.TrimPrefix(body, []byte("\n"))
		e := bytes.Index(body, []byte("endstream"))
		if e >= 0 {
			rest = body[e+len("endstream"):]
			body = body[:e]
		} else {
			rest = nil
		}
		left := maxInflate - r.inflated
		if left <= 0 {
			s.ok = false
			break
		}
		out, err := r.inflate(body, left+1)
		if err == errNoZlib {
			s.ok = false
			continue
		}
		if len(out) > left { // cut at the bound: what follows is not counted
			out, s.ok = out[:left], false
		}
		r.inflated += len(out)
		// An object stream starts with its objects' numbers and offsets:
		// anything else is still encoded (a second filter).
		if t := bytes.TrimLeft(out, " \r\n\t\f\x00"); err != nil || len(t) == 0 || t[0] < '0' || t[0] > '9' {
			s.ok = false
		}
		s.read(out)
	}
	return s
}

var errNoZlib = errors.New("not a zlib stream")

// inflate inflates body, at most limit bytes, into the reader's buffer,
// with its one decompressor.
func (r *PDFReader) inflate(body []byte, limit int) ([]byte, error) {
	r.br.Reset(body)
	var err error
	if r.zr == nil {
		r.zr, err = zlib.NewReader(&r.br)
	} else {
		err = r.zr.(zlib.Resetter).Reset(&r.br, nil)
	}
	if err != nil {
		r.zr = nil // a failed Reset leaves it unusable
		return nil, errNoZlib
	}
	out := r.buf[:0]
	for len(out) < limit {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, rerr := r.zr.Read(out[len(out):min(cap(out), limit)])
		out = out[:len(out)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	r.buf = out
	return out, err
}

// plainFlate reports whether the object stream whose /ObjStm is at at in
// pdf, its dictionary's rest before "stream" being after, is compressed
// with /FlateDecode alone: another filter after it (/ASCIIHexDecode: the
// inflated hex starts with a digit too) or a predictor (/DecodeParms)
// makes what inflates something else than its objects (the red team: 50
// pages held as 1).
func plainFlate(pdf []byte, at int, after []byte) bool {
	before := pdf[max(0, at-4096):at]
	if k := bytes.LastIndex(before, []byte("obj")); k >= 0 {
		before = before[k:]
	}
	for _, part := range [2][]byte{before, after} {
		if bytes.Contains(part, []byte("/DecodeParms")) || bytes.Contains(part, []byte("/DP")) {
			return false
		}
		if f := bytes.Index(part, []byte("/Filter")); f >= 0 {
			t := part[skipSpace(part, f+len("/Filter")):]
			if len(t) > 0 && t[0] == '[' {
				e := bytes.IndexByte(t, ']')
				if e < 0 || string(bytes.Join(bytes.Fields(t[1:e]), nil)) != "/FlateDecode" {
					return false
				}
			}
		}
	}
	return true
}

// skipSpace is the index of the first byte of b from i that is neither
// white space nor in a comment (% to the end of its line): a comment
// separates tokens as white space does (/Type%c\n/Page is a page).
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\n', '\r', '\t', '\f', 0:
			i++
		case '%':
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// read counts what b holds in plain PDF syntax.
func (s *pdfScan) read(b []byte) {
	typed, indirect := countPages(b)
	s.typed += typed
	if indirect {
		s.ok = false // a type by reference (/Type 5 0 R)
	}
	for rest := b; ; {
		i := bytes.Index(rest, []byte("/Kids"))
		if i < 0 {
			break
		}
		rest = rest[i+len("/Kids"):]
		t := rest[skipSpace(rest, 0):]
		if len(t) > 0 && t[0] >= '0' && t[0] <= '9' {
			s.ok = false // an array by reference (/Kids 3 0 R): not followed here
			continue
		}
		if len(t) == 0 || t[0] != '[' {
			continue
		}
		e := 1
		for e < len(t) && t[e] != ']' { // each "n g R" is a kid; a comment is skipped
			switch {
			case t[e] == '%':
				e = skipSpace(t, e)
				continue
			case t[e] == 'R' && !nameByte(t[e-1]) && (e+1 == len(t) || !nameByte(t[e+1])):
				s.kids++
			}
			e++
		}
		// The next array starts after this one: an unclosed array read
		// to the end for each /Kids in it was quadratic.
		rest = t[e:]
	}
	for rest := b; ; {
		i := bytes.Index(rest, []byte("/Count"))
		if i < 0 {
			break
		}
		rest = rest[i+len("/Count"):]
		t := rest[skipSpace(rest, 0):]
		n, k := 0, 0
		for ; k < len(t) && k < 9 && t[k] >= '0' && t[k] <= '9'; k++ {
			n = n*10 + int(t[k]-'0')
		}
		if k > 0 {
			if u := t[skipSpace(t, k):]; len(u) > 0 && u[0] >= '0' && u[0] <= '9' {
				s.ok = false // a count by reference (/Count 4 0 R)
			}
		}
		s.count = max(s.count, n)
	}
	if bytes.Contains(b, []byte("/Encrypt")) || escapedName(b) {
		s.ok = false
	}
}

// escapedName reports whether b writes a name the count reads with a #
// escape (/P#61ge for /Page): a reader decodes it, the count would not.
func escapedName(b []byte) bool {
	for rest := b; ; {
		i := bytes.IndexByte(rest, '#')
		if i < 0 {
			return false
		}
		// The name's start: a '/' within a few name bytes before.
		j := i - 1
		for j >= 0 && i-j <= 24 && rest[j] != '/' && nameByte(rest[j]) {
			j--
		}
		if j >= 0 && rest[j] == '/' {
			k := i
			for k < len(rest) && k-j <= 40 && nameByte(rest[k]) {
				k++
			}
			var buf [48]byte
			switch string(decodeName(buf[:0], rest[j+1:k])) {
			case "Type", "Page", "Pages", "Kids", "Count", "ObjStm", "Encrypt", "FlateDecode", "Filter":
				return true
			}
		}
		rest = rest[i+1:]
	}
}

// decodeName decodes a PDF name's # escapes (#xx, two hex digits) into
// dst, which it returns.
func decodeName(dst, n []byte) []byte {
	for i := 0; i < len(n); i++ {
		if n[i] == '#' && i+2 < len(n) {
			if h, l := unhex(n[i+1]), unhex(n[i+2]); h >= 0 && l >= 0 {
				dst = append(dst, byte(h<<4|l))
				i += 2
				continue
			}
		}
		dst = append(dst, n[i])
	}
	return dst
}

// unhex is a hex digit's value, -1 for another byte.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// maxInflate bounds what a PDFReader inflates of a request's object
// streams. An object stream holds objects other than streams (page
// objects, fonts' dictionaries): a thousand-page file's are a few
// hundred kilobytes.
const maxInflate = 16 << 20

// countPages counts "/Type /Page" (any white space or comments between,
// none needed) not followed by a name character: "/Type /Pages" is the
// page tree's node, not a page. indirect reports a /Type given by
// reference (/Type 5 0 R), which it cannot follow.
func countPages(b []byte) (n int, indirect bool) {
	for {
		i := bytes.Index(b, []byte("/Type"))
		if i < 0 {
			return n, indirect
		}
		b = b[i+len("/Type"):]
		j := skipSpace(b, 0)
		if j < len(b) && b[j] >= '0' && b[j] <= '9' {
			indirect = true
		}
		if !bytes.HasPrefix(b[j:], []byte("/Page")) {
			continue
		}
		k := j + len("/Page")
		if k == len(b) || !nameByte(b[k]) {
			n++
		}
		b = b[k:]
	}
}

// nameByte is a byte that continues a PDF name (anything but white space
// and the delimiters).
func nameByte(c byte) bool {
	switch c {
	case ' ', '\n', '\r', '\t', '\f', 0, '/', '<', '>', '[', ']', '(', ')', '{', '}', '%':
		return false
	}
	return true
}
