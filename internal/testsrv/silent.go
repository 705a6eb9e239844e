package testsrv

import (
	"net"
	"testing"
)

// Silent listens on a loopback port, takes every connection and never
// answers, as a pooler without a backend or a proxy to nowhere does. It
// returns the address and a channel that receives once a connection was
// taken; t.Cleanup closes the listener and the connections.
func Silent(t testing.TB) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	took := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never answered
			select {
			case took <- struct{}{}:
			default:
			}
		}
	}()
	return ln.Addr().String(), took
}
