package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/stellwerk/stellwerk/internal/bench/noopextproc"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/testcert"
)

// transportPair serves the no-op ext_proc server the way listenGRPC serves stellwerk and returns
// a client connection that dials it as Envoy would.
func transportPair(t testing.TB, kind string) *grpc.ClientConn {
	t.Helper()
	var token *streamToken
	if k, ok := strings.CutSuffix(kind, "+token"); ok {
		kind, token = k, &streamToken{want: []byte(testStreamToken), log: zap.NewNop()}
	}
	dir, err := os.MkdirTemp("", "sw-tr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var srv config.Server
	var dial []grpc.DialOption
	target := ""
	switch kind {
	case "unix":
		srv.GRPC = config.UnixSocketPrefix + filepath.Join(dir, "grpc.sock")
		target = srv.GRPC
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	case "mtls":
		f, err := testcert.Write(dir)
		if err != nil {
			t.Fatal(err)
		}
		srv.GRPC = "127.0.0.1:0"
		srv.GRPCTLS = &config.GRPCTLS{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CA, ClientNames: []string{"envoy.stellwerk.internal"}}
		cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		pem, _ := os.ReadFile(f.CA)
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "stellwerk.internal"})))
	}
	ln, opts, err := listenGRPC(srv, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append(opts, token.serverOptions()...)...)
	noopextproc.Register(gs)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	if target == "" {
		target = ln.Addr().(*net.TCPAddr).String()
	}
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// oneRequest is what Envoy's filter does per request in the cheapest mode
// stellwerk uses: one stream, request headers, request body (2 KB).
func oneRequest(ctx context.Context, c extprocv3.ExternalProcessorClient, body []byte) error {
	st, err := c.Process(ctx)
	if err != nil {
		return err
	}
	for _, m := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{
			Headers: []*corev3.HeaderValue{{Key: ":path", RawValue: []byte("/v1/chat/completions")}}}}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
	} {
		if err := st.Send(m); errors.Is(err, io.EOF) {
			_, err = st.Recv() // the server ended the stream: Recv says why
			return err
		} else if err != nil {
			return err
		}
		if _, err := st.Recv(); err != nil {
			return err
		}
	}
	return st.CloseSend()
}

func TestTransportsServeExtProc(t *testing.T) {
	for _, kind := range []string{"unix", "mtls"} {
		t.Run(kind, func(t *testing.T) {
			c := extprocv3.NewExternalProcessorClient(transportPair(t, kind))
			if err := oneRequest(context.Background(), c, []byte(`{"model":"auto"}`)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPlainTCPAndStaleFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]config.Server{
		"plain tcp":         {GRPC: "127.0.0.1:0"},
		"a file, no socket": {GRPC: config.UnixSocketPrefix + notSocket},
	} {
		if ln, _, err := listenGRPC(s, zap.NewNop()); err == nil {
			ln.Close()
			t.Errorf("%s: listened", name)
		}
	}
	// A live socket is another stellwerk's: refused. A stale one is replaced.
	sock := filepath.Join(dir, "grpc.sock")
	ln, _, err := listenGRPC(config.Server{GRPC: config.UnixSocketPrefix + sock}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(sock)
	if fi.Mode().Perm() != socketMode {
		t.Errorf("socket mode %v", fi.Mode().Perm())
	}
	if ln2, _, err := listenGRPC(config.Server{GRPC: config.UnixSocketPrefix + sock}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "in use") {
		if ln2 != nil {
			ln2.Close()
		}
		t.Errorf("second listener on a live socket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the file behind, as a crash would
	ln, _, err = listenGRPC(config.Server{GRPC: config.UnixSocketPrefix + sock}, zap.NewNop())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()
}

// BenchmarkExtProcTransport is one request's two ext_proc round trips (2 KB
// body) over each transport Envoy may use: what the transport adds per
// request, without Envoy or stellwerk's decision. "+token" streams carry
// and are checked for server.grpc_stream_token (streamtoken.go).
//
//	go test -run '^$' -bench ExtProcTransport -benchmem ./internal/serve/
func BenchmarkExtProcTransport(b *testing.B) {
	body := []byte(strings.Repeat("x", 2048))
	for _, kind := range []string{"unix", "unix+token", "mtls", "mtls+token"} {
		b.Run(kind, func(b *testing.B) {
			c := extprocv3.NewExternalProcessorClient(transportPair(b, kind))
			ctx := context.Background()
			if strings.HasSuffix(kind, "+token") { // Envoy's initial_metadata: fixed, built once
				ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(header.StreamToken, testStreamToken))
			}
			if err := oneRequest(ctx, c, body); err != nil { // connect (and handshake) once, as Envoy does
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := oneRequest(ctx, c, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReloadKeepsMTLS: a reload that leaves server.grpc_tls as it was is not
// a change of addresses (the config holds it by pointer).
func TestReloadKeepsMTLS(t *testing.T) {
	load := func() *config.Config {
		c := &config.Config{Server: config.Server{GRPC: "0.0.0.0:18000",
			GRPCTLS: &config.GRPCTLS{Cert: "c", Key: "k", ClientCA: "ca", ClientNames: []string{"envoy"}}}}
		lib := true
		c.Policy.Library = &lib
		return c
	}
	if err := restartOnly(load(), load()); err != nil {
		t.Errorf("unchanged grpc_tls: %v", err)
	}
	changed := load()
	changed.Server.GRPCTLS.ClientNames = []string{"other"}
	if err := restartOnly(load(), changed); err == nil {
		t.Error("a changed grpc_tls needs a restart")
	}
}

// TestRefusedTLSClientIsLogged: a client the gRPC port's mutual TLS
// refuses (here: no client certificate) leaves a line in the log, once per
// interval, with its address (it had left nothing, a helper's finding).
func TestRefusedTLSClientIsLogged(t *testing.T) {
	dir := t.TempDir()
	f, err := testcert.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	ln, opts, err := listenGRPC(config.Server{GRPC: "127.0.0.1:0",
		GRPCTLS: &config.GRPCTLS{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CA}}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	noopextproc.Register(gs)
	go gs.Serve(ln)
	defer gs.Stop()
	pem, _ := os.ReadFile(f.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	for range 3 {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "stellwerk.internal", NextProtos: []string{"h2"}})
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // TLS 1.3: the server's refusal arrives after the client's handshake
			c.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate was admitted")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessageSnippet("refused a client on the gRPC port").Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := logs.FilterMessageSnippet("refused a client on the gRPC port").Len(); n != 1 {
		t.Fatalf("%d log lines for three refusals in one interval, want 1: %v", n, logs.All())
	}
}

// TestRestartOnlyChanges: envoy.mode and policy.reload_interval need a
// restart (a reload to clusters mode took Envoy's listener away; a new
// interval was ignored, unsaid), envoy.request_timeout and the lease that
// follows it do not (a changed timeout was refused as a lease change the
// operator never made: the config probe).
func TestRestartOnlyChanges(t *testing.T) {
	load := func() *config.Config {
		c, err := config.Decode(strings.NewReader("routing: {default_model: m1}\nproviders: [{name: p1, base_url: \"http://127.0.0.1:8081/v1\", residency: eu}]\nmodels: [{id: m1, provider: p1, context_window: 1000}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for name, tc := range map[string]struct {
		change  func(*config.Config)
		restart bool
	}{
		"envoy.mode":               {func(c *config.Config) { c.Envoy.Mode = "clusters" }, true},
		"policy.reload_interval":   {func(c *config.Config) { c.Policy.ReloadInterval = time.Second }, true},
		"envoy.request_timeout":    {func(c *config.Config) { c.Envoy.RequestTimeout, c.Budgets.Lease = 10*time.Minute, 11*time.Minute }, false},
		"budgets.lease":            {func(c *config.Config) { c.Budgets.Lease = time.Minute }, false},
		"server.grpc_stream_token": {func(c *config.Config) { c.Server.GRPCStreamToken = config.SecretSource{Env: "TOKEN"} }, true},
	} {
		c := load()
		tc.change(c)
		if err := restartOnly(load(), c); (err != nil) != tc.restart {
			t.Errorf("%s: %v", name, err)
		}
	}
}
