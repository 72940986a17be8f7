package qnettest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"testing"
)

// frame builds an Ethernet frame holding a TCP segment over IPv4 or IPv6 (by the
// addresses), with IP options or extension headers when extra is set.
func frame(src, dst netip.AddrPort, seq uint32, syn bool, payload []byte, extra bool) []byte {
	tcp := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4
	tcp[13] = 0x18 // PSH, ACK
	if syn {
		tcp[13] = 0x02
	}
	tcp = append(tcp, payload...)
	eth := make([]byte, 14)
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], etherIPv4)
		ihl := 20
		if extra {
			ihl = 24
		}
		ip := make([]byte, ihl)
		ip[0] = 4<<4 | byte(ihl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(tcp)))
		ip[9] = protoTCP
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(append(eth, ip...), tcp...)
	}
	binary.BigEndian.PutUint16(eth[12:], etherIPv6)
	ip := make([]byte, 40)
	ip[0] = 6 << 4
	body := tcp
	ip[6] = protoTCP
	if extra { // a hop-by-hop header of 8 bytes in front of TCP
		ip[6] = 0
		body = append([]byte{protoTCP, 0, 1, 4, 0, 0, 0, 0}, tcp...)
	}
	binary.BigEndian.PutUint16(ip[4:], uint16(len(body)))
	s, d := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(append(eth, ip...), body...)
}

var (
	a4 = netip.MustParseAddrPort("127.0.0.1:40000")
	b4 = netip.MustParseAddrPort("127.0.0.1:7701")
	a6 = netip.MustParseAddrPort("[::1]:40000")
	b6 = netip.MustParseAddrPort("[::1]:7701")
)

func TestParseFrame(t *testing.T) {
	for _, c := range []struct {
		name     string
		src, dst netip.AddrPort
		extra    bool
	}{
		{"ipv4", a4, b4, false},
		{"ipv4 with options", a4, b4, true},
		{"ipv6", a6, b6, false},
		{"ipv6 with a hop-by-hop header", a6, b6, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, ok := parseFrame(frame(c.src, c.dst, 1234, false, []byte("hello"), c.extra))
			if !ok || s.src != c.src || s.dst != c.dst || s.seq != 1234 || s.syn || string(s.payload) != "hello" {
				t.Fatalf("parsed %+v, %v", s, ok)
			}
			s, ok = parseFrame(frame(c.src, c.dst, 99, true, nil, c.extra))
			if !ok || !s.syn || s.seq != 99 || len(s.payload) != 0 {
				t.Fatalf("SYN parsed %+v, %v", s, ok)
			}
		})
	}
	// An IPv4 total length shorter than the frame (Ethernet padding) bounds the payload.
	padded := append(frame(a4, b4, 1, false, []byte("ab"), false), 0, 0, 0, 0)
	if s, ok := parseFrame(padded); !ok || string(s.payload) != "ab" {
		t.Fatalf("padded frame: %+v, %v", s, ok)
	}
	udp := frame(a4, b4, 1, false, []byte("x"), false)
	udp[14+9] = 17
	fragment := frame(a4, b4, 1, false, []byte("x"), false)
	fragment[14+7] = 8
	arp := frame(a4, b4, 1, false, nil, false)
	arp[12], arp[13] = 0x08, 0x06
	badOffset := frame(a4, b4, 1, false, []byte("x"), false)
	badOffset[14+20+12] = 15 << 4
	for name, f := range map[string][]byte{
		"udp": udp, "later fragment": fragment, "arp": arp, "tcp header longer than the packet": badOffset,
		"short": frame(a4, b4, 1, false, nil, false)[:30], "empty": nil,
	} {
		if s, ok := parseFrame(f); ok {
			t.Errorf("%s: parsed as %+v", name, s)
		}
	}
}

func TestFlowReassembly(t *testing.T) {
	var isn uint32 = 0xffff_fff0 // the sequence wraps around inside the flow
	ft := newFlowTable()
	seg := func(seq uint32, syn bool, p string) segment {
		return segment{src: a4, dst: b4, seq: seq, syn: syn, payload: []byte(p)}
	}
	ft.add(seg(isn, true, ""))
	ft.add(seg(isn+1, false, "0123456789"))
	ft.add(seg(isn+21, false, "klmno"))      // out of order
	ft.add(seg(isn+11, false, "abcdefghij")) // wraps past zero
	ft.add(seg(isn+11, false, "abcdefghij")) // retransmitted
	ft.add(seg(isn+16, false, "fghijklm"))   // overlapping
	ft.add(seg(isn, true, ""))               // a repeated SYN
	ft.add(segment{src: b4, dst: a4, seq: 7, payload: []byte("reply")})
	// The same addresses again, a new connection with a new ISN.
	ft.add(seg(500, true, ""))
	ft.add(seg(501, false, "second"))
	ft.add(seg(510, false, "gap"))
	got := ft.flows([]int{int(b4.Port())})
	if len(got) != 3 {
		t.Fatalf("%d flows, want 3: %+v", len(got), got)
	}
	want := []Flow{
		{Src: a4, Dst: b4, Payload: []byte("0123456789abcdefghijklmno"), Start: true},
		{Src: b4, Dst: a4, Payload: []byte("reply")},
		{Src: a4, Dst: b4, Payload: []byte("secondgap"), Start: true, Gaps: 1},
	}
	for i, w := range want {
		g := got[i]
		if g.Src != w.Src || g.Dst != w.Dst || !bytes.Equal(g.Payload, w.Payload) || g.Start != w.Start || g.Gaps != w.Gaps {
			t.Errorf("flow %d: %+v (%q), want %+v (%q)", i, g, g.Payload, w, w.Payload)
		}
	}
	if n := len(ft.flows([]int{1})); n != 0 {
		t.Errorf("%d flows on an unused port", n)
	}
}

// TestEncodings checks that a secret is found in the encodings a leak could use: raw,
// hex, and base64 at any position inside a larger value (as encoding/json writes a
// []byte field).
func TestEncodings(t *testing.T) {
	secret := []byte("canary-3f9a1c2e-do-not-leak")
	forms := Encodings(secret)
	for prefix := range 3 {
		value := append(bytes.Repeat([]byte{'p'}, prefix), secret...)
		value = append(value, "suffix"...)
		doc, _ := json.Marshal(struct{ B []byte }{value})
		urlForm := base64.URLEncoding.EncodeToString(append([]byte("\xff\xfe"[:prefix%3]), append(secret, 0xff)...))
		for name, wire := range map[string][]byte{
			"json bytes": doc, "hex": []byte(hex.EncodeToString(value)), "url base64": []byte(urlForm), "raw": value,
		} {
			if _, _, ok := FindIn([]Flow{{Payload: wire}}, forms); !ok {
				t.Errorf("prefix %d, %s: secret not found in %s", prefix, name, wire)
			}
		}
	}
	if _, form, ok := FindIn([]Flow{{Payload: []byte("nothing to see here, only ciphertext")}}, forms); ok {
		t.Errorf("found %q where the secret is not", form)
	}
}

// FuzzParseFrame: the parser of captured frames reads whatever the wire carries; a
// segment it returns lies within the frame and re-encodes to the same fields.
func FuzzParseFrame(f *testing.F) {
	f.Add(frame(a4, b4, 1, false, []byte("hello"), false))
	f.Add(frame(a4, b4, 1, true, nil, true))
	f.Add(frame(a6, b6, 1<<31, false, []byte("hello"), true))
	f.Add(frame(a6, b6, 7, false, nil, false))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0, 0, 0, 0x08, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		s, ok := parseFrame(in)
		if !ok {
			return
		}
		if len(s.payload) > len(in) {
			t.Fatalf("payload of %d bytes from a frame of %d", len(s.payload), len(in))
		}
		if !bytes.Contains(in, s.payload) {
			t.Fatal("payload not from the frame")
		}
		if s.src.Addr().Is4() != s.dst.Addr().Is4() {
			t.Fatalf("mixed address families: %v -> %v", s.src, s.dst)
		}
		if len(s.payload) > 60000 {
			return // too long for the test's frame builder
		}
		again, ok := parseFrame(frame(s.src, s.dst, s.seq, s.syn, s.payload, false))
		if !ok || again.src != s.src || again.dst != s.dst || again.seq != s.seq || again.syn != s.syn || !bytes.Equal(again.payload, s.payload) {
			t.Fatalf("re-encoded %+v parses as %+v, %v", s, again, ok)
		}
	})
}
