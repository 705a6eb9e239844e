// Package grpcframes serves stellwerk's gRPC services to Envoy on HTTP/2
// frames it reads and writes itself, in place of grpc-go's server.
//
// Every ext_proc message is a round trip Envoy waits for, and a request is
// six or more of them. grpc-go's server hands each message from the
// connection's reader goroutine to the stream's, and each answer to a
// writer goroutine of its own that flushes it: two wake-ups of parked
// threads per message on top of the work. Here the reader hands a message
// to the stream's goroutine, which writes its answer straight to the
// connection under a lock and flushes it. Measured with the bench's no-op
// server answering the same messages both ways (docs/benchmarks.md, "What
// the gRPC server costs"): about half the CPU per request.
//
// The server is a grpc.ServiceRegistrar: the generated Register functions
// of ext_proc, the access log service, ADS and grpc.health.v1 register on it
// unchanged, and their handlers get a grpc.ServerStream. It implements what
// gRPC over HTTP/2 needs and Envoy (or a grpc-go client) uses: SETTINGS,
// PING, both directions' flow control, HPACK headers with CONTINUATION,
// length-prefixed messages across DATA frames, metadata (binary headers
// included) and grpc-timeout, trailers with grpc-status and grpc-message,
// RST_STREAM, and GOAWAY for a graceful stop. It does not compress; a
// compressed message is refused with UNIMPLEMENTED.
package grpcframes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stellwerk/stellwerk/internal/protocodec"
)

// Options are a Server's settings; zero values take the defaults below.
type Options struct {
	// TLS, when set, is the connections' TLS (mutual TLS on a TCP
	// address); nil serves plaintext (a Unix socket).
	TLS *tls.Config
	// MaxRecvMsgSize bounds a message the peer sends (default 4 MiB).
	MaxRecvMsgSize int
	// MaxConcurrentStreams per connection (default 1<<20).
	MaxConcurrentStreams uint32
	// InitialWindowSize and InitialConnWindowSize are the receive windows
	// of a stream and of a connection (defaults 4 MiB and 16 MiB).
	InitialWindowSize     uint32
	InitialConnWindowSize uint32
	Codec                 protocodec.Codec
	Log                   *zap.Logger
}

// Server serves registered gRPC methods on the connections of its
// listeners.
type Server struct {
	o       Options
	methods map[string]*method

	mu       sync.Mutex
	lis      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	draining bool
	stopped  bool
	wg       sync.WaitGroup // connections
}

// method is one registered method: unary or streaming.
type method struct {
	impl   any
	unary  *grpc.MethodDesc
	stream *grpc.StreamDesc
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// New returns a server with o's settings.
func New(o Options) *Server {
	if o.MaxRecvMsgSize <= 0 {
		o.MaxRecvMsgSize = 4 << 20
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 1 << 20
	}
	if o.InitialWindowSize < 65535 {
		o.InitialWindowSize = 4 << 20
	}
	if o.InitialConnWindowSize < 65535 {
		o.InitialConnWindowSize = 16 << 20
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
		o.TLS.NextProtos = []string{"h2"}
	}
	return &Server{o: o, methods: map[string]*method{}, lis: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
}

// RegisterService registers a service's methods; call it before Serve.
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	for i := range sd.Methods {
		s.methods["/"+sd.ServiceName+"/"+sd.Methods[i].MethodName] = &method{impl: impl, unary: &sd.Methods[i]}
	}
	for i := range sd.Streams {
		s.methods["/"+sd.ServiceName+"/"+sd.Streams[i].StreamName] = &method{impl: impl, stream: &sd.Streams[i]}
	}
}

// ErrServerStopped is Serve's error on a server already stopped.
var ErrServerStopped = errors.New("grpcframes: the server has been stopped")

// Serve accepts connections on l until Stop or GracefulStop; it returns
// nil then, as grpc.Server.Serve does, and the accept error otherwise.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopped || s.draining {
		s.mu.Unlock()
		l.Close()
		return ErrServerStopped
	}
	s.lis[l] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.stopped || s.draining
			s.mu.Unlock()
			if done {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // as net/http: back off, go on
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.stopped || s.draining {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// GracefulStop stops accepting connections and streams, tells every
// connection so (GOAWAY), and returns when their streams have ended.
func (s *Server) GracefulStop() {
	s.mu.Lock()
	s.draining = true
	for l := range s.lis {
		l.Close()
	}
	for c := range s.conns {
		c.goAway()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Stop closes every listener and connection; the streams' contexts end.
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopped = true
	for l := range s.lis {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// conn is one HTTP/2 connection. Its reader goroutine (serve) reads every
// frame; everything written (bw, fr's writing side, set up under mu), the
// send windows, the stream table and each stream's queue are under mu.
type conn struct {
	s      *Server
	nc     net.Conn
	fr     *http2.Framer
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	sendable  *sync.Cond // a send window grew, or the connection ended
	bw        *bufio.Writer
	enc       *hpack.Encoder
	hbuf      bytes.Buffer
	closed    bool
	goingAway bool
	maxFrame  uint32 // the peer's SETTINGS_MAX_FRAME_SIZE
	initWin   int64  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	connWin   int64  // what may still be sent on the connection
	streams   map[uint32]*stream
	lastID    uint32 // the highest stream id the peer opened

	recvUnacked uint32 // the reader's: received on the connection, not yet given back
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, maxFrame: 16 << 10, initWin: 65535, connWin: 65535, streams: map[uint32]*stream{}}
	c.sendable = sync.NewCond(&c.mu)
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	defer c.close()
	var rw io.ReadWriter = c.nc // the TLS connection over it, with TLS
	if c.s.o.TLS != nil {
		tc := tls.Server(c.nc, c.s.o.TLS)
		_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.s.o.Log.Debug("gRPC connection refused: TLS handshake", zap.Error(err))
			return
		}
		_ = c.nc.SetDeadline(time.Time{})
		rw = tc
	}
	br := bufio.NewReaderSize(rw, 32<<10)
	preface := make([]byte, len(http2.ClientPreface))
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	o := &c.s.o
	c.mu.Lock()
	c.bw = bufio.NewWriterSize(rw, 32<<10)
	c.fr = http2.NewFramer(c.bw, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.fr.SetMaxReadFrameSize(1 << 20)
	err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: o.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: o.InitialWindowSize},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1 << 20})
	if err == nil && o.InitialConnWindowSize > 65535 {
		err = c.fr.WriteWindowUpdate(0, o.InitialConnWindowSize-65535)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err == nil && c.goingAway { // GracefulStop came before the preface
		err = c.writeGoAway()
	}
	c.mu.Unlock()
	for err == nil {
		var f http2.Frame
		if f, err = c.fr.ReadFrame(); err == nil {
			err = c.handle(f)
			continue
		}
		var se http2.StreamError
		if errors.As(err, &se) { // a malformed stream: reset it, keep the connection
			c.mu.Lock()
			err = c.flushAfter(c.fr.WriteRSTStream(se.StreamID, se.Code))
			if st := c.streams[se.StreamID]; st != nil {
				st.resetLocked()
			}
			c.mu.Unlock()
		}
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		c.mu.Lock()
		_ = c.fr.WriteGoAway(c.lastID, http2.ErrCode(ce), nil)
		_ = c.bw.Flush()
		c.mu.Unlock()
	}
}

// close ends the connection and every stream on it.
func (c *conn) close() {
	c.cancel()
	c.mu.Lock()
	c.closed = true
	c.nc.Close()
	for _, st := range c.streams {
		st.resetLocked()
	}
	c.sendable.Broadcast()
	c.mu.Unlock()
}

// goAway starts a graceful stop of the connection: no new streams, and the
// connection closes when its last stream ends.
func (c *conn) goAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goingAway || c.closed {
		return
	}
	c.goingAway = true
	if c.fr == nil {
		return // serve sends it after the preface
	}
	if err := c.writeGoAway(); err != nil {
		c.nc.Close()
	}
}

func (c *conn) writeGoAway() error {
	if err := c.flushAfter(c.fr.WriteGoAway(c.lastID, http2.ErrCodeNo, nil)); err != nil {
		return err
	}
	if len(c.streams) == 0 {
		c.nc.Close()
	}
	return nil
}

// flushAfter flushes what err's write left; under mu.
func (c *conn) flushAfter(err error) error {
	if err != nil {
		return err
	}
	return c.bw.Flush()
}

// handle is the reader's part of a frame.
func (c *conn) handle(f http2.Frame) error {
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
		} else if st := c.streams[f.StreamID]; st != nil {
			st.win += int64(f.Increment)
		}
		c.sendable.Broadcast()
		c.mu.Unlock()
	case *http2.MetaHeadersFrame:
		return c.headers(f)
	case *http2.DataFrame:
		return c.data(f)
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		if st := c.streams[f.StreamID]; st != nil {
			st.resetLocked()
		}
		c.mu.Unlock()
	}
	return nil // GOAWAY: the peer opens no more streams; those open go on
}

// headers opens a stream, or (trailers) ends the peer's side of one.
func (c *conn) headers(f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.streams[f.StreamID]; st != nil {
		if f.StreamEnded() {
			st.halfClosed = true
			st.signal()
		}
		return nil
	}
	if f.StreamID%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if f.StreamID <= c.lastID {
		return nil // the peer's end of a stream already over here
	}
	c.lastID = f.StreamID
	if c.goingAway || uint32(len(c.streams)) >= c.s.o.MaxConcurrentStreams {
		return c.flushAfter(c.fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream))
	}
	path := f.PseudoValue("path")
	m := c.s.methods[path]
	ct := field(f, "content-type")
	switch {
	case f.PseudoValue("method") != "POST" || (ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") && !strings.HasPrefix(ct, "application/grpc;")):
		return c.flushAfter(c.trailersOnly(f.StreamID, codes.Internal, "not a gRPC request"))
	case m == nil:
		return c.flushAfter(c.trailersOnly(f.StreamID, codes.Unimplemented, "unknown method "+path))
	}
	if enc := field(f, "grpc-encoding"); enc != "" && enc != "identity" {
		return c.flushAfter(c.trailersOnly(f.StreamID, codes.Unimplemented, "compression "+enc+" is not supported"))
	}
	ctx, cancel := c.ctx, context.CancelFunc(nil)
	if t := field(f, "grpc-timeout"); t != "" {
		if d, ok := parseTimeout(t); ok {
			ctx, cancel = context.WithTimeout(ctx, d)
		}
	}
	if cancel == nil {
		ctx, cancel = context.WithCancel(ctx)
	}
	ctx = metadata.NewIncomingContext(ctx, incomingMD(f))
	st := &stream{c: c, id: f.StreamID, method: path, ctx: ctx, cancel: cancel, win: c.initWin,
		wake: make(chan struct{}, 1), halfClosed: f.StreamEnded()}
	c.streams[f.StreamID] = st
	go st.run(m)
	return nil
}

// data splits a DATA frame into the stream's messages and gives the peer
// its connection window back; the stream's comes back as messages are read
// (stream.RecvMsg).
func (c *conn) data(f *http2.DataFrame) error {
	n := f.Length
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recvUnacked += n
	var err error
	if c.recvUnacked >= c.s.o.InitialConnWindowSize/4 {
		err = c.flushAfter(c.fr.WriteWindowUpdate(0, c.recvUnacked))
		c.recvUnacked = 0
	}
	st := c.streams[f.StreamID]
	if st == nil || st.reset || st.failed != nil {
		return err
	}
	st.owed += n
	st.partial = append(st.partial, f.Data()...)
	for len(st.partial) >= 5 {
		l := uint64(st.partial[1])<<24 | uint64(st.partial[2])<<16 | uint64(st.partial[3])<<8 | uint64(st.partial[4])
		switch {
		case st.partial[0] != 0:
			st.fail(status.Error(codes.Unimplemented, "compressed messages are not supported"))
		case l > uint64(c.s.o.MaxRecvMsgSize):
			st.fail(status.Errorf(codes.ResourceExhausted, "message of %d bytes exceeds the limit of %d", l, c.s.o.MaxRecvMsgSize))
		}
		if st.failed != nil || uint64(len(st.partial)) < 5+l {
			break
		}
		st.queue = append(st.queue, st.partial[5:5+l:5+l])
		st.queued += 5 + l
		st.partial = st.partial[5+l:]
	}
	if st.failed != nil {
		st.partial = nil
	} else if len(st.partial) == 0 {
		st.partial = nil // the queued messages keep the array
	} else if uint64(len(st.partial)) > uint64(c.s.o.MaxRecvMsgSize)+5 {
		st.fail(status.Error(codes.ResourceExhausted, "message exceeds the limit"))
	}
	if f.StreamEnded() {
		st.halfClosed = true
	}
	if err == nil {
		err = st.giveWindow()
	}
	st.signal()
	return err
}

// trailersOnly answers a stream with a status and nothing else; under mu.
func (c *conn) trailersOnly(id uint32, code codes.Code, msg string) error {
	c.hbuf.Reset()
	_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	_ = c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
	c.writeStatus(code, msg)
	return c.writeBlock(id, true)
}

// writeStatus adds grpc-status and grpc-message to the header block.
func (c *conn) writeStatus(code codes.Code, msg string) {
	_ = c.enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(code))})
	if msg != "" {
		_ = c.enc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: encodeMessage(msg)})
	}
}

// writeMD adds metadata to the header block (binary values base64).
func (c *conn) writeMD(md metadata.MD) {
	for k, vs := range md {
		if isReserved(k) {
			continue
		}
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			_ = c.enc.WriteField(hpack.HeaderField{Name: k, Value: v})
		}
	}
}

// writeBlock writes the header block in hbuf as HEADERS and CONTINUATION
// frames of at most the peer's frame size; under mu.
func (c *conn) writeBlock(id uint32, endStream bool) error {
	b := c.hbuf.Bytes()
	first := true
	for first || len(b) > 0 {
		n := min(len(b), int(c.maxFrame))
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:n], EndStream: endStream, EndHeaders: n == len(b)})
		} else {
			err = c.fr.WriteContinuation(id, n == len(b), b[:n])
		}
		if err != nil {
			return err
		}
		b, first = b[n:], false
	}
	return nil
}

// incomingMD is the request's metadata as grpc-go gives it to handlers:
// every header but the pseudo and transport ones, binary values decoded.
func incomingMD(f *http2.MetaHeadersFrame) metadata.MD {
	md := metadata.MD{}
	for _, hf := range f.RegularFields() {
		k := hf.Name
		if isReserved(k) {
			continue
		}
		v := hf.Value
		if strings.HasSuffix(k, "-bin") {
			b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v, "="))
			if err != nil {
				continue
			}
			v = string(b)
		}
		md[k] = append(md[k], v)
	}
	if a := f.PseudoValue("authority"); a != "" {
		md[":authority"] = []string{a}
	}
	return md
}

// field is the first value of a regular header field.
func field(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// isReserved reports a header gRPC's transport owns.
func isReserved(k string) bool {
	switch k {
	case "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "grpc-message", "grpc-status",
		"grpc-status-details-bin", "connection", "user-agent":
		return true
	}
	return strings.HasPrefix(k, ":")
}

// parseTimeout reads a grpc-timeout value: up to 8 digits and a unit.
func parseTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[s[len(s)-1]]
	if unit == 0 {
		return 0, false
	}
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, true
	}
	return time.Duration(n) * unit, true
}

// encodeMessage percent-encodes a grpc-message as the gRPC spec asks.
func encodeMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		ch := msg[i]
		if ch >= 0x20 && ch <= 0x7e && ch != '%' {
			b.WriteByte(ch)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[ch>>4])
		b.WriteByte(hex[ch&15])
	}
	return b.String()
}
