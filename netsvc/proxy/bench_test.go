package proxy

import (
	"bufio"
	"io"
	"net"
	"testing"

	"qnet.dev/qnet/netsvc"
)

// BenchmarkProxyRoundTrip measures a small request and its answer (64 bytes each way)
// to an echo backend, direct and through the proxy, on one open connection and with a
// new connection per request.
func BenchmarkProxyRoundTrip(b *testing.B) {
	be := newBackend(b, "echo")
	r := start(b, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, be.endpoint(true)), Dialer: newDialer()})
	targets := []struct{ name, addr string }{
		{"direct", be.addr().String()},
		{"proxy", r.addr(b, "web", "http")},
	}
	msg := make([]byte, 64)
	for _, tg := range targets {
		b.Run(tg.name+"/conn", func(b *testing.B) {
			c := connect(b, tg.addr)
			buf := make([]byte, len(msg))
			b.SetBytes(int64(2 * len(msg)))
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c.r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tg.name+"/dial", func(b *testing.B) {
			buf := make([]byte, len(msg))
			for b.Loop() {
				nc, err := net.Dial("tcp", tg.addr)
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(nc)
				if _, err := br.ReadString('\n'); err != nil { // the greeting
					b.Fatal(err)
				}
				if _, err := nc.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, buf); err != nil {
					b.Fatal(err)
				}
				nc.Close()
			}
		})
	}
}
