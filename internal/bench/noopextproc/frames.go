package noopextproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
)

// The frames transport: the same no-op answers as Serve's, over HTTP/2
// frames read and written by this file instead of grpc-go's server.
//
// It exists to measure one thing: how much of what the ext_proc mechanism
// costs per message is grpc-go's machinery (docs/benchmarks.md, "What the
// gRPC server costs"). grpc-go hands every message from the connection's
// reader goroutine to the stream's and every answer to a writer goroutine
// of its own, which flushes it; here the reader hands a message to the
// stream's goroutine, which writes its answer straight to the connection
// (under a lock) and flushes. Like grpc-go, a slow stream delays no other.
//
// ServeInline goes one step further: the reader goroutine answers each
// message itself, buffering its answers until it has read everything the
// connection delivered, then writes them in one go. No message or answer
// changes goroutine, so the mechanism's cost has no hand-off in it; a slow
// stream would delay every other stream of its connection, which a no-op
// never is (docs/benchmarks.md, "Answers written by the reader").
//
// It implements what Envoy and grpc-go clients use of HTTP/2 for one
// bidirectional method: SETTINGS, PING, WINDOW_UPDATE and both directions'
// flow control, HEADERS (HPACK, CONTINUATION), DATA carrying length-prefixed
// gRPC messages across frame boundaries, RST_STREAM and GOAWAY. It does not
// compress, and answers other methods with UNIMPLEMENTED. It is a bench
// tool behind `noop-extproc --transport frames|inline`, not stellwerk's server.

// processPath is the one method served.
const processPath = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"

// Receive windows: large, and given back once a quarter is used.
const (
	recvStreamWindow = 4 << 20
	recvConnWindow   = 16 << 20
	maxMessage       = 64 << 20 // as Serve's grpc.MaxRecvMsgSize
)

// framedAnswers are the answers of answerFor, serialised and framed once
// (a gRPC message: flag byte, big-endian length, protobuf), indexed by the
// field number of the request's phase in ProcessingRequest's oneof.
var framedAnswers = func() (a [8][]byte) {
	for field, m := range map[int]*extprocv3.ProcessingResponse{
		2: continueRequestHeaders, 3: continueResponseHeaders, 4: continueRequestBody,
		5: continueResponseBody, 6: continueRequestTrailers, 7: continueResponseTrailer,
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		a[field] = binary.BigEndian.AppendUint32([]byte{0}, uint32(len(b)))
		a[field] = append(a[field], b...)
	}
	return a
}()

// ServeFrames answers ext_proc streams on l over the frames transport until
// ctx ends, each stream on a goroutine of its own.
func ServeFrames(ctx context.Context, l net.Listener) error { return serveFrames(ctx, l, false) }

// ServeInline answers ext_proc streams on l over the frames transport until
// ctx ends, every message answered by its connection's reader.
func ServeInline(ctx context.Context, l net.Listener) error { return serveFrames(ctx, l, true) }

func serveFrames(ctx context.Context, l net.Listener, inline bool) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	go func() {
		<-ctx.Done()
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	defer wg.Wait()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[nc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(nc, inline)
			mu.Lock()
			delete(conns, nc)
			mu.Unlock()
		}()
	}
}

// fconn is one HTTP/2 connection. The reader goroutine owns fr's reading
// side and each stream's unparsed bytes; everything written, the send
// windows and the stream table are under mu.
type fconn struct {
	nc     net.Conn
	fr     *http2.Framer
	inline bool // the reader answers (ServeInline)

	mu       sync.Mutex
	sendable *sync.Cond // a send window grew, or the connection ended
	bw       *bufio.Writer
	enc      *hpack.Encoder
	hbuf     bytes.Buffer
	closed   bool
	maxFrame uint32 // the peer's SETTINGS_MAX_FRAME_SIZE
	initWin  int64  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	connWin  int64  // what the connection may still send
	streams  map[uint32]*fstream

	connUnacked uint32 // received on the connection, not yet given back
}

// fstream is one ext_proc stream.
type fstream struct {
	id      uint32
	partial []byte // the reader's: a message not yet complete
	unacked uint32 // the reader's: received, not yet given back

	// under c.mu
	win        int64    // what the stream may still send
	queue      [][]byte // messages for the stream's goroutine (not inline)
	halfClosed bool     // the client sent END_STREAM
	reset      bool     // RST_STREAM, or the connection ended
	wake       chan struct{}
	headerSent bool
	out        [][]byte // inline: answers not yet written, waiting for send window
}

func serveConn(nc net.Conn, inline bool) {
	c := &fconn{nc: nc, bw: bufio.NewWriterSize(nc, 32<<10), inline: inline, maxFrame: 16 << 10, initWin: 65535, connWin: 65535,
		streams: map[uint32]*fstream{}}
	c.sendable = sync.NewCond(&c.mu)
	c.enc = hpack.NewEncoder(&c.hbuf)
	defer c.close()
	br := bufio.NewReaderSize(nc, 32<<10)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	c.fr = http2.NewFramer(c.bw, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.fr.SetMaxReadFrameSize(1 << 20)
	c.mu.Lock()
	err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1 << 20},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: recvStreamWindow},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	if err == nil {
		err = c.fr.WriteWindowUpdate(0, recvConnWindow-65535)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	c.mu.Unlock()
	for err == nil {
		var f http2.Frame
		if f, err = c.fr.ReadFrame(); err == nil {
			err = c.handle(f)
		}
		if c.inline && err == nil && br.Buffered() == 0 {
			// Everything the connection delivered is answered: one write.
			c.mu.Lock()
			if c.bw.Buffered() > 0 {
				err = c.bw.Flush()
			}
			c.mu.Unlock()
		}
	}
}

// close ends every stream and wakes whoever waits for a send window.
func (c *fconn) close() {
	c.nc.Close()
	c.mu.Lock()
	c.closed = true
	for _, s := range c.streams {
		s.reset = true
		s.signal()
	}
	c.sendable.Broadcast()
	c.mu.Unlock()
}

func (s *fstream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// handle is the reader's part of one frame.
func (c *fconn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := f.ForeachSetting(func(s http2.Setting) error {
			switch s.ID {
			case http2.SettingMaxFrameSize:
				c.maxFrame = s.Val
			case http2.SettingInitialWindowSize:
				d := int64(s.Val) - c.initWin
				c.initWin = int64(s.Val)
				for _, st := range c.streams {
					st.win += d
				}
			case http2.SettingHeaderTableSize:
				c.enc.SetMaxDynamicTableSizeLimit(s.Val)
			}
			return nil
		}); err != nil {
			return err
		}
		c.sendable.Broadcast()
		if err := c.drainAll(); err != nil {
			return err
		}
		return c.flushAfter(c.fr.WriteSettingsAck())
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.flushAfter(c.fr.WritePing(true, f.Data))
	case *http2.WindowUpdateFrame:
		c.mu.Lock()
		if f.StreamID == 0 {
			c.connWin += int64(f.Increment)
		} else if s := c.streams[f.StreamID]; s != nil {
			s.win += int64(f.Increment)
		}
		c.sendable.Broadcast()
		err := c.drainAll()
		c.mu.Unlock()
		return err
	case *http2.MetaHeadersFrame:
		return c.open(f)
	case *http2.DataFrame:
		return c.data(f)
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		if s := c.streams[f.StreamID]; s != nil {
			s.reset = true
			s.signal()
			delete(c.streams, f.StreamID)
		}
		c.sendable.Broadcast()
		c.mu.Unlock()
	case *http2.GoAwayFrame:
		return io.EOF
	}
	return nil
}

// flushAfter flushes what err's write left, under c.mu.
func (c *fconn) flushAfter(err error) error {
	if err != nil {
		return err
	}
	return c.bw.Flush()
}

// open starts a stream: its goroutine answers what the reader queues, or
// (inline) the reader answers it in data.
func (c *fconn) open(f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.streams[f.StreamID]; ok { // trailers: they only end the client's side
		if f.StreamEnded() {
			s.halfClosed = true
			if c.inline {
				return c.drain(s)
			}
			s.signal()
		}
		return nil
	}
	if f.PseudoValue("path") != processPath {
		return c.flushAfter(c.trailers(f.StreamID, "12", true)) // UNIMPLEMENTED
	}
	s := &fstream{id: f.StreamID, win: c.initWin, wake: make(chan struct{}, 1), halfClosed: f.StreamEnded()}
	c.streams[f.StreamID] = s
	if c.inline {
		return c.drain(s) // ended already: its trailers
	}
	if s.halfClosed {
		s.signal()
	}
	go c.run(s)
	return nil
}

// data splits a DATA frame's bytes into gRPC messages for the stream, and
// gives the peer back its window.
func (c *fconn) data(f *http2.DataFrame) error {
	n := uint32(f.Length)
	c.connUnacked += n
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.connUnacked >= recvConnWindow/4 {
		err = c.fr.WriteWindowUpdate(0, c.connUnacked)
		c.connUnacked = 0
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return c.flushAfter(err) // reset or ended: only the connection's window counts
	}
	if s.unacked += n; s.unacked >= recvStreamWindow/4 && !f.StreamEnded() && err == nil {
		err = c.fr.WriteWindowUpdate(s.id, s.unacked)
		s.unacked = 0
	}
	if err == nil && c.bw.Buffered() > 0 && !c.inline { // inline: written with the answers
		err = c.bw.Flush()
	}
	s.partial = append(s.partial, f.Data()...)
	for len(s.partial) >= 5 {
		l := binary.BigEndian.Uint32(s.partial[1:5])
		if s.partial[0] != 0 || l > maxMessage {
			return errors.New("noop-extproc: compressed or oversized gRPC message")
		}
		if len(s.partial) < 5+int(l) {
			break
		}
		if msg := s.partial[5 : 5+l : 5+l]; !c.inline {
			s.queue = append(s.queue, msg)
		} else if a := framedAnswers[phaseOf(msg)]; a != nil {
			s.out = append(s.out, a)
		}
		s.partial = s.partial[5+l:]
	}
	if len(s.partial) == 0 {
		s.partial = nil // the queued messages keep the old array
	}
	if f.StreamEnded() {
		s.halfClosed = true
	}
	if c.inline {
		if err == nil {
			err = c.drain(s)
		}
		return err
	}
	s.signal()
	return err
}

// drain writes what stream s's window allows of its pending answers, and
// its trailers once the client has ended its side and nothing is left
// (inline); the reader flushes. Under c.mu.
func (c *fconn) drain(s *fstream) error {
	for len(s.out) > 0 && !s.reset {
		a, err := c.send(s, s.out[0])
		if err != nil {
			return err
		}
		if len(a) > 0 { // out of window: the rest when the peer gives some back
			s.out[0] = a
			return nil
		}
		s.out = s.out[1:]
	}
	if s.halfClosed && !s.reset && len(s.out) == 0 {
		delete(c.streams, s.id)
		s.reset = true // ended: nothing more is written on it
		return c.trailers(s.id, "0", !s.headerSent)
	}
	return nil
}

// drainAll drains every stream that waits for send window (inline).
func (c *fconn) drainAll() error {
	if !c.inline {
		return nil
	}
	for _, s := range c.streams {
		if len(s.out) > 0 {
			if err := c.drain(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// run answers a stream's messages in order, then ends it when the client
// has ended its side.
func (c *fconn) run(s *fstream) {
	for range s.wake {
		c.mu.Lock()
		for len(s.queue) > 0 && !s.reset && !c.closed {
			msg := s.queue[0]
			s.queue = s.queue[1:]
			if a := framedAnswers[phaseOf(msg)]; a != nil {
				if err := c.answer(s, a); err != nil {
					c.closed = true
					c.nc.Close()
				}
			}
		}
		done := s.reset || c.closed
		if !done && s.halfClosed && len(s.queue) == 0 {
			if err := c.flushAfter(c.trailers(s.id, "0", !s.headerSent)); err != nil {
				c.closed = true
				c.nc.Close()
			}
			delete(c.streams, s.id)
			done = true
		}
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// answer writes one framed answer on s, waiting for send window, and
// flushes it; under c.mu.
func (c *fconn) answer(s *fstream, a []byte) error {
	for len(a) > 0 {
		for (c.connWin <= 0 || s.win <= 0) && !c.closed && !s.reset {
			if c.bw.Buffered() > 0 { // what waits may be what the peer needs to answer
				if err := c.bw.Flush(); err != nil {
					return err
				}
			}
			c.sendable.Wait()
		}
		if c.closed || s.reset {
			return nil
		}
		var err error
		if a, err = c.send(s, a); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// send writes the response headers if s has none yet, then as much of a
// as the send windows allow, and returns the rest. Under c.mu.
func (c *fconn) send(s *fstream, a []byte) ([]byte, error) {
	if !s.headerSent {
		s.headerSent = true
		c.hbuf.Reset()
		c.responseFields()
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}); err != nil {
			return a, err
		}
	}
	for len(a) > 0 && c.connWin > 0 && s.win > 0 {
		n := min(int64(len(a)), c.connWin, s.win, int64(c.maxFrame))
		if err := c.fr.WriteData(s.id, false, a[:n]); err != nil {
			return a, err
		}
		c.connWin -= n
		s.win -= n
		a = a[n:]
	}
	return a, nil
}

// responseFields adds a gRPC response's first header fields to c.hbuf.
func (c *fconn) responseFields() {
	_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
}

// trailers ends stream id with grpc-status; trailersOnly when no answer
// was sent (a response of headers alone). Under c.mu.
func (c *fconn) trailers(id uint32, status string, trailersOnly bool) error {
	c.hbuf.Reset()
	if trailersOnly {
		c.responseFields()
	}
	_ = c.enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: status})
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true, EndStream: true})
}

// phaseOf is the field number of the phase a ProcessingRequest carries (its
// oneof, fields 2 to 7), or 0; it reads only the top-level tags.
func phaseOf(b []byte) int {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return 0
		}
		b = b[n:]
		field, wire := key>>3, key&7
		var skip uint64
		switch wire {
		case 0:
			_, m := binary.Uvarint(b)
			if m <= 0 {
				return 0
			}
			skip = uint64(m)
		case 1:
			skip = 8
		case 2:
			l, m := binary.Uvarint(b)
			if m <= 0 || l > uint64(len(b)-m) {
				return 0
			}
			if field >= 2 && field <= 7 {
				return int(field)
			}
			skip = uint64(m) + l
		case 5:
			skip = 4
		default:
			return 0
		}
		if skip > uint64(len(b)) {
			return 0
		}
		b = b[skip:]
	}
	return 0
}
