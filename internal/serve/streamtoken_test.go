package serve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/stellwerk/stellwerk/internal/bench/noopextproc"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
)

const testStreamToken = "0123456789abcdef0123456789abcdef"

// tokenServer serves the no-op ext_proc and grpc.health.v1 on a Unix
// socket, with the stream token check as serve sets it up, logging to an
// observer.
func tokenServer(t *testing.T, token string) (*grpc.ClientConn, *observer.ObservedLogs) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sw-tok-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	core, logs := observer.New(zap.DebugLevel)
	srv := config.Server{GRPC: config.UnixSocketPrefix + filepath.Join(dir, "grpc.sock")}
	ln, opts, err := listenGRPC(srv, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append(opts, (&streamToken{want: []byte(token), log: zap.New(core)}).serverOptions()...)...)
	noopextproc.Register(gs)
	healthpb.RegisterHealthServer(gs, grpchealth.NewServer())
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(srv.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, logs
}

// TestStreamToken: with server.grpc_stream_token set, an ext_proc stream
// is served only with the token, and every other one (none, a wrong one,
// one of the same length, two values) is refused Unauthenticated; without
// it set, streams without a token are served as before. Health checks
// need no token. Neither the token nor what a client sent shows in the
// error or the log.
func TestStreamToken(t *testing.T) {
	wrongSameLength := strings.Repeat("f", len(testStreamToken))
	for name, tc := range map[string]struct {
		configured string
		sent       []string
		want       codes.Code
	}{
		"not configured, none sent":   {"", nil, codes.OK},
		"not configured, one sent":    {"", []string{"anything"}, codes.OK},
		"configured, none sent":       {testStreamToken, nil, codes.Unauthenticated},
		"configured, wrong":           {testStreamToken, []string{"guess-" + testStreamToken}, codes.Unauthenticated},
		"configured, wrong, same len": {testStreamToken, []string{wrongSameLength}, codes.Unauthenticated},
		"configured, a prefix":        {testStreamToken, []string{testStreamToken[:16]}, codes.Unauthenticated},
		"configured, two values":      {testStreamToken, []string{testStreamToken, wrongSameLength}, codes.Unauthenticated},
		"configured, right":           {testStreamToken, []string{testStreamToken}, codes.OK},
	} {
		t.Run(name, func(t *testing.T) {
			conn, logs := tokenServer(t, tc.configured)
			ctx := context.Background()
			for _, v := range tc.sent {
				ctx = metadata.AppendToOutgoingContext(ctx, header.StreamToken, v)
			}
			err := oneRequest(ctx, extprocv3.NewExternalProcessorClient(conn), []byte(`{"model":"auto"}`))
			if got := grpcstatus.Code(err); got != tc.want {
				t.Fatalf("ext_proc stream: %v, want %v", err, tc.want)
			}
			// Health checks answer whatever was sent: Envoy's send none.
			if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Errorf("health check: %v", err)
			}
			secrets := append([]string{testStreamToken, wrongSameLength}, tc.sent...)
			var seen strings.Builder
			if err != nil {
				seen.WriteString(err.Error())
			}
			for _, e := range logs.All() {
				fmt.Fprintf(&seen, "%s %v\n", e.Message, e.ContextMap())
			}
			for _, s := range secrets {
				if strings.Contains(seen.String(), s) {
					t.Errorf("a token shows in the error or log:\n%s", seen.String())
				}
			}
			if tc.want == codes.Unauthenticated && logs.FilterMessageSnippet("refused a gRPC stream").Len() != 1 {
				t.Errorf("refusal not logged once: %v", logs.All())
			}
		})
	}
}

// TestStreamTokenRefusalsLoggedOnce: refusals in one interval make one log
// line, with the method, the peer and the count; a unary call (none but
// health is served today) is checked like a stream.
func TestStreamTokenRefusalsLoggedOnce(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	st := &streamToken{want: []byte(testStreamToken), log: zap.New(core)}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(":authority", "dyn.example", header.StreamToken, "nope"))
	called := false
	h := func(context.Context, any) (any, error) { called = true; return nil, nil }
	for range 3 {
		if _, err := st.unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/some.Service/Call"}, h); grpcstatus.Code(err) != codes.Unauthenticated {
			t.Fatalf("unary call without the token: %v", err)
		}
	}
	if called {
		t.Error("the handler ran for a refused call")
	}
	lines := logs.FilterMessageSnippet("refused a gRPC stream").All()
	if len(lines) != 1 {
		t.Fatalf("%d lines for three refusals in one interval, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	if f["method"] != "/some.Service/Call" || f["authority"] != "dyn.example" || f["token_sent"] != true || f["refused"] != int64(1) {
		t.Errorf("log fields: %v", f)
	}
	st.every.Every = time.Nanosecond
	time.Sleep(time.Millisecond)
	st.unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/some.Service/Call"}, h)
	if n := logs.FilterMessageSnippet("refused a gRPC stream").Len(); n != 2 {
		t.Errorf("after the interval: %d lines, want 2", n)
	}
}

// TestReadStreamToken: a configured token that cannot be read, or is too
// short or not a header value, refuses the start (serving without it would
// open what it closes), and the error never holds the value.
func TestReadStreamToken(t *testing.T) {
	dir := t.TempDir()
	file := func(content string) string {
		p := filepath.Join(dir, fmt.Sprint(len(content)))
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	env := map[string]string{"TOK": testStreamToken + "\n", "PLACEHOLDER": "REPLACE_WITH_THE_STREAM_TOKEN", "SHORT": "short-secret", "SPACE": "0123456789 abcdef0123"}
	getenv := func(k string) string { return env[k] }
	for name, tc := range map[string]struct {
		src  config.SecretSource
		want string
		err  string
	}{
		"unset":       {config.SecretSource{}, "", ""},
		"env":         {config.SecretSource{Env: "TOK"}, testStreamToken, ""},
		"file":        {config.SecretSource{File: file(" " + testStreamToken + "\n")}, testStreamToken, ""},
		"env missing": {config.SecretSource{Env: "NOPE"}, "", "NOPE is not set"},
		"no file":     {config.SecretSource{File: filepath.Join(dir, "none")}, "", "cannot read"},
		"short":       {config.SecretSource{Env: "SHORT"}, "", "shorter than 16"},
		"a space":     {config.SecretSource{Env: "SPACE"}, "", "visible ASCII"},
		"placeholder": {config.SecretSource{Env: "PLACEHOLDER"}, "", "drop-in.yaml's placeholder"},
	} {
		got, err := readStreamToken(config.Server{GRPCStreamToken: tc.src}, getenv)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v", name, got, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", name, err, tc.err)
		case err != nil && (strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), "abcdef")):
			t.Errorf("%s: the error holds the value: %v", name, err)
		}
	}
}

// BenchmarkStreamTokenAdmits is the check each stream pays when a token is
// configured: one metadata lookup and a constant-time compare.
func BenchmarkStreamTokenAdmits(b *testing.B) {
	st := &streamToken{want: []byte(testStreamToken), log: zap.NewNop()}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(":authority", "stellwerk_extproc", "content-type", "application/grpc",
		"user-agent", "envoy/1.40.0", header.StreamToken, testStreamToken))
	b.ReportAllocs()
	for range b.N {
		if !st.admits(ctx, "/envoy.service.ext_proc.v3.ExternalProcessor/Process") {
			b.Fatal("refused")
		}
	}
}

// TestStreamTokenPlaceholderIsTheDropIns: the placeholder refused as a
// token is the one envoy/drop-in.yaml shows, on ext_proc and ADS.
func TestStreamTokenPlaceholderIsTheDropIns(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "envoy", "drop-in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "{ key: "+header.StreamToken+", value: "+streamTokenPlaceholder+" }"); n != 2 {
		t.Errorf("envoy/drop-in.yaml sends the placeholder token %d times, want 2", n)
	}
}
