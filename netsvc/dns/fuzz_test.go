package dns

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandle feeds raw packets through what the server does with a datagram or a TCP
// message: unpack, answer, pack. Whatever the packet, answering must not panic, and the
// reply must pack, unpack again, carry the query's ID and fit the transport.
func FuzzHandle(f *testing.F) {
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	q := func(name string, qtype uint16) *dns.Msg { return new(dns.Msg).SetQuestion(name, qtype) }
	for _, m := range []*dns.Msg{
		q("web.testnet.qnet.", dns.TypeA),
		q("WEB.testnet.QNET.", dns.TypeAAAA),
		q("six.testnet.qnet.", dns.TypeANY),
		q("idle.testnet.qnet.", dns.TypeA),
		q("nosuch.testnet.qnet.", dns.TypeA),
		q("_http._tcp.web.testnet.qnet.", dns.TypeSRV),
		q("_dns._udp.dns.testnet.qnet.", dns.TypeSRV),
		q("_http._tcp.big.testnet.qnet.", dns.TypeSRV),
		q("big.testnet.qnet.", dns.TypeSRV),
		q("_tcp.web.testnet.qnet.", dns.TypeSRV),
		q("web-a.web.testnet.qnet.", dns.TypeA),
		q("six-a.six.testnet.qnet.", dns.TypeANY),
		q("testnet.qnet.", dns.TypeSOA),
		q("qnet.", dns.TypeNS),
		q(`we\.b.testnet.qnet.`, dns.TypeA),
		q("example.com.", dns.TypeA),
		q("web.testnet.qnet.", dns.TypeAXFR),
		q(".", dns.TypeNS),
	} {
		f.Add(pack(m), true)
	}
	edns := q("_http._tcp.big.testnet.qnet.", dns.TypeSRV)
	edns.SetEdns0(4096, true)
	f.Add(pack(edns), true)
	ednsV1 := q("web.testnet.qnet.", dns.TypeA)
	ednsV1.SetEdns0(1232, false)
	ednsV1.IsEdns0().SetVersion(1)
	f.Add(pack(ednsV1), false)
	chaos := q("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	f.Add(pack(chaos), true)
	two := q("web.testnet.qnet.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	f.Add(pack(two), true)
	none := q("web.testnet.qnet.", dns.TypeA)
	none.Question = nil
	f.Add(pack(none), false)
	notify := q("testnet.qnet.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	f.Add(pack(notify), true)
	response := q("web.testnet.qnet.", dns.TypeA)
	response.Response = true
	f.Add(pack(response), true)
	f.Add([]byte{0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, true)
	f.Add([]byte("garbage that is no DNS message at all"), true)

	s := &Server{zone: zone{catalog: fuzzCatalog(), ttl: 5}, log: slog.New(slog.DiscardHandler),
		forwards: make(chan struct{}, 1)}
	f.Fuzz(func(t *testing.T, packet []byte, udp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err != nil {
			return // the library drops or FORMERRs what does not unpack
		}
		reply := s.handle(t.Context(), req, udp)
		if req.Response {
			if reply != nil {
				t.Fatalf("answered a response: %v", reply)
			}
			return
		}
		if reply == nil {
			t.Fatalf("no reply to %v", req)
		}
		if reply.Id != req.Id || !reply.Response {
			t.Fatalf("reply id %d QR %v to query id %d", reply.Id, reply.Response, req.Id)
		}
		b, err := reply.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, reply)
		}
		limit := dns.MaxMsgSize
		if udp {
			limit = dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), ednsSize))
			}
		}
		if len(b) > limit {
			t.Fatalf("reply of %d bytes over a %d-byte limit (udp %v)", len(b), limit, udp)
		}
		if err := new(dns.Msg).Unpack(b); err != nil {
			t.Fatalf("packed reply does not unpack: %v", err)
		}
	})
}

// fuzzCatalog is testCatalog plus a service with many replicas, so that fuzzed queries
// reach truncation, and one whose depot ID is too long for a DNS label.
func fuzzCatalog() *fakeCatalog {
	c := testCatalog()
	c.addPort("big", "http", "tcp", "10.96.0.10", 80)
	for i := range 60 {
		c.addEndpoint("big", "http", fmt.Sprintf("big-%08x", i), i%3 == 0, i%7 != 0, fmt.Sprintf("10.1.0.%d:%d", i+1, 20000+i))
	}
	c.addPort("long", "http", "tcp", "10.96.0.11", 80)
	c.addEndpoint("long", "http", "long-"+fmt.Sprintf("%070d", 1), true, true, "127.0.0.1:20100")
	return c
}
