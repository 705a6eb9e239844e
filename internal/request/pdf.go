package request

import (
	"bytes"
	"compress/zlib"
	"io"
)

// PDFPages counts the pages of a PDF a client sends inline, for a token
// estimate (Anthropic charges a PDF by its pages: each page's text and
// the page as an image). It counts the page objects (/Type /Page), in the
// file and in its compressed object streams, where PDF 1.5 and later keep
// them; 1 when it finds none (a damaged or encrypted file still costs a
// page). It reads no more than maxInflate bytes out of the object streams
// in all: a file is the client's, and a small stream can inflate a lot.
func PDFPages(pdf []byte) int {
	n := countPages(pdf)
	budget := maxInflate
	for rest := pdf; budget > 0; {
		i := bytes.Index(rest, []byte("/ObjStm"))
		if i < 0 {
			break
		}
		rest = rest[i+len("/ObjStm"):]
		s := bytes.Index(rest, []byte("stream"))
		if s < 0 {
			break
		}
		body := rest[s+len("stream"):]
		// The keyword is followed by an end of line (CRLF or LF).
		body = bytes.TrimPrefix(body, []byte("\r"))
		body = bytes.TrimPrefix(body, []byte("\n"))
		if e := bytes.Index(body, []byte("endstream")); e >= 0 {
			body = body[:e]
		}
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			continue
		}
		out, _ := io.ReadAll(io.LimitReader(zr, int64(budget)))
		budget -= len(out)
		n += countPages(out)
	}
	return max(n, 1)
}

// maxInflate bounds what PDFPages inflates of one file's object streams.
const maxInflate = 64 << 20

// countPages counts "/Type /Page" (any white space between, none needed)
// not followed by a name character: "/Type /Pages" is the page tree's
// node, not a page.
func countPages(b []byte) int {
	n := 0
	for {
		i := bytes.Index(b, []byte("/Type"))
		if i < 0 {
			return n
		}
		b = b[i+len("/Type"):]
		j := 0
		for j < len(b) && (b[j] == ' ' || b[j] == '\n' || b[j] == '\r' || b[j] == '\t' || b[j] == '\f' || b[j] == 0) {
			j++
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
