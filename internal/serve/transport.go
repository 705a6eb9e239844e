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
	"slices"

	"go.uber.org/zap"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/logevery"
)

// socketMode lets the owner and its group connect: run Envoy as the same
// user, or put it in stellwerk's group. Nobody else reaches the socket.
const socketMode = 0o660

// listenGRPC opens the gRPC port the only way Envoy may reach it: a Unix
// socket, or TCP with mutual TLS (docs/security.md). config.Validate has
// refused everything else already.
func listenGRPC(s config.Server, log *zap.Logger) (net.Listener, []grpc.ServerOption, error) {
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
	return ln, []grpc.ServerOption{grpc.Creds(&loggedRefusals{TransportCredentials: credentials.NewTLS(tc), log: log})}, nil
}

// loggedRefusals logs the clients the gRPC port's TLS refuses (no client
// certificate, another CA's, a name not in client_names): a mis-issued
// certificate of Envoy's had been silent on stellwerk's side (a helper's
// finding). At most one line every refusalLogEvery, with the count since
// the last, so a scanner cannot flood the log.
type loggedRefusals struct {
	credentials.TransportCredentials
	log   *zap.Logger
	every logevery.Limiter
}

func (c *loggedRefusals) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		if ok, n := c.every.Allow(); ok {
			c.log.Warn("refused a client on the gRPC port: its TLS handshake failed (only Envoy's certificate is admitted, docs/security.md)",
				zap.String("remote", conn.RemoteAddr().String()), zap.Int64("refused", n), zap.Error(err))
		}
	}
	return nc, info, err
}

func (c *loggedRefusals) Clone() credentials.TransportCredentials {
	return &loggedRefusals{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
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
