package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startServer runs a server for cat on a free loopback port until the test ends, and
// checks that Serve then returns nil.
func startServer(t *testing.T, cat *fakeCatalog, configure ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{Catalog: cat, Addr: "127.0.0.1:0", Logger: testLogger(t)}
	for _, f := range configure {
		f(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// testLogger logs to the test log with QNET_TEST_LOG=1, nowhere otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("QNET_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// exchange sends one query over network ("udp" or "tcp") and returns the reply.
func exchange(t *testing.T, addr, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], network, err)
	}
	return r
}

// query asks addr over UDP for name and qtype.
func query(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return exchange(t, addr, "udp", new(dns.Msg).SetQuestion(name, qtype))
}

// records renders a section as "NAME TYPE DATA" lines with the TTL and class left out,
// sorted, so tests compare them as sets.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append([]string{f[0], f[3]}, f[4:]...), " "))
	}
	sort.Strings(out)
	return out
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // polling interval, not a wait for an event
	}
}

const soa = "testnet.qnet. SOA testnet.qnet. hostmaster.testnet.qnet. 1 3600 600 86400 5"

// TestZone asks for every kind of name of the zone and checks the whole reply.
func TestZone(t *testing.T) {
	s := startServer(t, testCatalog())
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
		extra  []string
	}{
		{name: "web.testnet.qnet.", qtype: dns.TypeA, answer: []string{"web.testnet.qnet. A 10.96.0.5"}},
		// Names match whatever their case; the answer keeps the question's case, as
		// resolvers that randomise it (0x20) check.
		{name: "WeB.TestNet.QNET.", qtype: dns.TypeA, answer: []string{"WeB.TestNet.QNET. A 10.96.0.5"}},
		{name: "web.testnet.qnet.", qtype: dns.TypeAAAA, ns: []string{soa}},
		{name: "web.testnet.qnet.", qtype: dns.TypeTXT, ns: []string{soa}},
		{name: "six.testnet.qnet.", qtype: dns.TypeAAAA, answer: []string{"six.testnet.qnet. AAAA fd00::6"}},
		{name: "six.testnet.qnet.", qtype: dns.TypeA, ns: []string{soa}},
		// A service with no ready replica has no address: NODATA, not NXDOMAIN.
		{name: "idle.testnet.qnet.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "idle.testnet.qnet.", qtype: dns.TypeSRV, ns: []string{soa}},
		{name: "nosuch.testnet.qnet.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "_http._tcp.web.testnet.qnet.", qtype: dns.TypeSRV,
			answer: []string{
				"_http._tcp.web.testnet.qnet. SRV 0 1 20001 web-a.web.testnet.qnet.",
				"_http._tcp.web.testnet.qnet. SRV 1 1 20011 web-b.web.testnet.qnet.",
			},
			extra: []string{"web-a.web.testnet.qnet. A 127.0.0.1", "web-b.web.testnet.qnet. A 192.0.2.7"}},
		{name: "_metrics._tcp.web.testnet.qnet.", qtype: dns.TypeSRV,
			answer: []string{
				"_metrics._tcp.web.testnet.qnet. SRV 0 1 20002 web-a.web.testnet.qnet.",
				"_metrics._tcp.web.testnet.qnet. SRV 1 1 20012 web-b.web.testnet.qnet.",
			},
			extra: []string{"web-a.web.testnet.qnet. A 127.0.0.1", "web-b.web.testnet.qnet. A 192.0.2.7"}},
		{name: "web.testnet.qnet.", qtype: dns.TypeSRV,
			answer: []string{
				"web.testnet.qnet. SRV 0 1 20001 web-a.web.testnet.qnet.",
				"web.testnet.qnet. SRV 0 1 20002 web-a.web.testnet.qnet.",
				"web.testnet.qnet. SRV 1 1 20011 web-b.web.testnet.qnet.",
				"web.testnet.qnet. SRV 1 1 20012 web-b.web.testnet.qnet.",
			},
			extra: []string{"web-a.web.testnet.qnet. A 127.0.0.1", "web-b.web.testnet.qnet. A 192.0.2.7"}},
		{name: "_dns._udp.dns.testnet.qnet.", qtype: dns.TypeSRV,
			answer: []string{"_dns._udp.dns.testnet.qnet. SRV 0 1 20031 dns-a.dns.testnet.qnet."},
			extra:  []string{"dns-a.dns.testnet.qnet. A 127.0.0.1"}},
		{name: "_http._tcp.six.testnet.qnet.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.six.testnet.qnet. SRV 0 1 20051 six-a.six.testnet.qnet."},
			extra:  []string{"six-a.six.testnet.qnet. AAAA fd00::1:2"}},
		// A port asked with the wrong protocol, or an unknown port, does not exist.
		{name: "_dns._tcp.dns.testnet.qnet.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "_ftp._tcp.web.testnet.qnet.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "_http._tcp.web.testnet.qnet.", qtype: dns.TypeA, ns: []string{soa}},
		// _tcp.SERVICE is an empty non-terminal: it exists (NODATA) when SRV names exist below it.
		{name: "_tcp.web.testnet.qnet.", qtype: dns.TypeSRV, ns: []string{soa}},
		{name: "_udp.web.testnet.qnet.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "web-a.web.testnet.qnet.", qtype: dns.TypeA, answer: []string{"web-a.web.testnet.qnet. A 127.0.0.1"}},
		{name: "WEB-B.web.testnet.qnet.", qtype: dns.TypeA, answer: []string{"WEB-B.web.testnet.qnet. A 192.0.2.7"}},
		{name: "web-a.web.testnet.qnet.", qtype: dns.TypeAAAA, ns: []string{soa}},
		{name: "six-a.six.testnet.qnet.", qtype: dns.TypeAAAA, answer: []string{"six-a.six.testnet.qnet. AAAA fd00::1:2"}},
		// web-c is not ready: its name does not exist, in any service.
		{name: "web-c.web.testnet.qnet.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "web-a.dns.testnet.qnet.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "x.web-a.web.testnet.qnet.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "testnet.qnet.", qtype: dns.TypeSOA, answer: []string{soa}},
		{name: "testnet.qnet.", qtype: dns.TypeA, ns: []string{soa}},
		// Other networks and qnet. itself are nobody's here, and never forwarded.
		{name: "web.othernet.qnet.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "qnet.", qtype: dns.TypeSOA, rcode: dns.RcodeNameError},
		// Without upstreams, names outside qnet. are refused.
		{name: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "web.testnet.qnet.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			r := query(t, s.Addr(), tt.name, tt.qtype)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			check := func(section string, got []dns.RR, want []string) {
				if g := records(got); !slices.Equal(g, want) {
					t.Errorf("%s section:\n got %q\nwant %q", section, g, want)
				}
			}
			check("answer", r.Answer, tt.answer)
			check("authority", r.Ns, tt.ns)
			check("additional", r.Extra, tt.extra)
			inZone := dns.IsSubDomain("testnet.qnet.", tt.name) && tt.rcode != dns.RcodeRefused
			if r.Authoritative != inZone {
				t.Errorf("AA %v, want %v", r.Authoritative, inZone)
			}
			for _, rr := range append(r.Answer, r.Ns...) {
				if rr.Header().Ttl != 5 {
					t.Errorf("TTL %d, want the default 5: %v", rr.Header().Ttl, rr)
				}
			}
		})
	}
}

// TestSRVOrder checks that local replicas come first in SRV answers, as clients that do
// not sort by priority take the first.
func TestSRVOrder(t *testing.T) {
	c := newFakeCatalog("testnet")
	c.addPort("api", "http", "tcp", "10.96.0.9", 80)
	c.addEndpoint("api", "http", "api-a", false, true, "192.0.2.1:20001")
	c.addEndpoint("api", "http", "api-b", true, true, "127.0.0.1:20002")
	c.addEndpoint("api", "http", "api-c", false, true, "192.0.2.3:20003")
	s := startServer(t, c)
	r := query(t, s.Addr(), "_http._tcp.api.testnet.qnet.", dns.TypeSRV)
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.(*dns.SRV).Target)
	}
	want := []string{"api-b.api.testnet.qnet.", "api-a.api.testnet.qnet.", "api-c.api.testnet.qnet."}
	if !slices.Equal(got, want) {
		t.Errorf("SRV targets %v, want %v", got, want)
	}
}

// TestGoResolver resolves through Go's own resolver, as a Go depot would.
func TestGoResolver(t *testing.T) {
	s := startServer(t, testCatalog())
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
	ctx := t.Context()

	addrs, err := r.LookupHost(ctx, "web.testnet.qnet.")
	if err != nil || !slices.Equal(addrs, []string{"10.96.0.5"}) {
		t.Errorf("LookupHost web = %v, %v; want [10.96.0.5]", addrs, err)
	}
	addrs, err = r.LookupHost(ctx, "six.testnet.qnet.")
	if err != nil || !slices.Equal(addrs, []string{"fd00::6"}) {
		t.Errorf("LookupHost six = %v, %v; want [fd00::6]", addrs, err)
	}
	addrs, err = r.LookupHost(ctx, "web-b.web.testnet.qnet.")
	if err != nil || !slices.Equal(addrs, []string{"192.0.2.7"}) {
		t.Errorf("LookupHost web-b = %v, %v; want [192.0.2.7]", addrs, err)
	}

	cname, srvs, err := r.LookupSRV(ctx, "http", "tcp", "web.testnet.qnet.")
	if err != nil {
		t.Fatalf("LookupSRV: %v", err)
	}
	if cname != "_http._tcp.web.testnet.qnet." {
		t.Errorf("LookupSRV name %q", cname)
	}
	var got []string
	for _, srv := range srvs {
		got = append(got, fmt.Sprintf("%d %s:%d", srv.Priority, srv.Target, srv.Port))
	}
	want := []string{"0 web-a.web.testnet.qnet.:20001", "1 web-b.web.testnet.qnet.:20011"}
	if !slices.Equal(got, want) {
		t.Errorf("LookupSRV = %v, want %v", got, want)
	}

	for _, name := range []string{"nosuch.testnet.qnet.", "idle.testnet.qnet.", "web-c.web.testnet.qnet."} {
		_, err := r.LookupHost(ctx, name)
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("LookupHost %s: %v, want not found", name, err)
		}
	}
}

// TestDig asks the real dig, over UDP and TCP.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig is not installed (Debian package dnsutils): skipping the check against a real resolver tool")
	}
	s := startServer(t, testCatalog())
	host, port, _ := net.SplitHostPort(s.Addr())
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"@" + host, "-p", port, "+time=5", "+tries=1"}, args...)
		out, err := exec.CommandContext(t.Context(), dig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	short := func(args ...string) []string {
		t.Helper()
		return strings.Split(strings.TrimSpace(run(append([]string{"+short"}, args...)...)), "\n")
	}
	if got := short("web.testnet.qnet", "A"); !slices.Equal(got, []string{"10.96.0.5"}) {
		t.Errorf("dig A web = %q", got)
	}
	if got := short("+tcp", "web.testnet.qnet", "A"); !slices.Equal(got, []string{"10.96.0.5"}) {
		t.Errorf("dig +tcp A web = %q", got)
	}
	wantSRV := []string{"0 1 20001 web-a.web.testnet.qnet.", "1 1 20011 web-b.web.testnet.qnet."}
	if got := short("_http._tcp.web.testnet.qnet", "SRV"); !slices.Equal(got, wantSRV) {
		t.Errorf("dig SRV = %q, want %q", got, wantSRV)
	}
	if got := short("+tcp", "_http._tcp.web.testnet.qnet", "SRV"); !slices.Equal(got, wantSRV) {
		t.Errorf("dig +tcp SRV = %q, want %q", got, wantSRV)
	}
	out := run("_http._tcp.web.testnet.qnet", "SRV")
	if !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, " aa") ||
		!regexp.MustCompile(`web-a\.web\.testnet\.qnet\.\s+5\s+IN\s+A\s+127\.0\.0\.1`).MatchString(out) {
		t.Errorf("dig SRV: want NOERROR, aa and web-a's A record in the additional section:\n%s", out)
	}
	for _, args := range [][]string{{"nosuch.testnet.qnet", "A"}, {"+tcp", "nosuch.testnet.qnet", "A"}} {
		out := run(args...)
		if !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, "testnet.qnet.\t\t5\tIN\tSOA") {
			t.Errorf("dig %v: want NXDOMAIN with the SOA:\n%s", args, out)
		}
	}
	if out := run("idle.testnet.qnet", "A"); !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, "ANSWER: 0") {
		t.Errorf("dig idle: want NODATA:\n%s", out)
	}
}

// TestReadinessChange flips replicas unready and back: the answers follow at once.
func TestReadinessChange(t *testing.T) {
	c := testCatalog()
	s := startServer(t, c)
	srvTargets := func() []string {
		var out []string
		for _, rr := range query(t, s.Addr(), "_http._tcp.web.testnet.qnet.", dns.TypeSRV).Answer {
			out = append(out, rr.(*dns.SRV).Target)
		}
		return out
	}
	if got := srvTargets(); len(got) != 2 {
		t.Fatalf("SRV targets before = %v, want web-a and web-b", got)
	}

	c.setReady("web-a", false)
	if got := srvTargets(); !slices.Equal(got, []string{"web-b.web.testnet.qnet."}) {
		t.Errorf("SRV targets with web-a unready = %v, want only web-b", got)
	}
	if r := query(t, s.Addr(), "web-a.web.testnet.qnet.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("A web-a unready: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, s.Addr(), "web.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("A web with web-b ready: %v, want the VIP", r.Answer)
	}

	c.setReady("web-b", false)
	if r := query(t, s.Addr(), "web.testnet.qnet.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("A web with no replica ready: rcode %s, answer %v; want NODATA", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if got := srvTargets(); len(got) != 0 {
		t.Errorf("SRV targets with none ready = %v", got)
	}

	c.setReady("web-c", true)
	if got := srvTargets(); !slices.Equal(got, []string{"web-c.web.testnet.qnet."}) {
		t.Errorf("SRV targets with web-c ready = %v, want only web-c", got)
	}
	if r := query(t, s.Addr(), "web.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("A web with web-c ready: %v, want the VIP", r.Answer)
	}
}

// TestTruncation checks that a reply too large for UDP is cut with TC set, and that
// TCP (and Go's resolver, which retries over TCP) gets all of it.
func TestTruncation(t *testing.T) {
	c := newFakeCatalog("testnet")
	c.addPort("big", "http", "tcp", "10.96.0.10", 80)
	const n = 100
	for i := range n {
		c.addEndpoint("big", "http", fmt.Sprintf("big-%08x", i), i%2 == 0, true, fmt.Sprintf("10.1.%d.%d:%d", i/250, i%250+1, 20000+i))
	}
	s := startServer(t, c)
	name := "_http._tcp.big.testnet.qnet."

	r, packed := exchangeRaw(t, s.Addr(), new(dns.Msg).SetQuestion(name, dns.TypeSRV))
	if !r.Truncated || packed > dns.MinMsgSize || len(r.Answer) == 0 || len(r.Answer) >= n {
		t.Errorf("UDP without EDNS: TC %v, %d bytes, %d answers; want TC, at most 512 bytes, some answers", r.Truncated, packed, len(r.Answer))
	}
	withEDNS := new(dns.Msg).SetQuestion(name, dns.TypeSRV)
	withEDNS.SetEdns0(4096, false)
	r2, packed := exchangeRaw(t, s.Addr(), withEDNS)
	if !r2.Truncated || packed > ednsSize || len(r2.Answer) <= len(r.Answer) || r2.IsEdns0() == nil {
		t.Errorf("UDP with EDNS 4096: TC %v, %d bytes, %d answers, OPT %v; want TC, at most %d bytes, more answers than without EDNS, an OPT", r2.Truncated, packed, len(r2.Answer), r2.IsEdns0() != nil, ednsSize)
	}

	r = exchange(t, s.Addr(), "tcp", new(dns.Msg).SetQuestion(name, dns.TypeSRV))
	if r.Truncated || len(r.Answer) != n || len(r.Extra) != n {
		t.Errorf("TCP: TC %v, %d answers, %d additional; want all %d", r.Truncated, len(r.Answer), len(r.Extra), n)
	}

	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
	_, srvs, err := res.LookupSRV(t.Context(), "http", "tcp", "big.testnet.qnet.")
	if err != nil || len(srvs) != n {
		t.Errorf("Go resolver LookupSRV: %d records, %v; want %d", len(srvs), err, n)
	}
}

// exchangeRaw sends m over UDP and returns the reply and its size on the wire.
func exchangeRaw(t *testing.T, addr string, m *dns.Msg) (*dns.Msg, int) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	r, n := roundTrip(t, conn, b)
	if r == nil {
		t.Fatalf("no reply to %v", m.Question)
	}
	return r, n
}

// roundTrip writes b to conn and reads one reply, unpacked, and its size; nil if the
// reply does not unpack.
func roundTrip(t *testing.T, conn net.Conn, b []byte) (*dns.Msg, int) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	return r, n
}

// TestMalformed sends what no resolver should and checks the replies, and that the
// server keeps answering good queries over UDP and TCP after each.
func TestMalformed(t *testing.T) {
	s := startServer(t, testCatalog())
	good := func(t *testing.T) {
		t.Helper()
		for _, network := range []string{"udp", "tcp"} {
			r := exchange(t, s.Addr(), network, new(dns.Msg).SetQuestion("web.testnet.qnet.", dns.TypeA))
			if len(r.Answer) != 1 {
				t.Fatalf("good query over %s after a bad one: %v", network, r)
			}
		}
	}
	header := func(id uint16, bits uint16, qd, an, ns, ar uint16) []byte {
		return []byte{byte(id >> 8), byte(id), byte(bits >> 8), byte(bits), byte(qd >> 8), byte(qd),
			byte(an >> 8), byte(an), byte(ns >> 8), byte(ns), byte(ar >> 8), byte(ar)}
	}
	question := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b[12:]
	}
	q := question(new(dns.Msg).SetQuestion("web.testnet.qnet.", dns.TypeA))
	opcode := func(op int) uint16 { return uint16(op) << 11 }

	// Packets that get an error reply, with the rcode it must have.
	replied := []struct {
		name   string
		packet []byte
		rcode  int
	}{
		{"no question", header(1, 0, 0, 0, 0, 0), dns.RcodeFormatError},
		{"two questions", append(header(2, 0, 2, 0, 0, 0), append(q, q...)...), dns.RcodeFormatError},
		{"question count beyond the packet", append(header(3, 0, 5, 0, 0, 0), q...), dns.RcodeFormatError},
		{"question cut short", append(header(4, 0, 1, 0, 0, 0), q[:5]...), dns.RcodeFormatError},
		{"bad label pointer", append(header(5, 0, 1, 0, 0, 0), 0xc0, 0xff, 0, 1, 0, 1), dns.RcodeFormatError},
		{"many answers in a query", append(header(6, 0, 1, 40, 0, 0), q...), dns.RcodeFormatError},
		{"opcode status", append(header(7, opcode(dns.OpcodeStatus), 1, 0, 0, 0), q...), dns.RcodeNotImplemented},
		{"opcode notify", append(header(8, opcode(dns.OpcodeNotify), 1, 0, 0, 0), q...), dns.RcodeNotImplemented},
		{"opcode update", append(header(9, opcode(dns.OpcodeUpdate), 1, 0, 0, 0), q...), dns.RcodeNotImplemented},
		{"opcode 15", append(header(10, opcode(15), 1, 0, 0, 0), q...), dns.RcodeNotImplemented},
	}
	for _, tt := range replied {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("udp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			r, _ := roundTrip(t, conn, tt.packet)
			if r.Rcode != tt.rcode || !r.Response || r.Id != uint16(tt.packet[0])<<8|uint16(tt.packet[1]) {
				t.Errorf("reply rcode %s, QR %v, id %d; want %s to id %d", dns.RcodeToString[r.Rcode], r.Response, r.Id,
					dns.RcodeToString[tt.rcode], uint16(tt.packet[0])<<8|uint16(tt.packet[1]))
			}
			good(t)
		})
	}

	// Packets that may go unanswered (answering garbage feeds amplification): the
	// server must only keep answering.
	garbage := make([]byte, 3000)
	for i := range garbage {
		garbage[i] = byte(i*7 + i/3)
	}
	dropped := map[string][]byte{
		"empty":           {},
		"short header":    {0x12, 0x34, 0x01},
		"response":        append(header(11, 1<<15, 1, 0, 0, 0), q...),
		"garbage":         garbage,
		"huge":            append(append(header(12, 0, 1, 0, 0, 0), q...), make([]byte, 60000)...),
		"all ones header": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, packet := range dropped {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("udp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(packet); err != nil {
				t.Fatal(err)
			}
			good(t)
		})
	}

	// Over TCP: garbage, a length with nothing behind it, and a connection left
	// half-sent must not hold up anybody else.
	t.Run("tcp", func(t *testing.T) {
		for _, packet := range [][]byte{
			append([]byte{0, byte(len(garbage[:200]))}, garbage[:200]...),
			{0xff, 0xff, 1, 2, 3},
			{0, 2, 0, 0},
		} {
			conn, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close() // left open while the good queries run
			if _, err := conn.Write(packet); err != nil {
				t.Fatal(err)
			}
		}
		good(t)
	})
}

// TestForward checks that names outside qnet. go to the upstreams in turn, that
// names under qnet. never do, and that a query waiting on an upstream holds up no
// other.
func TestForward(t *testing.T) {
	var asked atomic.Int32
	upstream := startUpstream(t, func(w dns.ResponseWriter, req *dns.Msg) {
		asked.Add(1)
		r := new(dns.Msg).SetReply(req)
		r.RecursionAvailable = true
		r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA,
			Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 99)})
		w.WriteMsg(r)
	})
	// The first upstream is a closed port: the server must go on to the next one.
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()
	s := startServer(t, testCatalog(), func(c *Config) { c.Upstream = []string{closedAddr, upstream} })

	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, s.Addr(), network, new(dns.Msg).SetQuestion("example.com.", dns.TypeA))
		if got := records(r.Answer); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, []string{"example.com. A 192.0.2.99"}) || !r.RecursionAvailable {
			t.Errorf("forwarded over %s: rcode %s, answer %q, RA %v", network, dns.RcodeToString[r.Rcode], got, r.RecursionAvailable)
		}
	}
	before := asked.Load()
	if r := query(t, s.Addr(), "web.othernet.qnet.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("other network: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, s.Addr(), "web.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("own zone with upstreams: %v", r)
	}
	if n := asked.Load() - before; n != 0 {
		t.Errorf("upstream asked %d times for qnet. names, want never", n)
	}

	// An upstream that never answers: the query waits, others do not.
	black, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer black.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s2, err := New(Config{Catalog: testCatalog(), Addr: "127.0.0.1:0", Logger: testLogger(t), Upstream: []string{black.LocalAddr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s2.Serve(ctx) }()
	slow := make(chan *dns.Msg, 1)
	go func() {
		c := &dns.Client{Timeout: 10 * time.Second}
		r, _, _ := c.Exchange(new(dns.Msg).SetQuestion("stuck.example.", dns.TypeA), s2.Addr())
		slow <- r
	}()
	// Wait until the upstream got the query, so it is surely in flight.
	black.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := black.ReadFrom(make([]byte, 512)); err != nil {
		t.Fatalf("the forwarded query never reached the upstream: %v", err)
	}
	if r := query(t, s2.Addr(), "web.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("own zone while a forward hangs: %v", r)
	}
	// Stopping the server cuts the forward short: the client gets SERVFAIL.
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if r := <-slow; r == nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("hung forward after stop: %v, want SERVFAIL", r)
	}
}

// startUpstream runs a plain miekg/dns server on UDP and TCP with handler until the
// test ends and returns its address.
func startUpstream(t *testing.T, handler dns.HandlerFunc) string {
	t.Helper()
	// The same port for UDP and TCP: a free UDP port may be taken for TCP by another
	// test process, so try a few.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatal(err)
		}
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { srv.Shutdown(); <-done })
	}
	return pc.LocalAddr().String()
}

// TestConfig checks that New refuses bad configs with errors that name the field.
func TestConfig(t *testing.T) {
	cat := testCatalog()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no catalog", Config{Addr: "127.0.0.1:0"}, "Config.Catalog"},
		{"bad network", Config{Catalog: newFakeCatalog("bad.name"), Addr: "127.0.0.1:0"}, `network name "bad.name"`},
		{"empty network", Config{Catalog: newFakeCatalog(""), Addr: "127.0.0.1:0"}, `network name ""`},
		{"no addr", Config{Catalog: cat}, "Config.Addr"},
		{"addr without port", Config{Catalog: cat, Addr: "127.0.0.1"}, "Config.Addr"},
		{"named port", Config{Catalog: cat, Addr: "127.0.0.1:domain"}, "Config.Addr"},
		{"port too big", Config{Catalog: cat, Addr: "127.0.0.1:70000"}, "Config.Addr"},
		{"negative TTL", Config{Catalog: cat, Addr: "127.0.0.1:0", TTL: -time.Second}, "Config.TTL"},
		{"sub-second TTL", Config{Catalog: cat, Addr: "127.0.0.1:0", TTL: 1500 * time.Millisecond}, "Config.TTL"},
		{"upstream without port", Config{Catalog: cat, Addr: "127.0.0.1:0", Upstream: []string{"1.1.1.1:53", "9.9.9.9"}}, "Config.Upstream[1]"},
		{"upstream port 0", Config{Catalog: cat, Addr: "127.0.0.1:0", Upstream: []string{"1.1.1.1:0"}}, "Config.Upstream[0]"},
		{"addr not local", Config{Catalog: cat, Addr: "192.0.2.1:0"}, "listen on udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %q", err, tt.want)
			}
		})
	}

	// A custom TTL is used in every record.
	s := startServer(t, cat, func(c *Config) { c.TTL = 30 * time.Second })
	r := query(t, s.Addr(), "_http._tcp.web.testnet.qnet.", dns.TypeSRV)
	for _, rr := range append(r.Answer, r.Extra...) {
		if rr.Header().Ttl != 30 {
			t.Errorf("TTL %d, want 30: %v", rr.Header().Ttl, rr)
		}
	}
}

// TestLifecycle checks the sockets: UDP and TCP on one real port, released by Close or
// when Serve returns, and no goroutine left behind.
func TestLifecycle(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(Config{Catalog: testCatalog(), Addr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		t.Fatalf("Addr %s reports port 0", addr)
	}
	// A query sent before Serve waits in the socket and is answered once it runs.
	early := make(chan *dns.Msg, 1)
	go func() {
		r, _, _ := (&dns.Client{Timeout: 10 * time.Second}).Exchange(new(dns.Msg).SetQuestion("web.testnet.qnet.", dns.TypeA), addr)
		early <- r
	}()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	if r := <-early; r == nil || len(r.Answer) != 1 {
		t.Errorf("query sent before Serve: %v", r)
	}
	if r := exchange(t, addr, "tcp", new(dns.Msg).SetQuestion("web.testnet.qnet.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("TCP on the same port: %v", r)
	}
	// A TCP client that stays connected must not keep Serve from returning.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := s.Serve(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Serve: %v, want an error", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// The port is free again, on both protocols.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Errorf("UDP port not released: %v", err)
	} else {
		pc.Close()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("TCP port not released: %v", err)
	} else {
		ln.Close()
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Serve: %v", err)
	}

	// Close releases a server that never served.
	s2, err := New(Config{Catalog: testCatalog(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr2 := s2.Addr()
	if err := s2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if ln, err := net.Listen("tcp", addr2); err != nil {
		t.Errorf("TCP port not released by Close: %v", err)
	} else {
		ln.Close()
	}

	idle.Close()
	waitFor(t, "the server's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestLongDepotID checks that a replica whose depot ID cannot be a DNS label (longer
// than 63 bytes) is left out of SRV answers instead of breaking them, while the service
// keeps its VIP.
func TestLongDepotID(t *testing.T) {
	c := newFakeCatalog("testnet")
	c.addPort("api", "http", "tcp", "10.96.0.9", 80)
	long := "api-" + strings.Repeat("x", 60) // 64 bytes
	c.addEndpoint("api", "http", long, true, true, "127.0.0.1:20001")
	c.addEndpoint("api", "http", "api-b", true, true, "127.0.0.1:20002")
	s := startServer(t, c)
	r := query(t, s.Addr(), "_http._tcp.api.testnet.qnet.", dns.TypeSRV)
	if got := records(r.Answer); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, []string{"_http._tcp.api.testnet.qnet. SRV 0 1 20002 api-b.api.testnet.qnet."}) {
		t.Errorf("SRV: rcode %s, answer %q; want only api-b", dns.RcodeToString[r.Rcode], got)
	}
	c.setReady("api-b", false)
	if r := query(t, s.Addr(), "api.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("A api with only the long-named replica ready: %v, want the VIP", r.Answer)
	}
}

// TestServeOn serves the zone on more sockets than the server's own (as the node does
// in each container's network namespace): both protocols answer there, either socket
// may be left out, and the sockets are released when ctx ends.
func TestServeOn(t *testing.T) {
	before := runtime.NumGoroutine()
	s := startServer(t, testCatalog())
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		t.Skipf("TCP port of %s taken: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.ServeOn(ctx, pc, ln) }()
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, addr, network, new(dns.Msg).SetQuestion("web.testnet.qnet.", dns.TypeA))
		if got := records(r.Answer); !slices.Equal(got, []string{"web.testnet.qnet. A 10.96.0.5"}) {
			t.Errorf("%s on the extra socket: %v", network, got)
		}
	}
	// The server's own address answers as before.
	if r := query(t, s.Addr(), "web.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("the server's own socket: %v", r)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("ServeOn: %v", err)
	}
	if pc2, err := net.ListenPacket("udp", addr); err != nil {
		t.Errorf("UDP socket not released: %v", err)
	} else {
		pc2.Close()
	}

	// UDP alone.
	pc, err = net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { served <- s.ServeOn(ctx, pc, nil) }()
	if r := query(t, pc.LocalAddr().String(), "web.testnet.qnet.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("UDP alone: %v", r)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("ServeOn, UDP alone: %v", err)
	}
	if err := s.ServeOn(context.Background(), nil, nil); err == nil {
		t.Error("ServeOn with no socket: no error")
	}
	waitFor(t, "ServeOn's goroutines to end", func() bool { return runtime.NumGoroutine() <= before+8 })
}
