package grpcframes

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/stellwerk/stellwerk/internal/protocodec"
)

// FuzzConn: whatever a peer sends after the preface, the connection ends
// when the peer closes it, without a panic.
func FuzzConn(f *testing.F) {
	// A well-formed start: SETTINGS, a stream's HEADERS and a DATA frame
	// with a message; the fuzzer mutates from there.
	var seed bytes.Buffer
	fr := http2.NewFramer(&seed, nil)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":path", "/envoy.service.ext_proc.v3.ExternalProcessor/Process"},
		{":scheme", "http"}, {":authority", "x"}, {"content-type", "application/grpc"}, {"grpc-timeout", "1S"}, {"x-a-bin", "AAE"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	_ = fr.WriteData(1, false, []byte{0, 0, 0, 0, 4, 0x22, 0x02, 0x08, 0x01})
	_ = fr.WriteWindowUpdate(0, 1000)
	_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 9, 1})
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := New(Options{Codec: protocodec.New(), MaxRecvMsgSize: 1 << 16})
		extprocv3.RegisterExternalProcessorServer(s, &echo{})
		server, client := net.Pipe()
		c := newConn(s, server)
		done := make(chan struct{})
		go func() { c.serve(); close(done) }()
		go io.Copy(io.Discard, client) // what the server writes
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = client.Write([]byte(http2.ClientPreface))
		_, _ = client.Write(b)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection did not end after its peer closed it")
		}
	})
}
