// Package protocodec is the protobuf codec of stellwerk's gRPC server, with
// a buffer pool that does not zero what it hands out.
//
// gRPC's default pool clears a buffer's whole capacity on every Get, and
// its tiers jump from 32 KiB to 1 MiB: an ext_proc message carrying a
// 32 KiB request body (a little over 32 KiB with its framing) is read into
// a 1 MiB buffer cleared first, and the rewritten body is marshalled into
// another — two megabytes of memclr per request, about 7 % of stellwerk's
// CPU at 300 rps of 32 KB requests (docs/benchmarks.md, "Large requests").
// Every user of these buffers overwrites the bytes it reads (the transport
// reads a frame into its buffer with io.ReadFull, the codec copies a
// message's frames into one buffer, proto marshals into one), so the
// clearing protects nothing here; the tiers are every power of two.
//
// The codec is the same as gRPC's otherwise: a decoded message owns copies
// of its bytes and strings, and the buffer goes back to the pool as soon as
// the message is decoded. The ext_proc messages Envoy sends are read field
// by field (request.go), the answers stellwerk sends written field by field
// (response.go); anything else goes through protobuf.
package protocodec

import (
	"fmt"
	"math/bits"
	"sync"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

const (
	minShift = 10 // 1 KiB: gRPC does not pool smaller buffers (mem.IsBelowBufferPoolingThreshold)
	maxShift = 28 // 256 MiB: above envoy.max_request_bytes' largest value
)

// Pool is a mem.BufferPool of buffers whose capacity is a power of two
// from 1 KiB to 256 MiB, handed out as they were left.
type Pool struct {
	tiers [maxShift - minShift + 1]sync.Pool
}

var _ mem.BufferPool = (*Pool)(nil)

// Get returns a buffer of length n; its contents are undefined.
func (p *Pool) Get(n int) *[]byte {
	shift := max(bits.Len(uint(n-1)), minShift)
	if n <= 0 || shift > maxShift {
		b := make([]byte, max(n, 0))
		return &b
	}
	if v := p.tiers[shift-minShift].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<shift)
	return &b
}

// Put keeps b for a later Get of at most its capacity's tier.
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	shift := bits.Len(uint(c)) - 1 // the largest tier b holds
	if shift < minShift || shift > maxShift {
		return
	}
	if c != 1<<shift { // not one of ours: trim to its tier
		*b = (*b)[: 1<<shift : 1<<shift]
	}
	p.tiers[shift-minShift].Put(b)
}

// Codec is gRPC's protobuf codec over a Pool.
type Codec struct{ pool *Pool }

var _ encoding.CodecV2 = Codec{}

// New returns a codec over its own pool.
func New() Codec { return Codec{pool: &Pool{}} }

// ServerOptions makes a gRPC server use the codec for every service and
// its pool for the frames it reads.
func (c Codec) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(c), experimental.BufferPool(c.pool)}
}

// Name is the content subtype gRPC's own codec registers.
func (Codec) Name() string { return "proto" }

// Marshal encodes v into one buffer from the pool (a small message into a
// buffer of its own, as gRPC does).
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*extprocv3.ProcessingResponse); ok {
		if s, ok := c.marshalResponse(r); ok {
			return s, nil
		}
	}
	m := message(v)
	if m == nil {
		return nil, fmt.Errorf("protocodec: cannot marshal %T", v)
	}
	// Size first, then UseCachedSize: proto walks the message once.
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := c.pool.Get(size)
	b, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

// Unmarshal decodes data into v; a message that came in several frames is
// joined in a buffer from the pool first.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m := message(v)
	if m == nil {
		return fmt.Errorf("protocodec: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	if r, ok := v.(*extprocv3.ProcessingRequest); ok {
		return unmarshalRequest(buf.ReadOnlyData(), r)
	}
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// message is v as a protobuf message of either API generation, nil if it
// is none.
func message(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}
