package bench

import (
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"qnet.dev/qnet/netsvc/receipt"
	"qnet.dev/qnet/tunnel"
)

// BenchmarkReceiptCost measures what transfer receipts cost on the cross-node path:
// 256 MiB over one tunnel, as it is and inside the receipt frame layer that counts
// and hashes every byte at both ends, in rounds of 64 MiB each: one slice on a plain
// stream, one on a flow hashed as nodes dial it (BLAKE3) and one on a flow hashed as
// receipts of format 1 were (SHA-256, Config.Format1), each on a fresh stream of the
// tunnel, in an order that turns from round to round. Each round gives a cost (1 − plain time ÷ flow time),
// and the reported cost is the median over the rounds, so that a round the VM's
// neighbours slowed down moves the figure less than a ratio of the sums would; the
// throughputs are over all rounds. It also times how long both ends take to exchange
// and co-sign a flow's receipt when it closes (two ML-DSA-65 + Ed25519 signatures and
// two verifications, one round trip). Target: receipts and hashing cost under 15% of
// throughput.
//
//	go test -run '^$' -bench 'BenchmarkReceiptCost$' -benchtime 20x ./bench
func BenchmarkReceiptCost(b *testing.B) {
	dcfg, lcfg := tunnelNodes(b)
	_, _, d, t := streamPair(b, dcfg, lcfg)
	ctx := context.Background()
	const slice = throughputBytes / 4
	var raw, finish time.Duration
	metered := map[bool]time.Duration{} // by Format1
	costs := map[bool][]float64{}
	flows, round := 0, 0
	for b.Loop() {
		for range throughputBytes / slice {
			// Plain first, or last, by turns; each slice on a fresh stream of the
			// same tunnel, as a node opens one per connection, and a flow of its own
			// for each hash.
			took := map[bool]time.Duration{}
			var plain time.Duration
			for i := range 3 {
				if (i+round)%3 == 0 {
					w, r := streamOn(b, d, t)
					plain, _ = transfer(b, w, r, slice)
					raw += plain
					w.Close()
					r.Close()
					continue
				}
				format1 := (i+round)%3 == 2
				dc, ac := flowOn(b, d, t, dcfg, lcfg, "data", format1)
				took[format1], _ = transfer(b, dc, ac, slice)
				metered[format1] += took[format1]
				start := time.Now()
				done := make(chan error, 1)
				go func() { _, err := ac.Finish(ctx); done <- err }()
				if _, err := dc.Finish(ctx); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				finish += time.Since(start)
				flows++
				dc.Close()
				ac.Close()
			}
			for format1, d := range took {
				costs[format1] = append(costs[format1], 100*(1-float64(plain)/float64(d)))
			}
			round++
		}
	}
	b.ReportMetric(mbps(throughputBytes, raw/time.Duration(b.N)), "tunnel-MB/s")
	b.ReportMetric(mbps(throughputBytes, metered[false]/time.Duration(b.N)), "receipts-MB/s")
	b.ReportMetric(medianFloat(costs[false]), "cost-%")
	b.ReportMetric(mbps(throughputBytes, metered[true]/time.Duration(b.N)), "sha256-MB/s")
	b.ReportMetric(medianFloat(costs[true]), "sha256-cost-%")
	b.ReportMetric(float64(finish.Microseconds())/float64(flows)/1000, "cosign-ms/flow")
}

// medianFloat returns the median of v, which must not be empty.
func medianFloat(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// BenchmarkReceiptCostRequests measures the cost of receipts on the request path: a
// client and a server exchange small requests (64 B) and responses (1 KiB) over one
// long-lived tunnel stream, as a keep-alive HTTP connection through the proxy does,
// as they are and inside the receipt frame layer (BLAKE3, and SHA-256 for comparison),
// in turns of 2,000 round trips.
//
//	go test -run '^$' -bench BenchmarkReceiptCostRequests -benchtime 3x ./bench
func BenchmarkReceiptCostRequests(b *testing.B) {
	dcfg, lcfg := tunnelNodes(b)
	w, r, d, t := streamPair(b, dcfg, lcfg)
	dc, ac := flowOn(b, d, t, dcfg, lcfg, "http", false)
	sdc, sac := flowOn(b, d, t, dcfg, lcfg, "http", true)
	const rounds = 2000
	var raw, metered, sha time.Duration
	for b.Loop() {
		raw += pingPong(b, w, r, rounds)
		metered += pingPong(b, dc, ac, rounds)
		sha += pingPong(b, sdc, sac, rounds)
	}
	b.ReportMetric(float64(rounds*b.N)/raw.Seconds(), "tunnel-req/s")
	b.ReportMetric(float64(rounds*b.N)/metered.Seconds(), "receipts-req/s")
	b.ReportMetric(100*(1-float64(raw)/float64(metered)), "cost-%")
	b.ReportMetric(100*(1-float64(raw)/float64(sha)), "sha256-cost-%")
}

// pingPong has a server on s answer n requests of 64 bytes from c with 1 KiB each and
// returns how long the n round trips took.
func pingPong(b *testing.B, c, s io.ReadWriter, n int) time.Duration {
	req, resp := make([]byte, 64), make([]byte, 1024)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for range n {
			if _, err := io.ReadFull(s, buf); err != nil {
				errc <- err
				return
			}
			if _, err := s.Write(resp); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	start := time.Now()
	buf := make([]byte, 1024)
	for range n {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return took
}

// streamOn opens a stream of tunnel d, whose other end is t: the dialing end and the
// accepting one.
func streamOn(b *testing.B, d, t *tunnel.Tunnel) (w, r net.Conn) {
	b.Helper()
	ctx := context.Background()
	w, err := d.Open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	w.Write([]byte{0}) // the peer learns of a stream with its first frame
	r, err = t.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	r.Read(make([]byte, 1))
	return w, r
}

// flowOn opens a stream of tunnel d (from node dcfg to node lcfg, whose end is t) and
// starts a flow on it in the receipt frame layer: the dialing end and the accepting
// one. The dialer speaks HELLO version 1 (SHA-256) when format1 is set.
func flowOn(b *testing.B, d, t *tunnel.Tunnel, dcfg, lcfg tunnel.Config, port string, format1 bool) (dialer, acceptor *receipt.Conn) {
	b.Helper()
	mw, mr := streamOn(b, d, t)
	dialCfg := receipt.Config{Self: dcfg.Key.ID(), Key: dcfg.Key, Peer: lcfg.Key.ID(), PeerKey: lcfg.Key.Public(), Format1: format1}
	accCfg := receipt.Config{Self: lcfg.Key.ID(), Key: lcfg.Key, Peer: dcfg.Key.ID(), PeerKey: dcfg.Key.Public()}
	ctx := context.Background()
	acc := make(chan *receipt.Conn, 1)
	go func() {
		c, err := receipt.WrapAcceptor(ctx, mr, accCfg)
		if err != nil {
			b.Error(err)
		}
		acc <- c
	}()
	dc, err := receipt.WrapDialer(ctx, mw, dialCfg, receipt.Target{Service: "bench", Port: port, Depot: "bench-0"})
	if err != nil {
		b.Fatal(err)
	}
	ac := <-acc
	if ac == nil {
		b.FailNow()
	}
	return dc, ac
}
