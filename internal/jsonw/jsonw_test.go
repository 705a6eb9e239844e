package jsonw

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
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

// TestAppendFloatDecimals: every decimal of up to six fractional digits
// the fast path writes is strconv's shortest form, for runs of every k at
// each scale, random k/s up to 1e7, and the floats either side of each (which
// the fast path must leave to strconv).
func TestAppendFloatDecimals(t *testing.T) {
	check := func(v float64) {
		t.Helper()
		want := string(strconv.AppendFloat(nil, v, 'f', -1, 64))
		if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
			want, _ = encode(t, v)
		}
		got, err := AppendFloat([]byte("x"), v)
		if err != nil || string(got) != "x"+want {
			t.Fatalf("%v (%#x): got %s, want %s (%v)", v, math.Float64bits(v), got[1:], want, err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	scales := []float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7}
	for _, s := range scales {
		for k := range 20000 {
			for _, v := range []float64{float64(k) / s, -float64(k) / s} {
				check(v)
				check(math.Nextafter(v, math.Inf(1)))
				check(math.Nextafter(v, math.Inf(-1)))
			}
		}
		for range 20000 {
			v := float64(rng.Uint64N(1e13)) / s
			check(v)
			check(math.Nextafter(v, math.Inf(1)))
			check(math.Nextafter(v, math.Inf(-1)))
		}
	}
	for _, v := range []float64{1e-6, 999999.999999, 1e6, 1e6 - 1, 999999999.999999, 1e9, 1e9 - 1, 0.1 + 0.2, 1.0 / 3, 2.5e-6, 4.5e-7} {
		check(v)
	}
}

func BenchmarkAppendFloat(b *testing.B) {
	for _, c := range []struct {
		name string
		v    float64
	}{{"quality", 0.85}, {"latency", 412.5}, {"cost", 0.00024508799999999997}, {"confidence", 0.9790363625601135}} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 32)
			for b.Loop() {
				buf, _ = AppendFloat(buf[:0], c.v)
			}
		})
	}
}
