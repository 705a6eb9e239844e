package protocodec

import (
	"bytes"
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// bodyMessage is the ext_proc message that carries a request body of n
// bytes.
func bodyMessage(n int) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: bytes.Repeat([]byte("a"), n), EndOfStream: true}}}
}

// frames splits b as gRPC's transport hands it to a codec: one buffer per
// HTTP/2 data frame of at most 16 KiB.
func frames(b []byte) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:n])))
		b = b[n:]
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	c := New()
	for name, n := range map[string]int{"empty": 0, "small": 100, "one frame": 8 << 10, "frames": 33 << 10, "large": 3 << 20} {
		t.Run(name, func(t *testing.T) {
			in := bodyMessage(n)
			enc, err := c.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			wire := enc.Materialize()
			enc.Free()
			ref, _ := proto.Marshal(in)
			if !bytes.Equal(wire, ref) {
				t.Fatalf("encoding differs from proto.Marshal: %d vs %d bytes", len(wire), len(ref))
			}
			out := &extprocv3.ProcessingRequest{}
			if err := c.Unmarshal(frames(wire), out); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(in, out) {
				t.Fatal("decoded message differs")
			}
		})
	}
}

// TestDecodedOwnsItsBytes: the buffer a message was joined in goes back to
// the pool dirty and is handed out again; the decoded body must not be a
// view of it.
func TestDecodedOwnsItsBytes(t *testing.T) {
	c := New()
	in := bodyMessage(40 << 10)
	wire, _ := proto.Marshal(in)
	out := &extprocv3.ProcessingRequest{}
	if err := c.Unmarshal(frames(wire), out); err != nil {
		t.Fatal(err)
	}
	for range 4 { // sync.Pool may drop a Put; take several
		b := c.pool.Get(len(wire))
		for i := range *b {
			(*b)[i] = 'z'
		}
		c.pool.Put(b)
	}
	if !proto.Equal(in, out) {
		t.Fatal("the decoded body changed when the pool's buffer was reused")
	}
}

func TestPoolSizes(t *testing.T) {
	p := &Pool{}
	for name, tc := range map[string]struct{ n, cap int }{
		"below the smallest tier": {1, 1 << 10},
		"a power of two":          {32 << 10, 32 << 10},
		"just above":              {32<<10 + 1, 64 << 10},
		"zero":                    {0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			b := p.Get(tc.n)
			if len(*b) != tc.n || cap(*b) != tc.cap {
				t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(*b), cap(*b), tc.n, tc.cap)
			}
			p.Put(b)
		})
	}
	// A buffer not from the pool goes to the tier it can fill.
	odd := make([]byte, 5000)
	p.Put(&odd)
	if len(odd) != 4096 || cap(odd) != 4096 {
		t.Errorf("a 5000-byte buffer was kept as len %d cap %d, want 4096", len(odd), cap(odd))
	}
}

// BenchmarkUnmarshal decodes an ext_proc request-body message that came in
// 16 KiB frames, with gRPC's codec and with this one.
//
//	go test -run '^$' -bench 'Unmarshal|Marshal' -benchmem ./internal/protocodec/
func BenchmarkUnmarshal(b *testing.B) {
	for _, size := range []int{2 << 10, 32 << 10} {
		wire, _ := proto.Marshal(bodyMessage(size))
		data := frames(wire)
		for _, c := range codecs() {
			b.Run(c.name+"/"+sizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(wire)))
				for range b.N {
					m := &extprocv3.ProcessingRequest{}
					if err := c.codec.Unmarshal(data, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMarshal encodes an answer that replaces a request body, as the
// edge's body mutation does, and frees the buffer as gRPC does once it is
// written.
func BenchmarkMarshal(b *testing.B) {
	for _, size := range []int{2 << 10, 32 << 10} {
		m := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{
				Mutation: &extprocv3.BodyMutation_Body{Body: bytes.Repeat([]byte("a"), size)}}}}}}
		for _, c := range codecs() {
			b.Run(c.name+"/"+sizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				for range b.N {
					s, err := c.codec.Marshal(m)
					if err != nil {
						b.Fatal(err)
					}
					s.Free()
				}
			})
		}
	}
}

type namedCodec struct {
	name  string
	codec encoding.CodecV2
}

func codecs() []namedCodec {
	return []namedCodec{{"grpc", encoding.GetCodecV2("proto")}, {"protocodec", New()}}
}

func sizeName(n int) string {
	return strconv.Itoa(n>>10) + "KiB"
}
