package grpcframes

import (
	"context"
	"errors"
	"io"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// framePool holds the buffers SendMsg frames messages in.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// stream is one RPC: its handler runs on a goroutine of its own and reads
// what the connection's reader queues.
type stream struct {
	c      *conn
	id     uint32
	method string
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // a message was queued, or the stream changed

	// under c.mu
	partial    []byte   // a message not yet complete
	queue      [][]byte // complete messages, not yet read
	owed       uint32   // received, window not yet given back
	queued     uint64   // bytes of the queued messages
	win        int64    // what the stream may still send
	halfClosed bool     // the peer sent END_STREAM
	reset      bool     // RST_STREAM, or the connection ended
	failed     error    // what the peer sent cannot be read: the stream ends with it
	headerSent bool
	done       bool // trailers sent
	header     metadata.MD
	trailer    metadata.MD
}

var _ grpc.ServerStream = (*stream)(nil)

// signal wakes the handler if it waits; under c.mu.
func (st *stream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// resetLocked ends the stream without an answer; under c.mu.
func (st *stream) resetLocked() {
	if !st.reset {
		st.reset = true
		st.cancel()
		st.signal()
		st.c.sendable.Broadcast()
		delete(st.c.streams, st.id)
	}
}

// fail ends what the peer may still send with err; under c.mu.
func (st *stream) fail(err error) {
	if st.failed == nil {
		st.failed = err
		st.partial, st.queue, st.queued = nil, nil, 0
	}
}

// run calls the method's handler and ends the stream with its status.
func (st *stream) run(m *method) {
	var err error
	if m.unary != nil {
		var resp any
		resp, err = m.unary.Handler(m.impl, st.ctx, st.RecvMsg, nil)
		if err == nil {
			err = st.SendMsg(resp)
		}
	} else {
		err = m.stream.Handler(m.impl, st)
	}
	st.finish(err)
	st.cancel()
}

// finish sends the trailers with err's status, unless the stream was
// reset; a peer that has not ended its side is told to stop (RST_STREAM
// NO_ERROR, as grpc-go does).
func (st *stream) finish(err error) {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.failed != nil && err == nil {
		err = st.failed
	}
	if !st.reset && !c.closed && !st.done {
		s := status.Convert(err)
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			s = status.New(codes.DeadlineExceeded, err.Error())
		}
		c.hbuf.Reset()
		if !st.headerSent {
			_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			_ = c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
		}
		c.writeStatus(s.Code(), s.Message())
		c.writeMD(st.trailer)
		werr := c.writeBlock(st.id, true)
		if werr == nil && !st.halfClosed {
			werr = c.fr.WriteRSTStream(st.id, http2.ErrCodeNo)
		}
		if werr == nil {
			werr = c.bw.Flush()
		}
		if werr != nil {
			c.nc.Close()
		}
		st.done = true
	}
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
	}
	if c.goingAway && len(c.streams) == 0 {
		c.nc.Close()
	}
}

// giveWindow gives the peer back the stream's window it used, unless the
// handler has half a window of messages still to read: flow control holds
// back a peer faster than its handler, never a message larger than the
// window (its bytes are given back as they come). Under c.mu.
func (st *stream) giveWindow() error {
	c := st.c
	w := c.s.o.InitialWindowSize
	if st.owed < w/4 || st.queued >= uint64(w/2) || st.halfClosed || st.reset || c.closed {
		return nil
	}
	err := c.flushAfter(c.fr.WriteWindowUpdate(st.id, st.owed))
	st.owed = 0
	return err
}

// Context is the RPC's: it ends when the stream is reset, the connection
// closes, the deadline (grpc-timeout) passes or the handler returns.
func (st *stream) Context() context.Context { return st.ctx }

// SetHeader adds metadata to the response headers, sent with the first
// message (or the trailers).
func (st *stream) SetHeader(md metadata.MD) error {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	if st.headerSent {
		return errors.New("grpcframes: headers already sent")
	}
	st.header = metadata.Join(st.header, md)
	return nil
}

// SendHeader sends the response headers now.
func (st *stream) SendHeader(md metadata.MD) error {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.headerSent {
		return errors.New("grpcframes: headers already sent")
	}
	st.header = metadata.Join(st.header, md)
	if err := st.usable(); err != nil {
		return err
	}
	return c.flushAfter(st.writeHeader())
}

// SetTrailer adds metadata to the trailers.
func (st *stream) SetTrailer(md metadata.MD) {
	st.c.mu.Lock()
	st.trailer = metadata.Join(st.trailer, md)
	st.c.mu.Unlock()
}

// usable is the error of a send on a stream that is over; under c.mu.
func (st *stream) usable() error {
	switch {
	case st.reset:
		if err := st.ctx.Err(); errors.Is(err, context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, "the deadline passed")
		}
		return status.Error(codes.Canceled, "the stream was reset")
	case st.c.closed:
		return status.Error(codes.Unavailable, "the connection is closed")
	case st.done:
		return status.Error(codes.Internal, "the stream has ended")
	}
	return nil
}

// writeHeader writes the response headers; under c.mu.
func (st *stream) writeHeader() error {
	c := st.c
	st.headerSent = true
	c.hbuf.Reset()
	_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	c.writeMD(st.header)
	return c.writeBlock(st.id, false)
}

// SendMsg writes m as one message, waiting for flow-control window as
// needed, and flushes it.
func (st *stream) SendMsg(m any) error {
	c := st.c
	data, err := c.s.o.Codec.Marshal(m)
	if err != nil {
		return status.Errorf(codes.Internal, "grpcframes: %v", err)
	}
	defer data.Free()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := st.usable(); err != nil {
		return err
	}
	if !st.headerSent {
		if err := st.writeHeader(); err != nil {
			c.nc.Close()
			return status.Error(codes.Unavailable, err.Error())
		}
	}
	// The message framed in a buffer of this call's: waiting for window
	// below lets other streams send meanwhile.
	n := data.Len()
	buf := framePool.Get().(*[]byte)
	msg := append((*buf)[:0], 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	for _, b := range data {
		msg = append(msg, b.ReadOnlyData()...)
	}
	defer func() {
		if cap(msg) <= 1<<20 {
			*buf = msg[:0]
			framePool.Put(buf)
		}
	}()
	for len(msg) > 0 {
		for (c.connWin <= 0 || st.win <= 0) && !c.closed && !st.reset {
			if c.bw.Buffered() > 0 { // what the peer waits for before it gives window
				if err := c.bw.Flush(); err != nil {
					c.nc.Close()
					return status.Error(codes.Unavailable, err.Error())
				}
			}
			c.sendable.Wait()
		}
		if err := st.usable(); err != nil {
			return err
		}
		k := min(int64(len(msg)), c.connWin, st.win, int64(c.maxFrame))
		if err := c.fr.WriteData(st.id, false, msg[:k]); err != nil {
			c.nc.Close()
			return status.Error(codes.Unavailable, err.Error())
		}
		c.connWin -= k
		st.win -= k
		msg = msg[k:]
	}
	if err := c.bw.Flush(); err != nil {
		c.nc.Close()
		return status.Error(codes.Unavailable, err.Error())
	}
	return nil
}

// RecvMsg reads the next message into m: io.EOF once the peer has ended
// its side, a status error when the stream is over otherwise.
func (st *stream) RecvMsg(m any) error {
	c := st.c
	for {
		c.mu.Lock()
		if len(st.queue) > 0 {
			b := st.queue[0]
			st.queue[0] = nil
			st.queue = st.queue[1:]
			st.queued -= uint64(len(b)) + 5
			err := st.giveWindow()
			c.mu.Unlock()
			if err != nil {
				c.nc.Close()
			}
			if err := c.s.o.Codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
				return status.Errorf(codes.Internal, "grpcframes: cannot decode the message: %v", err)
			}
			return nil
		}
		var err error
		switch {
		case st.failed != nil:
			err = st.failed
		case st.halfClosed && len(st.partial) > 0:
			err = status.Error(codes.Internal, "the stream ended inside a message")
		case st.halfClosed:
			err = io.EOF
		default:
			err = st.usable()
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-st.wake:
		case <-st.ctx.Done():
			if errors.Is(st.ctx.Err(), context.DeadlineExceeded) {
				return status.Error(codes.DeadlineExceeded, "the deadline passed")
			}
			return status.Error(codes.Canceled, "the stream was cancelled")
		}
	}
}
