package request

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// objStm is a PDF 1.5 object stream holding n page objects, compressed.
func objStm(n int) string {
	var raw bytes.Buffer
	raw.WriteString("10 0 11 80 ") // the objects' numbers and offsets (not all of them: nothing reads them)
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
		if got, _ := new(PDFReader).Bound([]byte(c.pdf)); got != c.want {
			t.Errorf("%s: %d pages, want %d", name, got, c.want)
		}
	}
	if got, _ := new(PDFReader).Bound([]byte(strings.Repeat(plain, 100))); got != 300 {
		t.Errorf("repeated: %d", got)
	}
}

// TestPDFPageBound: the hold's count is never less than a reader finds,
// and a file it cannot count so says so (the budgets then hold the
// model's whole context window): a crafted file read as fewer pages than
// the provider bills would overrun a block budget.
func TestPDFPageBound(t *testing.T) {
	leaves := func(n int) string { // page objects without /Type, which a reader counts by the tree
		var b strings.Builder
		b.WriteString("%PDF-1.4\n2 0 obj <</Type /Pages /Kids [")
		for i := range n {
			fmt.Fprintf(&b, "%d 0 R ", 10+i)
		}
		b.WriteString("] /Count 1>> endobj\n10 0 obj <</Type /Page /Parent 2 0 R>> endobj\n")
		for i := 1; i < n; i++ {
			fmt.Fprintf(&b, "%d 0 obj <</Parent 2 0 R>> endobj\n", 10+i)
		}
		return b.String()
	}
	z := func(s string) string {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.String()
	}
	for name, c := range map[string]struct {
		pdf  string
		want int
		ok   bool
	}{
		"plain":                      {"%PDF-1.4\n<</Type /Pages /Kids [3 0 R 4 0 R] /Count 2>> <</Type /Page>> <</Type/Page>>", 2, true},
		"object streams":             {"%PDF-1.5\n" + objStm(7) + objStm(5), 12, true},
		"leaves without /Type":       {leaves(40), 40, true},
		"a /Count above the objects": {"%PDF-1.4\n<</Type /Pages /Kids [3 0 R] /Count 300>> <</Type /Page>>", 300, true},
		"an escaped /Page":           {"%PDF-1.4\n<</Type /P#61ge>> <</Type /Page>>", 1, false},
		"an escaped /Type":           {"%PDF-1.4\n<</T#79pe /Page>> <</Type /Page>>", 1, false},
		"encrypted":                  {"%PDF-1.4\n<</Type /Page>> trailer <</Encrypt 9 0 R>>", 1, false},
		"a stream not inflated":      {"%PDF-1.5\n<</Type/ObjStm/Filter/ASCIIHexDecode>>stream\n3c3c2f54797065 endstream <</Type /Page>>", 1, false},
		"a stream flated twice":      {"%PDF-1.5\n<</Type/ObjStm>>stream\n" + z(z("1 0 <</Type /Page>>")) + "endstream <</Type /Page>>", 1, false},
		"no header":                  {"<</Type /Page>>", 1, false},
		"no page":                    {"%PDF-1.7 garbage", 1, false},
		"a # in other names":         {"%PDF-1.4\n<</Type /Page /Font /A#20B>>", 1, true},
	} {
		got, ok := new(PDFReader).Bound([]byte(c.pdf))
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d pages, ok %v; want %d, %v", name, got, ok, c.want, c.ok)
		}
		if got < new(PDFReader).scan([]byte(c.pdf)).typed {
			t.Errorf("%s: %d pages, fewer than count_tokens reads", name, got)
		}
	}
}

// FuzzPDFPages: a client's file never panics the count, and is at least
// a page, never less than its page objects.
func FuzzPDFPages(f *testing.F) {
	f.Add([]byte("%PDF-1.4 <</Type /Page>> <</Type /Pages>>"))
	f.Add([]byte(objStm(3)))
	f.Add([]byte("/ObjStm stream\nx\x9c endstream"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bound, _ := new(PDFReader).Bound(b)
		if bound < 1 {
			t.Fatal("less than a page")
		}
		if n := new(PDFReader).scan(b).typed; bound < n {
			t.Fatalf("bound %d below the count %d", bound, n)
		}
	})
}

// BenchmarkInlinePDFPages: what the budgets' page count costs a request
// with a 1 MB PDF of 100 pages (a picture's random bytes beside them).
func BenchmarkInlinePDFPages(b *testing.B) {
	var pdf bytes.Buffer
	pdf.WriteString("%PDF-1.7\n")
	for i := range 100 {
		fmt.Fprintf(&pdf, "%d 0 obj <</Type /Page /Parent 2 0 R>> endobj\n", 3+i)
	}
	img := make([]byte, 1_000_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	pdf.Write(img)
	data := "data:application/pdf;base64," + base64.StdEncoding.EncodeToString(pdf.Bytes())
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if n, pdf, ok := new(PDFReader).Inline(data); n != 100 || !pdf || !ok {
			b.Fatal(n, pdf, ok)
		}
	}
}

// TestHostilePDFs: files a client crafts so that the count reads them
// again and again (the fuzzing probe: unterminated object streams made it
// quadratic, a 512 KB file 16 s, about 6 MB of them half an hour) or
// inflates a lot in each of many files (96 files cost 25 s and 15 GiB of
// allocation). Each byte is now read a bounded number of times, and a
// request's files share one inflate bound, past which a file's count is
// not trusted (the budgets then hold its model's context window). Before
// the fix this test ran for minutes.
func TestHostilePDFs(t *testing.T) {
	for name, pdf := range map[string]string{
		"unterminated object streams": "%PDF-1.7\n" + strings.Repeat("/ObjStm stream\n", 1<<17),
		"unclosed kids arrays":        "%PDF-1.7\n" + strings.Repeat("/Kids [3 0 R ", 1<<17),
		"streams in streams":          "%PDF-1.7\n" + strings.Repeat("/ObjStm stream\nx\x9c/ObjStm ", 1<<16),
	} {
		var r PDFReader
		if n, _ := r.Bound([]byte(pdf)); n < 1 {
			t.Errorf("%s: %d pages", name, n)
		}
	}
	// Each file's object stream inflates to 10 MiB of page objects: the
	// first is counted, the second passes the request's bound.
	big := func() []byte {
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		w.Write([]byte("10 0 "))
		page := []byte("<</Type/Page>>                                                                                  \n")
		for range (10 << 20) / len(page) {
			w.Write(page)
		}
		w.Close()
		return fmt.Appendf(nil, "%%PDF-1.7\n5 0 obj\n<</Type/ObjStm/Filter/FlateDecode>>stream\n%sendstream\nendobj\n", z.Bytes())
	}()
	var r PDFReader
	first, ok1 := r.Bound(big)
	second, ok2 := r.Bound(big)
	if !ok1 || first < 100_000 {
		t.Errorf("the first file: %d pages, ok %v", first, ok1)
	}
	if ok2 {
		t.Errorf("the second file was trusted past the request's inflate bound (%d pages)", second)
	}
}

// TestPDFsCraftedToReadFewerPages (the red team of 2026-12-07): files that
// PDF readers (pypdf, pdfium) read as 50 pages were held as 1 to 4: a
// comment between tokens, a page tree by reference, an object stream
// whose inflated bytes are still encoded. Comments now separate tokens as
// white space does, and what the count cannot follow makes the file
// uncounted (ok false: the budgets hold the model's context window).
func TestPDFsCraftedToReadFewerPages(t *testing.T) {
	pages := func(sep string) string {
		var b strings.Builder
		b.WriteString("%PDF-1.7\n2 0 obj <</Type" + sep + "/Pages /Kids" + sep + "[")
		for i := range 50 {
			fmt.Fprintf(&b, "%d 0 R %%c]\n", 10+i)
		}
		b.WriteString("] /Count" + sep + "50>> endobj\n")
		for i := range 50 {
			fmt.Fprintf(&b, "%d 0 obj <</Type"+sep+"/Page /Parent 2 0 R>> endobj\n", 10+i)
		}
		return b.String()
	}
	if n, ok := new(PDFReader).Bound([]byte(pages("%comment\n"))); n < 50 || !ok {
		t.Errorf("comments between tokens: %d pages (ok %v), want 50", n, ok)
	}
	flate := func(filter string) string {
		s := objStm(50)
		return "%PDF-1.7\n" + strings.Replace(s, "/Filter/FlateDecode", filter, 1)
	}
	for name, pdf := range map[string]string{
		"kids by reference":            "%PDF-1.7\n2 0 obj <</Type /Pages /Kids 3 0 R /Count 50>> endobj\n3 0 obj [10 0 R 11 0 R] endobj\n",
		"count by reference":           "%PDF-1.7\n2 0 obj <</Type /Pages /Kids [10 0 R] /Count 4 0 R>> endobj\n10 0 obj <</Type /Page>> endobj\n",
		"type by reference":            "%PDF-1.7\n10 0 obj <</Type 5 0 R /Parent 2 0 R>> endobj\n11 0 obj <</Type /Page>> endobj\n",
		"a second filter after Flate":  flate("/Filter [/FlateDecode /ASCIIHexDecode]"),
		"a predictor":                  flate("/Filter/FlateDecode/DecodeParms<</Predictor 2>>"),
		"150,000 empty object streams": "%PDF-1.7\n" + strings.Repeat("/ObjStm stream\nx\x9c\x03\x00\x00\x00\x00\x01endstream", 150_000),
	} {
		if n, ok := new(PDFReader).Bound([]byte(pdf)); ok {
			t.Errorf("%s: counted %d pages and trusted", name, n)
		}
	}
	if n, ok := new(PDFReader).Bound([]byte(flate("/Filter [/FlateDecode]"))); n < 50 || !ok {
		t.Errorf("Flate alone, in an array: %d pages (ok %v)", n, ok)
	}
	// By what it holds, whatever its type says or when it has no data URL.
	doc := base64.StdEncoding.EncodeToString([]byte("\n" + pages(" ")))
	for _, fd := range []string{"data:application/octet-stream;base64," + doc, "data:;base64," + doc, doc} {
		if n, pdf, ok := new(PDFReader).Inline(fd); !pdf || !ok || n < 50 {
			t.Errorf("%.40s…: %d pages, pdf %v, ok %v", fd, n, pdf, ok)
		}
	}
}
