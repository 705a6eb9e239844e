package noopextproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// eachFrameServer runs test against each of the frames transport's two
// ways of answering.
func eachFrameServer(t *testing.T, test func(t *testing.T, serve func(context.Context, net.Listener) error)) {
	for _, name := range []string{TransportFrames, TransportInline} {
		t.Run(name, func(t *testing.T) { test(t, servers[name]) })
	}
}

// framesClient starts serve on a socket and returns a grpc-go client of
// it: a real gRPC stack on the other side, as Envoy's is.
func framesClient(t *testing.T, serve func(context.Context, net.Listener) error, opts ...grpc.DialOption) (*grpc.ClientConn, context.Context) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "f.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	served := make(chan error, 1)
	go func() { served <- serve(ctx, l) }()
	conn, err := grpc.NewClient("unix://"+sock, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	return conn, ctx
}

// TestFramesManyStreams: concurrent streams on one connection, each with
// bodies larger than a frame and, together, than both receive windows:
// every message is answered, in order, and every stream ends with OK.
func TestFramesManyStreams(t *testing.T) { eachFrameServer(t, testFramesManyStreams) }

func testFramesManyStreams(t *testing.T, serve func(context.Context, net.Listener) error) {
	conn, ctx := framesClient(t, serve)
	client := extprocv3.NewExternalProcessorClient(conn)
	big := bytes.Repeat([]byte("x"), 3<<20) // several frames; 40 of them pass the connection's window many times over
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- exchange(ctx, client, i, big)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// exchange runs one request's phases on a stream, the body's in chunks.
func exchange(ctx context.Context, client extprocv3.ExternalProcessorClient, i int, big []byte) error {
	stream, err := client.Process(ctx)
	if err != nil {
		return err
	}
	body := big[:len(big)/(1+i%4)]
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}},
		{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: body[:min(len(body), 1000)], EndOfStream: true}}},
		{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}},
	}
	want := []*extprocv3.ProcessingResponse{continueRequestHeaders, continueRequestBody, continueRequestBody,
		continueResponseHeaders, continueResponseBody, continueResponseTrailer}
	go func() { // sent without waiting, as Envoy's pipelined mode sends bodies
		for _, m := range msgs {
			if stream.Send(m) != nil {
				return
			}
		}
		_ = stream.CloseSend()
	}()
	for j, w := range want {
		got, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("stream %d, answer %d: %v", i, j, err)
		}
		if !proto.Equal(got, w) {
			return fmt.Errorf("stream %d, answer %d: %v, want %v", i, j, got, w)
		}
	}
	// io.EOF is what a client sees of grpc-status 0
	if got, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream %d ended with %v, %v; want OK", i, got, err)
	}
	return nil
}

// TestFramesOtherMethods: a method other than Process is UNIMPLEMENTED, and
// the connection goes on serving Process.
func TestFramesOtherMethods(t *testing.T) { eachFrameServer(t, testFramesOtherMethods) }

func testFramesOtherMethods(t *testing.T, serve func(context.Context, net.Listener) error) {
	conn, ctx := framesClient(t, serve)
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("health check: %v, want Unimplemented", err)
	}
	if err := exchange(ctx, extprocv3.NewExternalProcessorClient(conn), 0, []byte("{}")); err != nil {
		t.Fatal(err)
	}
}

// TestFramesCancelledStream: a stream the client cancels mid-way (Envoy
// resets the streams of requests whose clients went away) does not disturb
// the streams after it.
func TestFramesCancelledStream(t *testing.T) { eachFrameServer(t, testFramesCancelledStream) }

func testFramesCancelledStream(t *testing.T, serve func(context.Context, net.Listener) error) {
	conn, ctx := framesClient(t, serve)
	client := extprocv3.NewExternalProcessorClient(conn)
	for i := range 20 {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := client.Process(sctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{}}}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
	}
	if err := exchange(ctx, client, 1, bytes.Repeat([]byte("y"), 100<<10)); err != nil {
		t.Fatal(err)
	}
}

// TestFramesSendWindow: a client that reads no answer until it has sent
// thousands of messages exhausts the server's send window (64 KiB, no
// bandwidth probing); the answers wait for it, none is lost or reordered,
// and the stream ends with OK once the client reads them.
func TestFramesSendWindow(t *testing.T) { eachFrameServer(t, testFramesSendWindow) }

func testFramesSendWindow(t *testing.T, serve func(context.Context, net.Listener) error) {
	conn, ctx := framesClient(t, serve, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 12000 // answers of 7 framed bytes: past 64 KiB
	chunk := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte("data: {}\n\n")}}}
	for range n {
		if err := stream.Send(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if !proto.Equal(got, continueResponseBody) {
			t.Fatalf("answer %d: %v", i, got)
		}
	}
	if got, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, %v; want OK", got, err)
	}
}

// TestPhaseOf reads the phase of each kind of request, ahead of or behind
// the other fields, and nothing from what is not a ProcessingRequest.
func TestPhaseOf(t *testing.T) {
	cases := map[int]*extprocv3.ProcessingRequest{
		2: {Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{}}},
		3: {Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{}}},
		4: {Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("b")}}, ObservabilityMode: true},
		5: {Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{}}},
		6: {Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}},
		7: {Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}},
	}
	for want, m := range cases {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := phaseOf(b); got != want {
			t.Errorf("phaseOf(%v) = %d, want %d", m, got, want)
		}
		// fields Envoy sends after the phase (attributes, protocol_config), and an unknown one before it
		pre := append([]byte{0x08, 0x01}, b...) // field 1 varint
		if got := phaseOf(pre); got != want {
			t.Errorf("phaseOf with a varint before: %d, want %d", got, want)
		}
	}
	for _, b := range [][]byte{nil, {0xff}, {0x12, 0x80}, {0x0a, 0x05, 1}, {0x0b}} {
		if got := phaseOf(b); got != 0 {
			t.Errorf("phaseOf(%x) = %d, want 0", b, got)
		}
	}
}

// FuzzPhaseOf: any bytes give a phase or 0, never a panic.
func FuzzPhaseOf(f *testing.F) {
	b, _ := proto.Marshal(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("{}")}}})
	f.Add(b)
	f.Add([]byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p := phaseOf(b); p != 0 && (p < 2 || p > 7) {
			t.Fatalf("phaseOf = %d", p)
		}
	})
}
