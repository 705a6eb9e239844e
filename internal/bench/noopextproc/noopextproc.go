// Package noopextproc is stellwerk-bench's `noop-extproc` command: an Envoy
// ext_proc server that answers every message with CONTINUE and changes
// nothing. Envoy in front of it, in the same processing mode as the floor
// target of the bench, is what the ext_proc mechanism costs by itself; what
// stellwerk adds above it is stellwerk's own (docs/benchmarks.md).
package noopextproc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// Run is the `noop-extproc` command: it serves on the Unix socket --socket
// until ctx ends.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("noop-extproc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "Unix socket to listen on (replaced if it exists)")
	transport := fs.String("transport", TransportGRPC, "the server: "+TransportGRPC+" (grpc-go, as stellwerk's), "+TransportFrames+
		" (the same answers over HTTP/2 frames read and written directly, a goroutine per stream: frames.go) or "+TransportInline+
		" (frames, every message answered by the connection's reader: no hand-off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *socket == "" || fs.NArg() > 0 {
		return errors.New("noop-extproc: want --socket PATH and no arguments")
	}
	serve := servers[*transport]
	if serve == nil {
		return fmt.Errorf("noop-extproc: --transport %q, want one of %s", *transport, strings.Join(Transports, ", "))
	}
	_ = os.Remove(*socket)
	l, err := net.Listen("unix", *socket)
	if err != nil {
		return fmt.Errorf("noop-extproc: %w", err)
	}
	return serve(ctx, l)
}

// The no-op server's transports (Run's --transport).
const (
	TransportGRPC   = "grpc"
	TransportFrames = "frames"
	TransportInline = "inline"
)

// Transports lists them, the default first.
var Transports = []string{TransportGRPC, TransportFrames, TransportInline}

// servers are the servers of Transports.
var servers = map[string]func(context.Context, net.Listener) error{TransportGRPC: Serve, TransportFrames: ServeFrames, TransportInline: ServeInline}

// Serve answers ext_proc streams on l until ctx ends. The gRPC server has
// the settings of stellwerk's grpc-go server (internal/serve): its stream
// and message-size limits, stream workers and fixed flow-control windows
// (with grpc-go's default windows, a PING per burst of data estimates the
// link's bandwidth: up to 0.17 CPU-ms per request more in this server and
// up to 0.3 ms p50 more for Envoy F; docs/benchmarks.md, "What the gRPC
// server costs"). The two differ in what they do per message, not in how
// they are reached.
func Serve(ctx context.Context, l net.Listener) error {
	gs := grpc.NewServer(grpc.MaxConcurrentStreams(1<<20), grpc.MaxRecvMsgSize(64<<20),
		grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))), grpc.InitialWindowSize(4<<20), grpc.InitialConnWindowSize(16<<20))
	Register(gs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			gs.Stop()
		case <-done:
		}
	}()
	if err := gs.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Register adds the no-op ext_proc service to a gRPC server (tests measure
// a transport with it: what is timed is then the transport alone).
func Register(gs *grpc.Server) { extprocv3.RegisterExternalProcessorServer(gs, server{}) }

type server struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// The answers never change, so they are built once: an empty
// CommonResponse is CONTINUE without mutations.
var (
	continueRequestHeaders  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	continueRequestBody     = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	continueRequestTrailers = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	continueResponseHeaders = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	continueResponseBody    = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	continueResponseTrailer = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
)

// Process answers each message of one request's stream with CONTINUE.
func (server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var resp *extprocv3.ProcessingResponse
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = continueRequestHeaders
		case *extprocv3.ProcessingRequest_RequestBody:
			resp = continueRequestBody
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp = continueRequestTrailers
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = continueResponseHeaders
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp = continueResponseBody
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp = continueResponseTrailer
		default:
			continue // nothing Envoy waits for
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
