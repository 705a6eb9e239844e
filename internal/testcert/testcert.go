// Package testcert makes throwaway certificates for the mutual-TLS set-up
// between Envoy and stellwerk's gRPC port, for end-to-end tests and
// benchmarks. Nothing here is for production use.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/stellwerk/stellwerk/internal/config"
)

// Files are the files of a throwaway mutual-TLS set-up between Envoy and
// stellwerk's gRPC port.
type Files struct {
	CA                    string // signs both sides
	ServerCert, ServerKey string // stellwerk: stellwerk.internal
	ClientCert, ClientKey string // Envoy: envoy.stellwerk.internal
	// Stranger is a client certificate from another CA.
	StrangerCert, StrangerKey string
}

// Write writes a CA, stellwerk's and Envoy's certificates, and one from
// an unrelated CA, into dir.
func Write(dir string) (Files, error) {
	f := Files{CA: filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "envoy.crt"), ClientKey: filepath.Join(dir, "envoy.key"),
		StrangerCert: filepath.Join(dir, "stranger.crt"), StrangerKey: filepath.Join(dir, "stranger.key")}
	ca, caKey, caPEM, err := newCert("stellwerk test CA", nil, nil, true, 0)
	if err != nil {
		return f, err
	}
	if err := os.WriteFile(f.CA, caPEM, 0o600); err != nil {
		return f, err
	}
	leaves := []struct {
		name       string
		usage      x509.ExtKeyUsage
		cert, key  string
		issuer     *x509.Certificate
		issuerKey  *ecdsa.PrivateKey
		selfSigned bool
	}{
		{"stellwerk.internal", x509.ExtKeyUsageServerAuth, f.ServerCert, f.ServerKey, ca, caKey, false},
		{EnvoyName, x509.ExtKeyUsageClientAuth, f.ClientCert, f.ClientKey, ca, caKey, false},
		{EnvoyName, x509.ExtKeyUsageClientAuth, f.StrangerCert, f.StrangerKey, nil, nil, true},
	}
	for _, l := range leaves {
		_, key, certPEM, err := newCert(l.name, l.issuer, l.issuerKey, false, l.usage)
		if err != nil {
			return f, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return f, err
		}
		if err := os.WriteFile(l.cert, certPEM, 0o600); err != nil {
			return f, err
		}
		if err := os.WriteFile(l.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return f, err
		}
	}
	return f, nil
}

// newCert makes a certificate for name, signed by issuer (self-signed when
// issuer is nil).
func newCert(name string, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey, isCA bool, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{name}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	}
	if issuer == nil {
		issuer, issuerKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, issuerKey)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// EnvoyName is the name Envoy's certificate carries: what stellwerk's
// grpc_tls.client_names admits.
const EnvoyName = "envoy.stellwerk.internal"

// ServerTLS is stellwerk's grpc_tls for these files.
func (f Files) ServerTLS() *config.GRPCTLS {
	return &config.GRPCTLS{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CA, ClientNames: []string{EnvoyName}}
}

// Bootstrap names the Envoy bootstrap in envoy/ for stellwerk's gRPC
// address s, and what to replace in it: its socket path, or its TCP
// address and, from f, Envoy's certificate and the CA it trusts.
func Bootstrap(s config.Server, f Files) (file string, replace map[string]string) {
	if path, ok := s.GRPCSocket(); ok {
		return "bootstrap.yaml", map[string]string{"/run/stellwerk/grpc.sock": path}
	}
	host, port, _ := net.SplitHostPort(s.GRPC)
	return "bootstrap-mtls.yaml", map[string]string{
		"address: stellwerk.internal, port_value: 18000": "address: " + host + ", port_value: " + port,
		"/etc/envoy/tls/envoy.crt":                       f.ClientCert,
		"/etc/envoy/tls/envoy.key":                       f.ClientKey,
		"/etc/envoy/tls/stellwerk-ca.crt":                f.CA,
	}
}
