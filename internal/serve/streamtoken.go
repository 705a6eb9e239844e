package serve

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/logevery"
	"github.com/stellwerk/stellwerk/internal/store"
)

// streamTokenPlaceholder is the value envoy/drop-in.yaml shows: known to
// everyone who read it, so never a token.
const streamTokenPlaceholder = "REPLACE_WITH_THE_STREAM_TOKEN"

// minStreamTokenLen keeps a stream token out of a guesser's reach: each
// guess is a request through the operator's Envoy.
const minStreamTokenLen = 16

// readStreamToken reads server.grpc_stream_token ("" when unset). A token
// that is set but cannot be read refuses the start: serving without it
// would open the socket it was meant to close.
func readStreamToken(s config.Server, getenv func(string) string) (string, error) {
	if !s.GRPCStreamToken.IsSet() {
		return "", nil
	}
	v, err := store.ReadSecret(s.GRPCStreamToken, getenv)
	if err != nil {
		return "", fmt.Errorf("server.grpc_stream_token: %w", err)
	}
	if v == streamTokenPlaceholder {
		return "", errors.New("server.grpc_stream_token: is envoy/drop-in.yaml's placeholder; make a token of your own (openssl rand -hex 32)")
	}
	if len(v) < minStreamTokenLen {
		return "", fmt.Errorf("server.grpc_stream_token: shorter than %d characters (openssl rand -hex 32 makes one)", minStreamTokenLen)
	}
	// Envoy sends it as a header value: visible ASCII only.
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return "", errors.New("server.grpc_stream_token: only visible ASCII characters (no spaces) may go in a gRPC metadata value")
	}
	return v, nil
}

// streamToken admits a gRPC stream only when it carries the configured
// token as header.StreamToken metadata: what Envoy's own gRPC clients send
// (initial_metadata in envoy/drop-in.yaml) and a client whose request the
// operator's Envoy proxies to stellwerk_xds or stellwerk_extproc cannot
// know (docs/security.md). grpc.health.v1 is exempt: Envoy's health checks
// of those clusters send no metadata, and it tells nothing but "serving".
// The cost is one metadata lookup and a compare per stream.
type streamToken struct {
	want  []byte
	log   *zap.Logger
	every logevery.Limiter
}

// errStreamToken is what a refused stream gets: it names the setting, never
// the value.
var errStreamToken = grpcstatus.Error(codes.Unauthenticated, "stellwerk: this stream lacks the stream token (server.grpc_stream_token)")

// serverOptions are the interceptors that check the token; none when no
// token is configured, so nothing changes for a deployment without one.
func (t *streamToken) serverOptions() []grpc.ServerOption {
	if t == nil || len(t.want) == 0 {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainStreamInterceptor(t.stream), grpc.ChainUnaryInterceptor(t.unary)}
}

func (t *streamToken) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !t.admits(ss.Context(), info.FullMethod) {
		return errStreamToken
	}
	return handler(srv, ss)
}

func (t *streamToken) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !t.admits(ctx, info.FullMethod) {
		return nil, errStreamToken
	}
	return handler(ctx, req)
}

func (t *streamToken) admits(ctx context.Context, method string) bool {
	if strings.HasPrefix(method, healthMethodPrefix) {
		return true
	}
	// Not FromIncomingContext: that copies every key of the stream's
	// metadata, five allocations a stream.
	v := metadata.ValueFromIncomingContext(ctx, header.StreamToken)
	if len(v) == 1 && subtle.ConstantTimeCompare([]byte(v[0]), t.want) == 1 {
		return true
	}
	if ok, n := t.every.Allow(); ok {
		md, _ := metadata.FromIncomingContext(ctx)
		remote, authority := "", ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			remote = p.Addr.String()
		}
		if a := md[":authority"]; len(a) > 0 {
			authority = apierr.Truncate(a[0], 128) // the proxied client's
		}
		sent := len(v) > 0
		t.log.Warn("refused a gRPC stream without the right stream token: only Envoy's own gRPC clients have it; "+
			"a request from a client that Envoy proxied to a stellwerk cluster does not (docs/security.md)",
			zap.String("method", method), zap.String("remote", remote), zap.String("authority", authority),
			zap.Bool("token_sent", sent), zap.Int64("refused", n))
	}
	return false
}

// healthMethodPrefix is every method of grpc.health.v1.Health.
var healthMethodPrefix = "/" + healthpb.Health_ServiceDesc.ServiceName + "/"
