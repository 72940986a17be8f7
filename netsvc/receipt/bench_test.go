package receipt

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// The benchmarks measure what receipts cost a proxied stream: hashing (Meter vs a
// plain copy), the frame layer (Conn), and the per-flow exchange (two hybrid
// signatures and two verifications). Compare with:
//
//	go test -run '^$' -bench . ./netsvc/receipt

const benchSize = 4 << 20

// zeroConn is an endless in-memory source of zeros: a copy from it costs a memcpy, so
// a copy through a Meter around it shows the hashing's own cost.
type zeroConn struct{ net.Conn }

var zeros = make([]byte, 64<<10)

func (zeroConn) Read(p []byte) (int, error) { return copy(p, zeros), nil }

func BenchmarkMeter(b *testing.B) {
	buf := make([]byte, 32<<10)
	run := func(b *testing.B, src io.Reader) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := io.CopyBuffer(io.Discard, io.LimitReader(src, benchSize), buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("memory/plain", func(b *testing.B) { run(b, zeroConn{}) })
	b.Run("memory/meter", func(b *testing.B) { run(b, NewMeter(zeroConn{})) })

	// Over loopback TCP, as a proxy's copy would run: one end writes, the other reads.
	tcp := func(b *testing.B, wrap func(net.Conn) net.Conn) {
		w, r := tcpPair(b)
		w = wrap(w)
		r = wrap(r)
		payload := make([]byte, 32<<10)
		b.SetBytes(benchSize)
		for b.Loop() {
			var wg sync.WaitGroup
			wg.Go(func() {
				for sent := 0; sent < benchSize; sent += len(payload) {
					if _, err := w.Write(payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if _, err := io.CopyBuffer(io.Discard, io.LimitReader(r, benchSize), buf); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
		}
	}
	b.Run("tcp/plain", func(b *testing.B) { tcp(b, func(c net.Conn) net.Conn { return c }) })
	b.Run("tcp/meter", func(b *testing.B) { tcp(b, func(c net.Conn) net.Conn { return NewMeter(c) }) })
}

// BenchmarkHash is the raw rate of each payload hash through a tally, as the frame
// layer feeds it, in writes of 16 and 64 KiB.
func BenchmarkHash(b *testing.B) {
	data := make([]byte, benchSize)
	for _, alg := range []HashAlg{HashSHA256, HashBLAKE3} {
		for _, w := range []int{16 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/write=%dKiB", alg, w>>10), func(b *testing.B) {
				b.SetBytes(benchSize)
				for b.Loop() {
					t := tally{alg: alg}
					for off := 0; off < len(data); off += w {
						t.add(data[off : off+w])
					}
					t.get()
				}
			})
		}
	}
}

// BenchmarkConn is the frame layer over loopback TCP: framing plus hashing at both ends.
func BenchmarkConn(b *testing.B) {
	w, r := tcpPair(b)
	ctx := context.Background()
	var dc *Conn
	var derr error
	var wg sync.WaitGroup
	wg.Go(func() { dc, derr = WrapDialer(ctx, w, config("node-a", "node-b"), testTarget) })
	ac, err := WrapAcceptor(ctx, r, config("node-b", "node-a"))
	wg.Wait()
	if err != nil || derr != nil {
		b.Fatal(err, derr)
	}
	payload := make([]byte, 32<<10)
	buf := make([]byte, 32<<10)
	b.SetBytes(benchSize)
	for b.Loop() {
		var wg sync.WaitGroup
		wg.Go(func() {
			for sent := 0; sent < benchSize; sent += len(payload) {
				if _, err := dc.Write(payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(ac, benchSize), buf); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
	}
}

// BenchmarkExchange is the fixed cost of one flow's receipt: both ends' Finish over a
// loopback TCP stream with nothing sent.
func BenchmarkExchange(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for b.Loop() {
		var wg sync.WaitGroup
		var derr error
		wg.Go(func() {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				derr = err
				return
			}
			defer conn.Close()
			c, err := WrapDialer(ctx, conn, config("node-a", "node-b"), testTarget)
			if err != nil {
				derr = err
				return
			}
			_, derr = c.Finish(ctx)
		})
		conn, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		c, err := WrapAcceptor(ctx, conn, config("node-b", "node-a"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		conn.Close()
		wg.Wait()
		if derr != nil {
			b.Fatal(derr)
		}
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed at the end.
func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var c1 net.Conn
	var derr error
	var wg sync.WaitGroup
	wg.Go(func() { c1, derr = net.Dial("tcp", ln.Addr().String()) })
	c2, err := ln.Accept()
	wg.Wait()
	if err != nil || derr != nil {
		b.Fatal(err, derr)
	}
	b.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}
