package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/stellwerk/stellwerk/internal/mockllm"
)

func runMock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mock-provider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	name := fs.String("name", "mock", "provider name, shown in replies")
	keyEnv := fs.String("api-key-env", "", "environment variable holding the key clients must send (none: no auth)")
	firstByte := fs.Duration("first-byte-delay", 0, "delay before the first byte of every answer")
	chunkDelay := fs.Duration("chunk-delay", 0, "delay between streamed chunks")
	certFile := fs.String("tls-cert", "", "serve TLS with this certificate (PEM)")
	keyFile := fs.String("tls-key", "", "private key for -tls-cert (PEM)")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(stderr, "-tls-cert and -tls-key go together")
		return ErrUsage
	}
	key := ""
	if *keyEnv != "" {
		if key = os.Getenv(*keyEnv); key == "" {
			fmt.Fprintf(stderr, "-api-key-env: %s is not set\n", *keyEnv)
			return ErrUsage
		}
	}
	p := mockllm.New(*name, key)
	p.SetBehavior(mockllm.Behavior{FirstByteDelay: *firstByte, ChunkDelay: *chunkDelay})
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "mock provider %s listening on %s\n", *name, lis.Addr())
	errc := make(chan error, 1)
	go func() {
		if *certFile != "" {
			errc <- srv.ServeTLS(lis, *certFile, *keyFile)
		} else {
			errc <- srv.Serve(lis)
		}
	}()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
