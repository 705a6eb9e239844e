package protocodec

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// The ext_proc answers stellwerk sends most — header mutations, a body,
// dynamic metadata — are written here field by field instead of by
// protobuf's generic marshaller, which walks each message through its type
// tables and marshals a Struct's map through reflection, allocating for
// each entry (docs/benchmarks.md, "The ext_proc answers written by hand").
// One pass sizes the answer, a second writes it from its end, each
// message's fields before their length, so no size is computed twice. The
// bytes are those of protobuf's deterministic marshalling (map entries by
// key; only ProcessingResponse's own fields come in number order, where
// protobuf writes its oneof last), which TestResponseBytes and FuzzResponse
// compare. An answer that sets any field this file does not write (an
// immediate response, a mode override, trailers, a list in the metadata,
// unknown fields, a string that is not UTF-8, …) goes to protobuf as
// before; TestResponseFieldsKnown fails when go-control-plane adds a field
// to one of these messages, so a new field is never dropped unseen.

// maxStructFields bounds the map entries sorted on the stack; a larger
// Struct goes to protobuf.
const maxStructFields = 16

// responseSize is the wire size of r, and whether this file can write it.
func responseSize(r *extprocv3.ProcessingResponse) (int, bool) {
	if !writable(r) {
		return 0, false
	}
	n := 0
	if num, _, common := responseAnswer(r); num > 0 {
		n += sized(num, wrapperSize(common))
	}
	if md := r.DynamicMetadata; md != nil {
		n += sized(8, structSize(md))
	}
	return n, true
}

// writable says whether r sets only fields this file writes, with valid
// UTF-8 in every string protobuf would check: one walk, so the size and
// append functions below need not check again.
func writable(r *extprocv3.ProcessingResponse) bool {
	if r.TypedDynamicMetadata != nil || r.ModeOverride != nil || r.OverrideMessageTimeout != nil ||
		//lint:ignore SA1019 a deprecated field set is one this file does not write: protobuf gets the answer
		r.ServerWindowUpdate != nil || r.RequestDrain || r.RequestDrainRequests || r.RequestDrainResponses || unknown(r) {
		return false
	}
	num, answer, common := responseAnswer(r)
	if num < 0 || answer != nil && (unknown(answer) || !commonWritable(common)) {
		return false
	}
	return r.DynamicMetadata == nil || structWritable(r.DynamicMetadata, 0)
}

func commonWritable(c *extprocv3.CommonResponse) bool {
	if c == nil {
		return true
	}
	if c.Trailers != nil || unknown(c) {
		return false
	}
	if m := c.HeaderMutation; m != nil {
		if unknown(m) {
			return false
		}
		for _, o := range m.SetHeaders {
			//lint:ignore SA1019 a deprecated field set is one this file does not write: protobuf gets the answer
			if o == nil || o.Append != nil || unknown(o) {
				return false // protobuf refuses a nil element
			}
			if h := o.Header; h != nil && (unknown(h) || !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value)) {
				return false
			}
		}
		for _, h := range m.RemoveHeaders {
			if !utf8.ValidString(h) {
				return false
			}
		}
	}
	if m := c.BodyMutation; m != nil {
		if unknown(m) {
			return false
		}
		switch m.Mutation.(type) {
		case nil, *extprocv3.BodyMutation_Body, *extprocv3.BodyMutation_ClearBody:
		default:
			return false
		}
	}
	return true
}

// structWritable: string and Struct values only, nested a few levels
// (dynamic metadata namespaces), few enough fields to sort on the stack.
func structWritable(s *structpb.Struct, depth int) bool {
	if depth > 4 || len(s.Fields) > maxStructFields || unknown(s) {
		return false
	}
	for k, v := range s.Fields {
		if v == nil || unknown(v) || !utf8.ValidString(k) {
			return false
		}
		switch k := v.Kind.(type) {
		case *structpb.Value_StringValue:
			if !utf8.ValidString(k.StringValue) {
				return false
			}
		case *structpb.Value_StructValue:
			if k.StructValue == nil || !structWritable(k.StructValue, depth+1) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// appendResponse writes r, which responseSize accepted with size, at the
// end of b. It writes back to front, each message's fields before its
// length and tag, so no message's size is computed twice.
func appendResponse(b []byte, r *extprocv3.ProcessingResponse, size int) []byte {
	start := len(b)
	b = slices.Grow(b, size)[:start+size]
	w := backwards{b: b[start:], i: size}
	if md := r.DynamicMetadata; md != nil {
		end := w.i
		w.structFields(md)
		w.closeLen(8, end)
	}
	if num, _, common := responseAnswer(r); num > 0 {
		end := w.i
		if common != nil {
			cend := w.i
			w.common(common)
			w.closeLen(1, cend)
		}
		w.closeLen(num, end)
	}
	if w.i != 0 {
		panic("protocodec: an ext_proc answer's size and bytes disagree")
	}
	return b
}

// marshalResponse is r written by this file, ok false when protobuf must
// write it: r sets a field this file does not write, or (a defect the tests
// would show) its size and its bytes disagree, which falls back to protobuf
// rather than failing the stream.
func (c Codec) marshalResponse(r *extprocv3.ProcessingResponse) (s mem.BufferSlice, ok bool) {
	size, ok := responseSize(r)
	if !ok {
		return nil, false
	}
	var buf *[]byte
	defer func() {
		if recover() != nil {
			if buf != nil {
				c.pool.Put(buf)
			}
			s, ok = nil, false
		}
	}()
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(appendResponse(make([]byte, 0, size), r, size))}, true
	}
	buf = c.pool.Get(size)
	*buf = appendResponse((*buf)[:0], r, size)
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, true
}

// backwards writes a message from its end: b[i:] is written.
type backwards struct {
	b []byte
	i int
}

func (w *backwards) raw(p []byte) {
	w.i -= len(p)
	copy(w.b[w.i:], p)
}

func (w *backwards) str(s string) {
	w.i -= len(s)
	copy(w.b[w.i:], s)
}

func (w *backwards) varint(v uint64) {
	if v < 0x80 { // most tags and lengths
		w.i--
		w.b[w.i] = byte(v)
		return
	}
	var t [binary.MaxVarintLen64]byte
	w.raw(protowire.AppendVarint(t[:0], v))
}

func (w *backwards) tag(num protowire.Number, typ protowire.Type) {
	w.varint(protowire.EncodeTag(num, typ))
}

// closeLen writes the length and tag of field num, whose contents were
// written from w.i to end.
func (w *backwards) closeLen(num protowire.Number, end int) {
	w.varint(uint64(end - w.i))
	w.tag(num, protowire.BytesType)
}

func (w *backwards) bytesField(num protowire.Number, p []byte) {
	w.raw(p)
	w.varint(uint64(len(p)))
	w.tag(num, protowire.BytesType)
}

func (w *backwards) stringField(num protowire.Number, s string) {
	w.str(s)
	w.varint(uint64(len(s)))
	w.tag(num, protowire.BytesType)
}

func (w *backwards) varintField(num protowire.Number, v uint64) {
	w.varint(v)
	w.tag(num, protowire.VarintType)
}

// common writes a CommonResponse's fields, the last first.
func (w *backwards) common(c *extprocv3.CommonResponse) {
	if c.ClearRouteCache {
		w.varintField(5, 1)
	}
	if m := c.BodyMutation; m != nil {
		end := w.i
		switch v := m.Mutation.(type) {
		case *extprocv3.BodyMutation_Body:
			w.bytesField(1, v.Body) // a oneof member is written even when empty
		case *extprocv3.BodyMutation_ClearBody:
			w.varintField(2, boolWire(v.ClearBody))
		}
		w.closeLen(3, end)
	}
	if m := c.HeaderMutation; m != nil {
		end := w.i
		for _, h := range slices.Backward(m.RemoveHeaders) {
			w.stringField(2, h)
		}
		for _, o := range slices.Backward(m.SetHeaders) {
			oend := w.i
			w.option(o)
			w.closeLen(1, oend)
		}
		w.closeLen(2, end)
	}
	if c.Status != 0 {
		w.varintField(1, uint64(c.Status))
	}
}

func (w *backwards) option(o *corev3.HeaderValueOption) {
	if o.KeepEmptyValue {
		w.varintField(4, 1)
	}
	if o.AppendAction != 0 {
		w.varintField(3, uint64(o.AppendAction))
	}
	if h := o.Header; h != nil {
		end := w.i
		if len(h.RawValue) > 0 {
			w.bytesField(3, h.RawValue)
		}
		if h.Value != "" {
			w.stringField(2, h.Value)
		}
		if h.Key != "" {
			w.stringField(1, h.Key)
		}
		w.closeLen(1, end)
	}
}

// structFields writes a Struct's map entries in key order, as protobuf's
// deterministic marshalling does (so the last key first).
func (w *backwards) structFields(s *structpb.Struct) {
	var keyBuf [maxStructFields]string
	keys := keyBuf[:0]
	for k := range s.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range slices.Backward(keys) {
		end := w.i // the entry's end, and its value's
		switch v := s.Fields[k].Kind.(type) {
		case *structpb.Value_StringValue:
			w.stringField(3, v.StringValue)
		case *structpb.Value_StructValue:
			send := w.i
			w.structFields(v.StructValue)
			w.closeLen(5, send)
		}
		w.closeLen(2, end)
		w.stringField(1, k)
		w.closeLen(1, end)
	}
}

// responseAnswer is the field number of r's headers or body answer, that
// answer (nil when its member holds none) and its common response (nil
// when it has none). num is 0 when r has no answer at all, -1 for any
// other kind of answer, which this file does not write.
func responseAnswer(r *extprocv3.ProcessingResponse) (num protowire.Number, answer protoMessage, c *extprocv3.CommonResponse) {
	switch v := r.Response.(type) {
	case nil:
		return 0, nil, nil
	case *extprocv3.ProcessingResponse_RequestHeaders:
		answer, c = answerOf(v.RequestHeaders)
		return 1, answer, c
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		answer, c = answerOf(v.ResponseHeaders)
		return 2, answer, c
	case *extprocv3.ProcessingResponse_RequestBody:
		answer, c = answerOf(v.RequestBody)
		return 3, answer, c
	case *extprocv3.ProcessingResponse_ResponseBody:
		answer, c = answerOf(v.ResponseBody)
		return 4, answer, c
	default:
		return -1, nil, nil
	}
}

// answerOf is a headers or body answer as responseAnswer gives it: nil
// for a nil message (not a nil pointer in an interface), and its common
// response.
func answerOf[M interface {
	*extprocv3.HeadersResponse | *extprocv3.BodyResponse
	protoMessage
	GetResponse() *extprocv3.CommonResponse
}](m M) (protoMessage, *extprocv3.CommonResponse) {
	if m == nil {
		return nil, nil
	}
	return m, m.GetResponse()
}

// wrapperSize is the size of a headers or body answer: its one field.
func wrapperSize(c *extprocv3.CommonResponse) int {
	if c == nil {
		return 0
	}
	return sized(1, commonSize(c))
}

func commonSize(c *extprocv3.CommonResponse) int {
	n := 0
	if c.Status != 0 {
		n += varintField(1, uint64(c.Status))
	}
	if m := c.HeaderMutation; m != nil {
		n += sized(2, mutationSize(m))
	}
	if m := c.BodyMutation; m != nil {
		n += sized(3, bodySize(m))
	}
	if c.ClearRouteCache {
		n += varintField(5, 1)
	}
	return n
}

func mutationSize(m *extprocv3.HeaderMutation) int {
	n := 0
	for _, o := range m.SetHeaders {
		n += sized(1, optionSize(o))
	}
	for _, h := range m.RemoveHeaders {
		n += sized(2, len(h))
	}
	return n
}

func optionSize(o *corev3.HeaderValueOption) int {
	n := 0
	if h := o.Header; h != nil {
		n += sized(1, headerSize(h))
	}
	if o.AppendAction != 0 {
		n += varintField(3, uint64(o.AppendAction))
	}
	if o.KeepEmptyValue {
		n += varintField(4, 1)
	}
	return n
}

func headerSize(h *corev3.HeaderValue) int {
	n := 0
	if h.Key != "" {
		n += sized(1, len(h.Key))
	}
	if h.Value != "" {
		n += sized(2, len(h.Value))
	}
	if len(h.RawValue) > 0 {
		n += sized(3, len(h.RawValue))
	}
	return n
}

func bodySize(m *extprocv3.BodyMutation) int {
	switch v := m.Mutation.(type) {
	case *extprocv3.BodyMutation_Body:
		return sized(1, len(v.Body)) // a oneof member is written even when empty
	case *extprocv3.BodyMutation_ClearBody:
		return varintField(2, boolWire(v.ClearBody))
	}
	return 0
}

func structSize(s *structpb.Struct) int {
	n := 0
	for k, v := range s.Fields {
		n += sized(1, entrySize(k, v))
	}
	return n
}

// entrySize is the size of a Struct's map entry: the key (1), the value (2).
func entrySize(k string, v *structpb.Value) int {
	return sized(1, len(k)) + sized(2, valueSize(v))
}

func valueSize(v *structpb.Value) int {
	switch k := v.Kind.(type) {
	case *structpb.Value_StringValue:
		return sized(3, len(k.StringValue))
	case *structpb.Value_StructValue:
		return sized(5, structSize(k.StructValue))
	}
	return 0
}

// sized is the size of a length-delimited field of n bytes.
func sized(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func varintField(num protowire.Number, v uint64) int {
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func boolWire(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// protoMessage is any generated message.
type protoMessage interface{ ProtoReflect() protoreflect.Message }

// unknown says whether m carries fields its type does not know, which
// protobuf would write back and this file would not.
func unknown(m protoMessage) bool {
	return len(m.ProtoReflect().GetUnknown()) > 0
}
