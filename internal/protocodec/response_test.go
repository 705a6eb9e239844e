package protocodec

import (
	"bytes"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocconfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func set(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func str(s string) *structpb.Value { return structpb.NewStringValue(s) }

func nested(fields map[string]*structpb.Value) *structpb.Value {
	return structpb.NewStructValue(&structpb.Struct{Fields: fields})
}

// routedAnswer is the request body's answer of a routed request: headers
// set and removed, the rewritten body, the route cache cleared, and the
// plan in dynamic metadata (extproc/edge.go).
func routedAnswer(body []byte) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			Status: extprocv3.CommonResponse_CONTINUE,
			HeaderMutation: &extprocv3.HeaderMutation{
				SetHeaders: []*corev3.HeaderValueOption{set("x-stellwerk-cluster", "first_openai"), set("x-envoy-max-retries", "2"),
					set(":authority", "api.openai.com"), set("content-length", "2048"), set("x-stellwerk-decision-id", "0193a1b2c3d4e5f60718293a4b5c6d7e")},
				RemoveHeaders: []string{"x-stellwerk-model", "authorization", "cookie"},
			},
			BodyMutation:    &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}},
			ClearRouteCache: true,
		}}},
		DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"stellwerk": nested(map[string]*structpb.Value{"plan": str("id;openai/gpt-4o;anthropic/claude"), "path": str("/v1/chat/completions"),
				"model": str("openai/gpt-4o"), "workspace": str("")}),
			"envoy.lb": nested(map[string]*structpb.Value{"attempt2": str("anthropic"), "attempt3": str("-")}),
		}},
	}
}

// written are answers this file writes itself: its bytes must be
// protobuf's deterministic marshalling.
var written = map[string]*extprocv3.ProcessingResponse{
	"routed request body":  routedAnswer(bytes.Repeat([]byte("a"), 2048)),
	"large body":           routedAnswer(bytes.Repeat([]byte("b"), 40<<10)),
	"empty":                {},
	"headers, nothing set": {Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}},
	"headers, nil answer":  {Response: &extprocv3.ProcessingResponse_ResponseHeaders{}},
	"response headers": {Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
		HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-stellwerk-model", "openai/gpt-4o"),
			{Header: &corev3.HeaderValue{Key: "x-empty", Value: "v"}, KeepEmptyValue: true}, {}}}}}}},
	"cleared chunk": {Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}}}}}},
	"oneof members at zero": {Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
		Status:       extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{}}}}}},
	"empty body set": {Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{}}}}}},
	"body answer, nothing set": {Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}},
	"metadata only":            {DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"k": str("")}}},
}

func TestResponseBytes(t *testing.T) {
	c := New()
	for name, r := range written {
		t.Run(name, func(t *testing.T) {
			if _, ok := responseSize(r); !ok {
				t.Fatal("not written by this file")
			}
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Materialize()
			s.Free()
			if !bytes.Equal(topLevelByNumber(t, got), topLevelByNumber(t, want)) {
				t.Fatalf("bytes differ from protobuf's:\n got %x\nwant %x", got, want)
			}
		})
	}
}

// topLevelByNumber reorders a message's top-level fields by number.
// protobuf writes ProcessingResponse's oneof after dynamic_metadata (8),
// this file in field-number order; every level below is compared byte for
// byte.
func topLevelByNumber(t testing.TB, b []byte) []byte {
	type field struct {
		num protowire.Number
		raw []byte
	}
	var fs []field
	for len(b) > 0 {
		num, _, n := protowire.ConsumeField(b)
		if n < 0 {
			t.Fatalf("not a protobuf message: %v", protowire.ParseError(n))
		}
		fs = append(fs, field{num, b[:n]})
		b = b[n:]
	}
	slices.SortStableFunc(fs, func(a, b field) int { return int(a.num) - int(b.num) })
	var out []byte
	for _, f := range fs {
		out = append(out, f.raw...)
	}
	return out
}

// TestResponseFallback: an answer with a field this file does not write
// goes to protobuf whole, and nothing of it is lost.
func TestResponseFallback(t *testing.T) {
	immediate := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status: nil, Body: []byte(`{"error":{}}`)}}}
	withMode := routedAnswer([]byte("{}"))
	withMode.ModeOverride = &extprocconfv3.ProcessingMode{ResponseBodyMode: extprocconfv3.ProcessingMode_BUFFERED_PARTIAL}
	withTimeout := routedAnswer([]byte("{}"))
	withTimeout.OverrideMessageTimeout = durationpb.New(time.Minute)
	withNumber := routedAnswer([]byte("{}"))
	withNumber.DynamicMetadata.Fields["n"] = structpb.NewNumberValue(1)
	withAppend := routedAnswer([]byte("{}"))
	//lint:ignore SA1019 the deprecated field is the case under test
	withAppend.GetRequestBody().Response.HeaderMutation.SetHeaders[0].Append = wrapperspb.Bool(true)
	withTrailers := routedAnswer([]byte("{}"))
	withTrailers.GetRequestBody().Response.Trailers = &corev3.HeaderMap{}
	badKey := routedAnswer([]byte("{}"))
	badKey.DynamicMetadata.Fields["\xff"] = str("x")
	withUnknown := routedAnswer([]byte("{}"))
	withUnknown.GetRequestBody().Response.ProtoReflect().SetUnknown(protowireField(99))
	many := routedAnswer([]byte("{}"))
	for i := range maxStructFields + 1 {
		many.DynamicMetadata.Fields[string(rune('a'+i))] = str("v")
	}
	c := New()
	for name, r := range map[string]*extprocv3.ProcessingResponse{
		"immediate response": immediate, "mode override": withMode, "message timeout": withTimeout,
		"number in metadata": withNumber, "deprecated append": withAppend, "trailers": withTrailers,
		"metadata key not UTF-8": badKey, "unknown fields": withUnknown, "large metadata": many,
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := responseSize(r); ok {
				t.Fatal("written by this file; it cannot write this answer")
			}
			s, err := c.Marshal(r)
			if name == "metadata key not UTF-8" {
				if err == nil {
					t.Fatal("protobuf refuses a string that is not UTF-8; the codec did not")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out := &extprocv3.ProcessingResponse{}
			if err := proto.Unmarshal(s.Materialize(), out); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(out, r) {
				t.Fatal("decoded answer differs")
			}
		})
	}
}

// protowireField is one varint field of the number, as unknown bytes.
func protowireField(num byte) []byte { return []byte{num << 3, 1} } // wire type 0: a varint

// TestResponseFieldsKnown: every field of the messages response.go writes
// is one it writes or one it sends to protobuf. A field go-control-plane
// adds fails this test until response.go handles it.
func TestResponseFieldsKnown(t *testing.T) {
	for name, tc := range map[string]struct {
		m     proto.Message
		known []protoreflect.FieldNumber
	}{
		// 1-4 written; 5-7, 11 (other answers), 9, 10, 12-16 sent to protobuf; 8 written.
		"ProcessingResponse": {&extprocv3.ProcessingResponse{}, []protoreflect.FieldNumber{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		"HeadersResponse":    {&extprocv3.HeadersResponse{}, []protoreflect.FieldNumber{1}},
		"BodyResponse":       {&extprocv3.BodyResponse{}, []protoreflect.FieldNumber{1}},
		"CommonResponse":     {&extprocv3.CommonResponse{}, []protoreflect.FieldNumber{1, 2, 3, 4, 5}},
		"HeaderMutation":     {&extprocv3.HeaderMutation{}, []protoreflect.FieldNumber{1, 2}},
		"BodyMutation":       {&extprocv3.BodyMutation{}, []protoreflect.FieldNumber{1, 2, 3}},
		"HeaderValueOption":  {&corev3.HeaderValueOption{}, []protoreflect.FieldNumber{1, 2, 3, 4}},
		"HeaderValue":        {&corev3.HeaderValue{}, []protoreflect.FieldNumber{1, 2, 3}},
		"Struct":             {&structpb.Struct{}, []protoreflect.FieldNumber{1}},
		"Value":              {&structpb.Value{}, []protoreflect.FieldNumber{1, 2, 3, 4, 5, 6}},
	} {
		fs := tc.m.ProtoReflect().Descriptor().Fields()
		var got []protoreflect.FieldNumber
		for i := range fs.Len() {
			got = append(got, fs.Get(i).Number())
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.known) {
			t.Errorf("%s has fields %v; response.go knows %v", name, got, tc.known)
		}
	}
}

// FuzzResponse builds answers from arbitrary headers, bodies and metadata
// and holds the bytes to protobuf's, or the answer to protobuf when this
// file declines it.
func FuzzResponse(f *testing.F) {
	f.Add("x-stellwerk-model", "openai/gpt-4o", []byte(`{"model":"gpt-4o"}`), "plan", "a;b", uint8(3), true)
	f.Add("", "", []byte{}, "", "", uint8(0), false)
	f.Add("k\xff", "v", []byte("x"), "m", "\xfe", uint8(7), true)
	f.Fuzz(func(t *testing.T, key, value string, body []byte, mdKey, mdValue string, shape uint8, clear bool) {
		r := &extprocv3.ProcessingResponse{}
		common := &extprocv3.CommonResponse{Status: extprocv3.CommonResponse_ResponseStatus(shape % 3), ClearRouteCache: clear}
		if shape&4 != 0 {
			common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(key, value),
				{Header: &corev3.HeaderValue{Key: value, Value: key}, KeepEmptyValue: clear}}, RemoveHeaders: []string{key}}
		}
		if shape&8 != 0 {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}
		} else if shape&16 != 0 {
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: clear}}
		}
		switch shape >> 5 & 3 {
		case 0:
			r.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: common}}
		case 1:
			r.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: common}}
		case 2:
			r.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}
		case 3:
			r.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common}}
		}
		if shape&128 != 0 {
			r.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{
				"stellwerk": nested(map[string]*structpb.Value{mdKey: str(mdValue), key: str(value)}), mdValue: str(mdKey)}}
		}
		want, wantErr := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		s, err := New().Marshal(r)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, protobuf's %v", err, wantErr)
		}
		if err != nil {
			return
		}
		got := s.Materialize()
		if _, ok := responseSize(r); ok && !bytes.Equal(topLevelByNumber(t, got), topLevelByNumber(t, want)) {
			t.Fatalf("bytes differ from protobuf's:\n got %x\nwant %x", got, want)
		}
		out := &extprocv3.ProcessingResponse{}
		if err := proto.Unmarshal(got, out); err != nil || !proto.Equal(out, r) {
			t.Fatalf("decoded answer differs (%v)", err)
		}
	})
}

// BenchmarkMarshalAnswer writes the routed request's body answer (five
// headers set, three removed, a 2 KiB body, the plan in two metadata
// namespaces) with gRPC's codec and with this one.
//
//	go test -run '^$' -bench MarshalAnswer -benchmem ./internal/protocodec/
func BenchmarkMarshalAnswer(b *testing.B) {
	r := routedAnswer(bytes.Repeat([]byte("a"), 2048))
	for _, c := range codecs() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := c.codec.Marshal(r)
				if err != nil {
					b.Fatal(err)
				}
				s.Free()
			}
		})
	}
}
