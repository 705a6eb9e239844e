package protocodec

import (
	"unicode/utf8"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocconfv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The messages Envoy sends most — a phase's headers, a body chunk — are
// read here instead of by protobuf's generic unmarshaller, which allocates
// every header's HeaderValue, its key and its value separately (about a
// hundred allocations a request, a quarter of stellwerk's;
// docs/benchmarks.md, "Envoy's messages read by hand"). A headers message
// becomes four allocations: the message's structs in one block (with the
// empty metadata context Envoy sends on every message), the HeaderValues
// in one slab, the pointers to them, and one copy of the header map's
// bytes that every key and value is a view of. A body chunk becomes two:
// its structs and its bytes.
//
// Only the shape Envoy sends is read here: each field at most once where a
// repeat would make protobuf merge, no unknown field, no deprecated
// attributes map, every key valid UTF-8. Anything else — trailers, a
// malformed message, a duplicate, a field a newer Envoy adds — is decoded
// by protobuf from the start, so the result is always protobuf's
// (TestRequestDecode, FuzzRequest). The request's metadata context and
// attributes (fields 8 and 9, outside the oneof) are merged by protobuf
// after the rest unless the context is empty, as Envoy sends it on every
// message: the drop-in's first message carries the route name there.

// unmarshalRequest decodes b into m as proto.Unmarshal would.
func unmarshalRequest(b []byte, m *extprocv3.ProcessingRequest) error {
	m.Reset()
	if rest, ok := decodeRequest(b, m); ok {
		if len(rest) == 0 {
			return nil
		}
		return proto.UnmarshalOptions{Merge: true}.Unmarshal(rest, m)
	}
	return proto.Unmarshal(b, m)
}

// decodeRequest fills m from b when b has the shape above. rest is the
// encoding of fields 8 and 9 (but an empty context), in their order, for
// protobuf to merge; only the drop-in's first message has any.
func decodeRequest(b []byte, m *extprocv3.ProcessingRequest) (rest []byte, ok bool) {
	oneof, config := false, false
	var spare *corev3.Metadata // the phase block's, for an empty context
	emptyContext := false
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return nil, false
		}
		start := off
		off += n
		if num == 10 { // observability_mode
			if typ != protowire.VarintType {
				return nil, false
			}
			v, n := protowire.ConsumeVarint(b[off:])
			if n < 0 {
				return nil, false
			}
			off += n
			m.ObservabilityMode = protowire.DecodeBool(v)
			continue
		}
		if typ != protowire.BytesType {
			return nil, false
		}
		v, n := protowire.ConsumeBytes(b[off:])
		if n < 0 {
			return nil, false
		}
		off += n
		switch num {
		case 2, 3, 4, 5:
			if oneof {
				return nil, false // protobuf merges a repeated oneof member
			}
			oneof = true
			if spare = decodePhase(num, v, m); spare == nil {
				return nil, false
			}
		case 11:
			if config {
				return nil, false
			}
			config = true
			pc, ok := decodeProtocolConfig(v)
			if !ok {
				return nil, false
			}
			m.ProtocolConfig = pc
		case 8, 9:
			if num == 8 && len(v) == 0 { // Envoy sends an empty metadata context on every message
				emptyContext = true
				continue
			}
			rest = append(rest, b[start:off]...)
		default:
			return nil, false
		}
	}
	if emptyContext { // whichever came first, the phase or the context
		m.MetadataContext = spare
		if spare == nil {
			m.MetadataContext = new(corev3.Metadata)
		}
	}
	return rest, true
}

// decodePhase sets m's oneof to the phase field num carries, and returns
// an empty Metadata allocated with it (Envoy sends an empty metadata
// context with every phase); nil when v is not of the shape read here.
func decodePhase(num protowire.Number, v []byte, m *extprocv3.ProcessingRequest) *corev3.Metadata {
	switch num {
	case 2:
		return decodeBlock(v, decodeHeaders, func(w *extprocv3.ProcessingRequest_RequestHeaders, h *extprocv3.HttpHeaders) {
			w.RequestHeaders, m.Request = h, w
		})
	case 3:
		return decodeBlock(v, decodeHeaders, func(w *extprocv3.ProcessingRequest_ResponseHeaders, h *extprocv3.HttpHeaders) {
			w.ResponseHeaders, m.Request = h, w
		})
	case 4:
		return decodeBlock(v, decodeBody, func(w *extprocv3.ProcessingRequest_RequestBody, b *extprocv3.HttpBody) {
			w.RequestBody, m.Request = b, w
		})
	default: // 5
		return decodeBlock(v, decodeBody, func(w *extprocv3.ProcessingRequest_ResponseBody, b *extprocv3.HttpBody) {
			w.ResponseBody, m.Request = b, w
		})
	}
}

// decodeBlock decodes a phase's message into a block that also holds its
// oneof wrapper and a spare Metadata, and links wrapper and message.
func decodeBlock[W, M any](v []byte, decode func([]byte, *M) bool, link func(*W, *M)) *corev3.Metadata {
	blk := new(struct {
		w  W
		m  M
		md corev3.Metadata
	})
	if !decode(v, &blk.m) {
		return nil
	}
	link(&blk.w, &blk.m)
	return &blk.md
}

// decodeHeaders reads an HttpHeaders: its header map (field 1) and
// end_of_stream (3).
func decodeHeaders(b []byte, h *extprocv3.HttpHeaders) bool {
	seen := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType && !seen:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			seen = true
			hm, ok := decodeHeaderMap(v)
			if !ok {
				return false
			}
			h.Headers = hm
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			h.EndOfStream = protowire.DecodeBool(v)
		default:
			return false
		}
	}
	return true
}

// decodeHeaderMap reads a HeaderMap: a first pass checks its shape and
// counts the headers, a second fills one slab of them from one copy of b.
func decodeHeaderMap(b []byte) (*corev3.HeaderMap, bool) {
	count := 0
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		rest = rest[n:]
		v, n := protowire.ConsumeBytes(rest)
		if n < 0 || !headerValueWellFormed(v) {
			return nil, false
		}
		rest = rest[n:]
		count++
	}
	hm := new(corev3.HeaderMap)
	if count == 0 {
		return hm, true
	}
	own := append([]byte(nil), b...)
	values := make([]corev3.HeaderValue, count)
	hm.Headers = make([]*corev3.HeaderValue, count)
	for i := range values {
		_, _, n := protowire.ConsumeTag(own)
		own = own[n:]
		v, n := protowire.ConsumeBytes(own)
		own = own[n:]
		fillHeaderValue(v, &values[i])
		hm.Headers[i] = &values[i]
	}
	return hm, true
}

// headerValueWellFormed says whether b is a HeaderValue of key (1), value
// (2) and raw_value (3) only, its strings valid UTF-8.
func headerValueWellFormed(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 3 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 || num != 3 && !validUTF8(v) {
			return false
		}
		b = b[n:]
	}
	return true
}

// fillHeaderValue sets h from b, checked by headerValueWellFormed. Its
// strings and bytes are views of b, which nothing writes to afterwards; a
// repeated field's last value wins, as in protobuf.
func fillHeaderValue(b []byte, h *corev3.HeaderValue) {
	for len(b) > 0 {
		num, _, n := protowire.ConsumeTag(b)
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		switch num {
		case 1:
			h.Key = view(v)
		case 2:
			h.Value = view(v)
		case 3:
			if len(v) == 0 {
				h.RawValue = nil // protobuf keeps no empty bytes
			} else {
				h.RawValue = v[:len(v):len(v)] // an append must not reach the next header
			}
		}
	}
}

// decodeBody reads an HttpBody: its bytes (1), end_of_stream (2) and
// end_of_stream_without_message (3).
func decodeBody(b []byte, body *extprocv3.HttpBody) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if len(v) == 0 {
				body.Body = nil
			} else {
				body.Body = append([]byte(nil), v...)
			}
		case (num == 2 || num == 3) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			if num == 2 {
				body.EndOfStream = protowire.DecodeBool(v)
			} else {
				body.EndOfStreamWithoutMessage = protowire.DecodeBool(v)
			}
		default:
			return false
		}
	}
	return true
}

// decodeProtocolConfig reads a ProtocolConfiguration: two body modes and
// a bool, all varints.
func decodeProtocolConfig(b []byte) (*extprocv3.ProtocolConfiguration, bool) {
	pc := new(extprocv3.ProtocolConfiguration)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 3 || typ != protowire.VarintType {
			return nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			pc.RequestBodyMode = extprocconfv3.ProcessingMode_BodySendMode(int32(v))
		case 2:
			pc.ResponseBodyMode = extprocconfv3.ProcessingMode_BodySendMode(int32(v))
		case 3:
			pc.SendBodyWithoutWaitingForHeaderResponse = protowire.DecodeBool(v)
		}
	}
	return pc, true
}

// validUTF8 is utf8.Valid with a loop for the ASCII that header names are.
func validUTF8(b []byte) bool {
	for i, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
	}
	return true
}

// view is b as a string without a copy; b must never change afterwards.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
