package jsonw

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// encode is encoding/json's bytes for v with HTML escaping off: what the
// appenders must write.
func encode(t *testing.T, v any) (string, error) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

// FuzzAppendString: strings come out byte for byte as encoding/json writes
// them (the translated streams' goldens and the audit chain rely on it).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quo\"te\\", "\x00\x1f\b\f\n\r\t\x7f", "<&>", "\u2028\u2029é漢", "\xff\xfe bad", "\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := encode(t, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+want {
			t.Fatalf("%q: got %s, want %s", s, got[1:], want)
		}
	})
}

// FuzzAppendFloat: numbers too, both formats and the exponent clean-up;
// NaN and Inf are refused as encoding/json refuses them.
func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, -1e21, 123456789.125,
		0.00024508799999999997, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1)} {
		f.Add(math.Float64bits(v))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		want, werr := encode(t, v)
		got, gerr := AppendFloat([]byte("x"), v)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%v: error %v, encoding/json's %v", v, gerr, werr)
		}
		if werr != nil {
			if string(got) != "x" {
				t.Fatalf("%v: wrote %q on error", v, got)
			}
			return
		}
		if string(got) != "x"+want {
			t.Fatalf("%v: got %s, want %s", v, got[1:], want)
		}
	})
}

// plainByte is plain8's definition for one byte.
func plainByte(b byte) bool { return b >= ' ' && b < utf8.RuneSelf && b != '"' && b != '\\' }

// TestPlain8: the word test says what the byte-by-byte definition says,
// for every byte value at every position in a plain word, for every pair
// of values at two positions, and for random words.
func TestPlain8(t *testing.T) {
	check := func(w []byte) {
		t.Helper()
		want := true
		for _, b := range w {
			want = want && plainByte(b)
		}
		if got := plain8(string(w), 0); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", w, got, want)
		}
	}
	w := []byte("abcdefgh")
	for pos := range 8 {
		for v := range 256 {
			c := append([]byte(nil), w...)
			c[pos] = byte(v)
			check(c)
		}
	}
	for v := range 256 {
		for u := range 256 {
			c := append([]byte(nil), w...)
			c[2], c[5] = byte(v), byte(u)
			check(c)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		c := make([]byte, 8)
		for i := range c {
			// mostly printable, some of everything
			if rng.IntN(4) == 0 {
				c[i] = byte(rng.IntN(256))
			} else {
				c[i] = byte(0x20 + rng.IntN(0x60))
			}
		}
		check(c)
	}
}

// BenchmarkAppendString: a model id, a catalog reason and a 2 KB prose
// string, as the routing object and the audit record write them.
func BenchmarkAppendString(b *testing.B) {
	for _, c := range []struct{ name, s string }{{"model", "aleph-alpha/llama-3.1-70b-instruct"},
		{"reason", "provider credential not configured"},
		{"prose_2KB", strings.Repeat("Explain the difference between a mutex and a semaphore. ", 36)}} {
		s := c.s
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				buf = AppendString(buf[:0], s)
			}
		})
	}
}
