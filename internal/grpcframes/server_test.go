package grpcframes

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stellwerk/stellwerk/internal/protocodec"
)

// echo is an ext_proc service that answers each body with the same body as
// a mutation, and reports its metadata and how its streams ended.
type echo struct {
	extprocv3.UnimplementedExternalProcessorServer
	mu    sync.Mutex
	md    []metadata.MD
	ended []error
	block chan struct{} // Process waits for it before it answers (nil: it does not)
}

func (e *echo) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	e.mu.Lock()
	e.md = append(e.md, md)
	e.mu.Unlock()
	err := e.process(stream)
	e.mu.Lock()
	e.ended = append(e.ended, err)
	e.mu.Unlock()
	return err
}

func (e *echo) process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	if md, _ := metadata.FromIncomingContext(stream.Context()); len(md.Get("x-fail")) > 0 {
		return status.Error(codes.PermissionDenied, "verweigert: "+md.Get("x-fail")[0]+" zu groß")
	}
	if err := stream.SetHeader(metadata.Pairs("x-answered-by", "echo")); err != nil {
		return err
	}
	stream.SetTrailer(metadata.Pairs("x-done", "yes", "x-raw-bin", "\x00\xff"))
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.block != nil {
			select {
			case <-e.block:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		body := req.GetRequestBody().GetBody()
		resp := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
			Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}}}}}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// logs is an access log service that counts the entries it gets.
type logs struct {
	mu      sync.Mutex
	entries int
}

func (l *logs) StreamAccessLogs(stream grpc.ClientStreamingServer[accesslogv3.StreamAccessLogsMessage, accesslogv3.StreamAccessLogsResponse]) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.entries += len(msg.GetHttpLogs().GetLogEntry())
		l.mu.Unlock()
	}
}

type fixture struct {
	srv    *Server
	conn   *grpc.ClientConn
	echo   *echo
	logs   *logs
	health *health.Server
	served chan error
}

// start serves the test services on a Unix socket (with tlsCfg, TLS on
// loopback TCP) and connects a grpc-go client.
func start(t *testing.T, o Options, client ...grpc.DialOption) *fixture {
	t.Helper()
	f := &fixture{echo: &echo{}, logs: &logs{}, health: health.NewServer(), served: make(chan error, 1)}
	o.Codec = protocodec.New()
	f.srv = New(o)
	extprocv3.RegisterExternalProcessorServer(f.srv, f.echo)
	accesslogv3.RegisterAccessLogServiceServer(f.srv, f.logs)
	healthpb.RegisterHealthServer(f.srv, f.health)
	var l net.Listener
	var err error
	target := ""
	if o.TLS != nil {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		target = l.Addr().String()
	} else {
		sock := filepath.Join(t.TempDir(), "g.sock")
		l, err = net.Listen("unix", sock)
		target = "unix://" + sock
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { f.served <- f.srv.Serve(l) }()
	if len(client) == 0 {
		client = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	f.conn, err = grpc.NewClient(target, client...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.conn.Close()
		f.srv.Stop()
		if err := <-f.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func bodyRequest(b []byte) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: b}}}
}

// roundTrips sends each body on one stream and checks every echo.
func roundTrips(ctx context.Context, client extprocv3.ExternalProcessorClient, bodies [][]byte) error {
	stream, err := client.Process(ctx)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { // all sent before any is read: both directions' windows fill
		for _, b := range bodies {
			if err := stream.Send(bodyRequest(b)); err != nil {
				errc <- err
				return
			}
		}
		errc <- stream.CloseSend()
	}()
	for i, b := range bodies {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if got := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody(); !bytes.Equal(got, b) {
			return errors.New("an echo differs from its body")
		}
		_ = i
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return err
	}
	return <-errc
}

// TestStreamsAndFlowControl: concurrent bidirectional streams whose
// messages, both ways, are larger than a frame and together larger than
// every window (the client's grpc-go windows start at 64 KiB) all arrive
// whole and in order.
func TestStreamsAndFlowControl(t *testing.T) {
	f := start(t, Options{MaxRecvMsgSize: 8 << 20, InitialWindowSize: 256 << 10, InitialConnWindowSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := extprocv3.NewExternalProcessorClient(f.conn)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bodies := [][]byte{[]byte("{}"), big[:len(big)>>(i%5)], nil, big[:100<<10], []byte("x")}
			errs <- roundTrips(ctx, client, bodies)
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

// TestMetadataAndStatus: the client's metadata (a binary value included)
// reaches the handler; the handler's header and trailer metadata and an
// error's code and message (not ASCII) reach the client.
func TestMetadataAndStatus(t *testing.T) {
	f := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := extprocv3.NewExternalProcessorClient(f.conn)
	mctx := metadata.AppendToOutgoingContext(ctx, "x-stellwerk-egress", "openai", "x-key-bin", "\x01\x02\xff")
	stream, err := client.Process(mctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(bodyRequest([]byte("hi"))); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	hdr, _ := stream.Header()
	_ = stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if got := hdr.Get("x-answered-by"); len(got) != 1 || got[0] != "echo" {
		t.Errorf("header metadata %v", hdr)
	}
	tr := stream.Trailer()
	if tr.Get("x-done")[0] != "yes" || tr.Get("x-raw-bin")[0] != "\x00\xff" {
		t.Errorf("trailer metadata %v", tr)
	}
	f.echo.mu.Lock()
	md := f.echo.md[0]
	f.echo.mu.Unlock()
	if md.Get("x-stellwerk-egress")[0] != "openai" || md.Get("x-key-bin")[0] != "\x01\x02\xff" {
		t.Errorf("incoming metadata %v", md)
	}

	fctx := metadata.AppendToOutgoingContext(ctx, "x-fail", "viel")
	stream, err = client.Process(fctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if s := status.Convert(err); s.Code() != codes.PermissionDenied || s.Message() != "verweigert: viel zu groß" {
		t.Errorf("a failed stream: %v, want PermissionDenied with its message", err)
	}
}

// TestOtherKindsOfMethods: unary and server-streaming (grpc.health.v1),
// client-streaming (the access log service), and an unknown method.
func TestOtherKindsOfMethods(t *testing.T) {
	f := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(f.conn)
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v, want NotFound", err)
	}
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("Watch: %v, %v", r, err)
	}
	f.health.SetServingStatus("x", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after a change: %v, %v", r, err)
	}

	al, err := accesslogv3.NewAccessLogServiceClient(f.conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := al.Send(&accesslogv3.StreamAccessLogsMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := al.CloseAndRecv(); err != nil {
		t.Fatalf("access log stream: %v", err)
	}

	err = f.conn.Invoke(ctx, "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want Unimplemented", err)
	}
}

// TestLimitsDeadlinesCancels: a message over the limit ends its stream with
// RESOURCE_EXHAUSTED; a deadline ends a waiting handler's context; a
// stream the client cancels ends the handler's context; none of them
// disturbs the next stream.
func TestLimitsDeadlinesCancels(t *testing.T) {
	f := start(t, Options{MaxRecvMsgSize: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := extprocv3.NewExternalProcessorClient(f.conn)

	stream, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(bodyRequest(make([]byte, 2<<20)))
	if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 2 MiB message over a 1 MiB limit: %v, want ResourceExhausted", err)
	}

	f.echo.block = make(chan struct{})
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	stream, err = client.Process(dctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(bodyRequest([]byte("a")))
	if _, err := stream.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("past its deadline: %v, want DeadlineExceeded", err)
	}
	dcancel()

	cctx, ccancel := context.WithCancel(ctx)
	stream, err = client.Process(cctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(bodyRequest([]byte("b")))
	time.Sleep(50 * time.Millisecond)
	ccancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.echo.mu.Lock()
		n := len(f.echo.ended)
		f.echo.mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			if n < 3 {
				t.Fatalf("%d handlers ended; the deadline's and the cancelled one's should have", n)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(f.echo.block)
	f.echo.block = nil
	if err := roundTrips(ctx, client, [][]byte{[]byte("after")}); err != nil {
		t.Fatal(err)
	}
}

// TestGracefulStop: streams open when GracefulStop starts finish; the
// server then stops, and Serve returns nil.
func TestGracefulStop(t *testing.T) {
	f := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := extprocv3.NewExternalProcessorClient(f.conn)
	stream, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(bodyRequest([]byte("1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { f.srv.GracefulStop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("GracefulStop returned while a stream was open")
	default:
	}
	if err := stream.Send(bodyRequest([]byte("2"))); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || string(r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()) != "2" {
		t.Fatalf("the open stream after GracefulStop: %v, %v", r, err)
	}
	_ = stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop did not return after the last stream ended")
	}
}

// TestMutualTLS: over TLS the client must present a certificate the
// server trusts; with one, RPCs work.
func TestMutualTLS(t *testing.T) {
	ca, caKey := certificate(t, nil, nil, true)
	srvCert, srvKey := certificate(t, ca, caKey, false)
	cliCert, cliKey := certificate(t, ca, caKey, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	cliTLS := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}},
		RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	f := start(t, Options{TLS: srvTLS}, grpc.WithTransportCredentials(credentials.NewTLS(cliTLS)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := roundTrips(ctx, extprocv3.NewExternalProcessorClient(f.conn), [][]byte{[]byte("tls")}); err != nil {
		t.Fatal(err)
	}

	anon := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	conn, err := grpc.NewClient(f.conn.Target(), grpc.WithTransportCredentials(credentials.NewTLS(anon)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("a client without a certificate was served")
	}
}

// certificate makes a CA (ca true, self-signed) or a leaf for localhost
// signed by parent.
func certificate(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestParseTimeout and TestEncodeMessage: the two header formats gRPC
// defines.
func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"1S": time.Second, "250m": 250 * time.Millisecond, "99999999n": 99999999, "2H": 2 * time.Hour} {
		if got, ok := parseTimeout(in); !ok || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "S", "1", "1x", "-1S", "123456789S"} {
		if _, ok := parseTimeout(in); ok {
			t.Errorf("parseTimeout(%q) accepted", in)
		}
	}
}

func TestEncodeMessage(t *testing.T) {
	if got := encodeMessage("a 100% ß\n"); got != "a 100%25 %C3%9F%0A" {
		t.Errorf("encodeMessage = %q", got)
	}
}

var _ = proto.Equal
