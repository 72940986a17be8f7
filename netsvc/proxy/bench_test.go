package proxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

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

// BenchmarkProxyCPU is the CPU time (user and system, of the whole process: clients,
// proxy and echo backend) per round trip of a 100-byte message on 32 kept-alive
// connections at once, straight to the backend and through the proxy; the difference
// is what the proxy costs per round trip. CPU time moves less than a rate with what
// else the machine runs, but it moves: compare two builds by alternating their runs.
//
//	go test -run '^$' -bench BenchmarkProxyCPU -benchtime 5x ./netsvc/proxy
func BenchmarkProxyCPU(b *testing.B) {
	be := newBackend(b, "echo")
	r := start(b, Config{Catalog: newCatalog([]netsvc.ServicePort{webPort}, be.endpoint(true)), Dialer: newDialer()})
	for _, tg := range []struct{ name, addr string }{{"direct", be.addr().String()}, {"proxy", r.addr(b, "web", "http")}} {
		b.Run(tg.name, func(b *testing.B) {
			const conns, rounds = 32, 3000
			cs := make([]*client, conns)
			for i := range cs {
				cs[i] = connect(b, tg.addr)
			}
			start := cpuTime(b)
			for b.Loop() {
				var wg sync.WaitGroup
				for _, c := range cs {
					wg.Go(func() {
						msg, buf := make([]byte, 100), make([]byte, 100)
						for range rounds {
							if _, err := c.Write(msg); err != nil {
								b.Error(err)
								return
							}
							if _, err := io.ReadFull(c.r, buf); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N*conns*rounds), "cpu-ns/rt")
		})
	}
}

// cpuTime is the CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
