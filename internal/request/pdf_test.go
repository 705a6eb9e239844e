package request

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"strings"
	"testing"
)

// objStm is a PDF 1.5 object stream holding n page objects, compressed.
func objStm(n int) string {
	var raw bytes.Buffer
	for i := range n {
		fmt.Fprintf(&raw, "<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents %d 0 R>>\n", 10+i)
	}
	fmt.Fprintf(&raw, "<</Type /Pages /Kids [] /Count %d>>", n)
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(raw.Bytes())
	w.Close()
	return fmt.Sprintf("5 0 obj\n<</Type/ObjStm/N %d/First 10/Filter/FlateDecode/Length %d>>stream\r\n%sendstream\nendobj\n", n+1, z.Len(), z.String())
}

func TestPDFPages(t *testing.T) {
	plain := "%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n2 0 obj <</Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3>> endobj\n" +
		"3 0 obj <</Type /Page /Parent 2 0 R>> endobj\n4 0 obj <</Type/Page/Parent 2 0 R>> endobj\n5 0 obj <</Type\n/Page>> endobj\n%%EOF"
	for name, c := range map[string]struct {
		pdf  string
		want int
	}{
		"plain":                   {plain, 3},
		"object streams":          {"%PDF-1.5\n" + objStm(7) + objStm(5) + "%%EOF", 12},
		"both":                    {plain + objStm(2), 5},
		"no pages found":          {"%PDF-1.7 garbage", 1},
		"empty":                   {"", 1},
		"a bad stream":            {"%PDF-1.5\n1 0 obj <</Type/ObjStm>>stream\nnot zlib endstream " + objStm(4), 4},
		"a name starting /Page":   {"<</Type /PageLabel>> <</Type /Pages>>", 1},
		"cut after the keyword":   {"<</Type /Page", 1},
		"cut in an object stream": {"%PDF-1.5\n" + objStm(3)[:60], 1},
	} {
		if got := PDFPages([]byte(c.pdf)); got != c.want {
			t.Errorf("%s: %d pages, want %d", name, got, c.want)
		}
	}
	if got := PDFPages([]byte(strings.Repeat(plain, 100))); got != 300 {
		t.Errorf("repeated: %d", got)
	}
}

// FuzzPDFPages: a client's file never panics the count, and is at least
// a page.
func FuzzPDFPages(f *testing.F) {
	f.Add([]byte("%PDF-1.4 <</Type /Page>> <</Type /Pages>>"))
	f.Add([]byte(objStm(3)))
	f.Add([]byte("/ObjStm stream\nx\x9c endstream"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if PDFPages(b) < 1 {
			t.Fatal("less than a page")
		}
	})
}
