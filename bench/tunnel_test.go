package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/tunnel"
)

// The tunnel benchmarks: handshake cost, stream throughput and the cost of rekeying,
// each against its classical or plain counterpart in the same run.
//
//	go test -run '^$' -bench Tunnel -benchtime 3x ./bench/

// tunnelNodes returns the configs of two registered nodes.
func tunnelNodes(b *testing.B) (dcfg, lcfg tunnel.Config) {
	peers := tunnel.NewPeerSet()
	var cfgs []tunnel.Config
	for range 2 {
		k, err := identity.Generate(true)
		if err != nil {
			b.Fatal(err)
		}
		peers.Add(k.ID(), k.Public())
		cfg := tunnel.DefaultConfig()
		cfg.Key, cfg.Peers = k, peers
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfgs = append(cfgs, cfg)
	}
	return cfgs[0], cfgs[1]
}

func tcpListener(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

func tunnelListen(b *testing.B, cfg tunnel.Config) *tunnel.Listener {
	l, err := tunnel.Listen(cfg, tcpListener(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// ed25519Cert is a self-signed certificate of a fresh Ed25519 key, as nodes use.
func ed25519Cert(b *testing.B) tls.Certificate {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// classicalTLS returns client and server configs of plain TLS 1.3: X25519, mutual
// Ed25519 certificates, no binding.
func classicalTLS(b *testing.B) (client, server *tls.Config) {
	client = &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519},
		Certificates: []tls.Certificate{ed25519Cert(b)}, InsecureSkipVerify: true, SessionTicketsDisabled: true}
	server = &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519},
		Certificates: []tls.Certificate{ed25519Cert(b)}, ClientAuth: tls.RequireAnyClientCert, SessionTicketsDisabled: true}
	return client, server
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkTunnelHandshake: a tunnel's handshake (TCP, TLS 1.3 with X25519MLKEM768,
// mutual Ed25519 certificates, both ML-DSA-65 + Ed25519 bindings, until both ends hold
// the tunnel) against a classical TLS 1.3 handshake (TCP, X25519, mutual Ed25519
// certificates, until both ends completed it). Target: PQ median < 1.5 ms.
func BenchmarkTunnelHandshake(b *testing.B) {
	dcfg, lcfg := tunnelNodes(b)
	l := tunnelListen(b, lcfg)
	dialer, err := tunnel.NewDialer(dcfg)
	if err != nil {
		b.Fatal(err)
	}
	ccfg, scfg := classicalTLS(b)
	cln := tcpListener(b)
	served := make(chan error)
	go func() {
		for {
			c, err := cln.Accept()
			if err != nil {
				return
			}
			s := tls.Server(c, scfg)
			served <- s.Handshake()
			s.Close()
		}
	}()
	ctx := context.Background()
	const perIteration = 100
	var pq, classical []time.Duration
	for b.Loop() {
		for range perIteration {
			start := time.Now()
			d, err := dialer.Dial(ctx, l.Addr().String(), tunnel.Expect{})
			if err != nil {
				b.Fatal(err)
			}
			t, err := l.Accept(ctx)
			if err != nil {
				b.Fatal(err)
			}
			pq = append(pq, time.Since(start))
			d.Close()
			t.Close()

			start = time.Now()
			c, err := tls.Dial("tcp", cln.Addr().String(), ccfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := <-served; err != nil {
				b.Fatal(err)
			}
			classical = append(classical, time.Since(start))
			c.Close()
		}
	}
	b.ReportMetric(float64(median(pq).Microseconds()), "pq-median-µs")
	b.ReportMetric(float64(percentile(pq, 0.9).Microseconds()), "pq-p90-µs")
	b.ReportMetric(float64(median(classical).Microseconds()), "classical-median-µs")
	b.ReportMetric(float64(median(pq))/float64(median(classical)), "pq/classical")
}

const throughputBytes = 256 << 20

// transfer writes n bytes in 64 KiB writes on w and reads them on r; it returns the
// time until the last byte was read and the longest pause between two reads.
func transfer(b *testing.B, w io.Writer, r io.Reader, n int64) (took, stall time.Duration) {
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		var err error
		for sent := int64(0); sent < n && err == nil; sent += int64(len(buf)) {
			_, err = w.Write(buf)
		}
		errc <- err
	}()
	rbuf := make([]byte, 64<<10)
	last := time.Now()
	for got := int64(0); got < n; {
		m, err := r.Read(rbuf)
		if err != nil {
			b.Fatal(err)
		}
		got += int64(m)
		now := time.Now()
		stall = max(stall, now.Sub(last))
		last = now
	}
	took = time.Since(start)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return took, stall
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// streamPair opens a tunnel with cfgs and one stream over it.
func streamPair(b *testing.B, dcfg, lcfg tunnel.Config) (w, r net.Conn, d, t *tunnel.Tunnel) {
	l := tunnelListen(b, lcfg)
	ctx := context.Background()
	d, err := tunnel.Dial(ctx, dcfg, l.Addr().String(), tunnel.Expect{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	t, err = l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	w, r = streamOn(b, d, t)
	return w, r, d, t
}

func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	ln := tcpListener(b)
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	s := <-ch
	b.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// BenchmarkTunnelThroughput: one stream, 64 KiB writes, 256 MiB over loopback, through
// a tunnel, against plain TCP and plain TLS 1.3 (AES-128-GCM, as the tunnel). Targets:
// tunnel >= 60% of TCP and >= 85% of TLS. It also reports plain TLS against TCP (the
// ceiling for any tunnel made of Go's TLS) and, for scale, the rate at which one core
// seals 16 KiB records with AES-128-GCM (what TLS 1.3 does to each record it sends).
func BenchmarkTunnelThroughput(b *testing.B) {
	tc, ts := tcpPair(b)
	rc, rs := tcpPair(b)
	ccfg, scfg := classicalTLS(b)
	lc, ls := tls.Client(rc, ccfg), tls.Server(rs, scfg)
	go ls.Handshake()
	if err := lc.Handshake(); err != nil {
		b.Fatal(err)
	}
	if cs := lc.ConnectionState().CipherSuite; cs != tls.TLS_AES_128_GCM_SHA256 {
		b.Logf("plain TLS negotiated %s", tls.CipherSuiteName(cs))
	}
	dcfg, lcfg := tunnelNodes(b)
	w, r, _, _ := streamPair(b, dcfg, lcfg)

	// The three take turns in slices of 64 MiB, so that a change in the machine's
	// speed (a shared VM's neighbours) weighs on all three alike.
	const slice = throughputBytes / 4
	var tcp, plain, tun time.Duration
	for b.Loop() {
		for range throughputBytes / slice {
			took, _ := transfer(b, tc, ts, slice)
			tcp += took
			took, _ = transfer(b, lc, ls, slice)
			plain += took
			took, _ = transfer(b, w, r, slice)
			tun += took
		}
	}
	b.ReportMetric(mbps(throughputBytes, tcp/time.Duration(b.N)), "tcp-MB/s")
	b.ReportMetric(mbps(throughputBytes, plain/time.Duration(b.N)), "tls-MB/s")
	b.ReportMetric(mbps(throughputBytes, tun/time.Duration(b.N)), "tunnel-MB/s")
	b.ReportMetric(float64(tcp)/float64(tun), "tunnel/tcp")
	b.ReportMetric(float64(plain)/float64(tun), "tunnel/tls")
	b.ReportMetric(float64(tcp)/float64(plain), "tls/tcp")
	b.ReportMetric(sealRate(b), "aes128gcm-seal-MB/s")
}

// sealRate returns how many MB/s one core seals with AES-128-GCM in 16 KiB records.
func sealRate(b *testing.B) float64 {
	blk, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 16<<10, 16<<10+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	start := time.Now()
	for range throughputBytes / len(rec) {
		aead.Seal(rec[:0], nonce, rec, nil)
	}
	return mbps(throughputBytes, time.Since(start))
}

// BenchmarkTunnelRekey: the cost of rekeying a busy stream: 256 MiB through a tunnel
// that rekeys every 64 MiB against one that does not (in turns), the time a rekey's
// handshake takes while the stream runs, and the stall the reader sees at a switch of
// epochs: the longest gap between two reads around each switch, against the longest
// gap anywhere in the run without rekeys (the machine's own noise).
func BenchmarkTunnelRekey(b *testing.B) {
	dcfg, lcfg := tunnelNodes(b)
	w0, r0, _, _ := streamPair(b, dcfg, lcfg)
	dcfg.RekeyBytes, lcfg.RekeyBytes = 64<<20, 64<<20
	var took rekeyLog
	dcfg.Logger = slog.New(&took)
	w1, r1, d1, l1 := streamPair(b, dcfg, lcfg)

	var plain, rekeyed, noise time.Duration
	var stalls []time.Duration
	for b.Loop() {
		for range 2 {
			d, stall := transfer(b, w0, r0, throughputBytes/2)
			plain += d
			noise = max(noise, stall)
			d, s := transferWatch(b, w1, r1, l1, throughputBytes/2)
			rekeyed += d
			stalls = append(stalls, s...)
		}
	}
	b.ReportMetric(mbps(throughputBytes, plain/time.Duration(b.N)), "no-rekey-MB/s")
	b.ReportMetric(mbps(throughputBytes, rekeyed/time.Duration(b.N)), "rekey-64MiB-MB/s")
	b.ReportMetric(float64(plain)/float64(rekeyed), "rekeyed/plain")
	b.ReportMetric(float64(d1.Stats().Rekeys)/float64(b.N), "rekeys/op")
	if hs := took.durations(); len(hs) > 0 {
		b.ReportMetric(float64(median(hs).Microseconds()), "rekey-handshake-median-µs")
	}
	if len(stalls) > 0 {
		b.ReportMetric(float64(median(stalls).Microseconds()), "switch-stall-median-µs")
		b.ReportMetric(float64(slices.Max(stalls).Microseconds()), "switch-stall-max-µs")
	}
	b.ReportMetric(float64(noise.Microseconds()), "no-rekey-max-gap-µs")
}

// transferWatch is transfer that also returns, for each switch of epochs the reading
// tunnel t made, the longest gap between reads within 2 ms of it.
func transferWatch(b *testing.B, w io.Writer, r io.Reader, t *tunnel.Tunnel, n int64) (time.Duration, []time.Duration) {
	buf := make([]byte, 64<<10)
	rand.Read(buf)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		var err error
		for sent := int64(0); sent < n && err == nil; sent += int64(len(buf)) {
			_, err = w.Write(buf)
		}
		errc <- err
	}()
	rbuf := make([]byte, 64<<10)
	reads := make([]time.Time, 0, n/int64(len(rbuf))*2)
	var switches []time.Time
	epoch := t.Epoch()
	for got := int64(0); got < n; {
		m, err := r.Read(rbuf)
		if err != nil {
			b.Fatal(err)
		}
		got += int64(m)
		now := time.Now()
		reads = append(reads, now)
		if e := t.Epoch(); e != epoch {
			epoch = e
			switches = append(switches, now)
		}
	}
	took := time.Since(start)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	var stalls []time.Duration
	for _, sw := range switches {
		var worst time.Duration
		for i := 1; i < len(reads); i++ {
			if reads[i].After(sw.Add(-2*time.Millisecond)) && reads[i-1].Before(sw.Add(2*time.Millisecond)) {
				worst = max(worst, reads[i].Sub(reads[i-1]))
			}
		}
		stalls = append(stalls, worst)
	}
	return took, stalls
}

// rekeyLog collects the duration of each rekey from the tunnel's debug log.
type rekeyLog struct {
	mu   sync.Mutex
	took []time.Duration
}

func (h *rekeyLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *rekeyLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *rekeyLog) WithGroup(string) slog.Handler            { return h }
func (h *rekeyLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "tunnel rekeyed" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "took" {
			h.mu.Lock()
			h.took = append(h.took, a.Value.Duration())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *rekeyLog) durations() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.took)
}
