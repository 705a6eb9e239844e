package serve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/grpcframes"
	"github.com/stellwerk/stellwerk/internal/protocodec"
)

// socketMode lets the owner and its group connect: run Envoy as the same
// user, or put it in stellwerk's group. Nobody else reaches the socket.
const socketMode = 0o660

// listenGRPC opens the gRPC port the only way Envoy may reach it: a Unix
// socket, or TCP with mutual TLS (docs/security.md), whose TLS set-up it
// returns. config.Validate has refused everything else already.
func listenGRPC(s config.Server) (net.Listener, *tls.Config, error) {
	if path, ok := s.GRPCSocket(); ok {
		ln, err := listenUnix(path)
		return ln, nil, err
	}
	if s.GRPCTLS == nil {
		return nil, nil, errors.New("a TCP address needs grpc_tls") // Validate says so first
	}
	tc, err := serverTLS(*s.GRPCTLS)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", s.GRPC)
	if err != nil {
		return nil, nil, err
	}
	return ln, tc, nil
}

// grpcServer is what serves the gRPC port: a *grpcframes.Server or a
// *grpc.Server (server.grpc_server).
type grpcServer interface {
	grpc.ServiceRegistrar
	Serve(net.Listener) error
	GracefulStop()
	Stop()
}

// newGRPCServer is the server server.grpc_server names, with TLS when tc is
// set and messages up to maxRecv bytes.
func newGRPCServer(s config.Server, tc *tls.Config, maxRecv int, log *zap.Logger) grpcServer {
	codec := protocodec.New()
	if s.GRPCServer != config.GRPCServerGo {
		return grpcframes.New(grpcframes.Options{TLS: tc, MaxRecvMsgSize: maxRecv, MaxConcurrentStreams: 1 << 20,
			InitialWindowSize: 4 << 20, InitialConnWindowSize: 16 << 20, Codec: codec, Log: log})
	}
	var opts []grpc.ServerOption
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return grpc.NewServer(append(append(opts,
		// Buffers reused without zeroing them first: gRPC's own clear a
		// 1 MiB buffer for each message over 32 KiB (internal/protocodec).
		codec.ServerOptions()...),
		grpc.MaxConcurrentStreams(1<<20),
		// Every request is a new ext_proc stream: a few goroutines kept to
		// serve them (their stacks already grown) instead of a new one per
		// stream; when all are busy (long streams, ADS, the access log)
		// gRPC starts one as before. Measured: docs/benchmarks.md, "Less
		// garbage per request". (grpc-go marks the option experimental.)
		grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(maxRecv),
		// Fixed flow-control windows: with the defaults gRPC estimates
		// the link's bandwidth with a PING per burst of data, which on
		// small, frequent ext_proc messages is a frame and a wake-up each
		// way (for Envoy too) that routing does not need.
		grpc.InitialWindowSize(4<<20),
		grpc.InitialConnWindowSize(16<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)...)
}

// listenUnix binds the socket, replacing a stale one left by a process that
// died, but never a file that is not a socket.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serverTLS requires and verifies a client certificate from ClientCA, and
// when ClientNames is set, one of those names in it.
func serverTLS(t config.GRPCTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("grpc_tls: server certificate: %w", err)
	}
	pem, err := os.ReadFile(t.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("grpc_tls.client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("grpc_tls.client_ca: no PEM certificate in %s", t.ClientCA)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
	}
	if names := t.ClientNames; len(names) > 0 {
		tc.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || len(chains[0]) == 0 {
				return errors.New("no verified client certificate")
			}
			leaf := chains[0][0]
			for _, n := range leaf.DNSNames {
				if slices.Contains(names, n) {
					return nil
				}
			}
			for _, u := range leaf.URIs {
				if slices.Contains(names, u.String()) {
					return nil
				}
			}
			return errors.New("client certificate names none of grpc_tls.client_names")
		}
	}
	return tc, nil
}
