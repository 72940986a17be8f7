package qnettest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
)

// Flow is one direction of a TCP connection as it crossed the wire during a capture.
type Flow struct {
	Src, Dst netip.AddrPort
	// Payload is the flow's bytes in sequence order, each byte once: retransmitted and
	// overlapping segments are merged, so a message split across segments (a TLS
	// record, a JSON document) reads as it was sent.
	Payload []byte
	// Start reports whether the capture saw the connection's SYN, so that Payload begins
	// with the flow's first byte.
	Start bool
	// Gaps counts the holes in the sequence: bytes the capture did not see.
	Gaps int
}

// CaptureStats sums up a capture.
type CaptureStats struct {
	// Packets and Bytes count the TCP segments read and their payload bytes.
	Packets, Bytes int64
	// Skipped counts frames that were not TCP over IPv4 or IPv6 (or were cut short).
	Skipped int64
	// Dropped is how many frames the kernel dropped because the capture socket's
	// buffer was full: a capture that dropped some may miss bytes (Flow.Gaps tells).
	Dropped int64
}

// segment is one TCP segment read from a captured frame.
type segment struct {
	src, dst netip.AddrPort
	seq      uint32
	syn      bool
	payload  []byte
}

// EtherType values the parser reads.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100
	protoTCP  = 6
)

// parseFrame reads the TCP segment in an Ethernet frame (Linux gives loopback frames a
// 14-byte Ethernet header of zero addresses). It reports false for anything else: other
// protocols, IP fragments after the first, and frames cut short. The payload aliases
// frame.
func parseFrame(frame []byte) (segment, bool) {
	if len(frame) < 14 {
		return segment{}, false
	}
	etherType, rest := binary.BigEndian.Uint16(frame[12:14]), frame[14:]
	for etherType == etherVLAN { // 802.1Q tags: type-specific 2 bytes, then the real type
		if len(rest) < 4 {
			return segment{}, false
		}
		etherType, rest = binary.BigEndian.Uint16(rest[2:4]), rest[4:]
	}
	var (
		src, dst netip.Addr
		tcp      []byte
	)
	switch etherType {
	case etherIPv4:
		if len(rest) < 20 || rest[0]>>4 != 4 {
			return segment{}, false
		}
		ihl := int(rest[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(rest[2:4]))
		// A large segment the kernel offloads may carry a total length of 0 on the tap.
		if total == 0 || total > len(rest) {
			total = len(rest)
		}
		if ihl < 20 || ihl > total || rest[9] != protoTCP {
			return segment{}, false
		}
		if binary.BigEndian.Uint16(rest[6:8])&0x1fff != 0 { // a later fragment: no TCP header
			return segment{}, false
		}
		src = netip.AddrFrom4([4]byte(rest[12:16]))
		dst = netip.AddrFrom4([4]byte(rest[16:20]))
		tcp = rest[ihl:total]
	case etherIPv6:
		if len(rest) < 40 || rest[0]>>4 != 6 {
			return segment{}, false
		}
		plen := int(binary.BigEndian.Uint16(rest[4:6]))
		body := rest[40:]
		// 0 is a jumbogram (BIG TCP): the length is in a hop-by-hop option; take what is there.
		if plen != 0 && plen < len(body) {
			body = body[:plen]
		}
		src = netip.AddrFrom16([16]byte(rest[8:24]))
		dst = netip.AddrFrom16([16]byte(rest[24:40]))
		next := rest[6]
		for next != protoTCP {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(body) < 8 {
					return segment{}, false
				}
				n := 8 + int(body[1])*8
				if n > len(body) {
					return segment{}, false
				}
				next, body = body[0], body[n:]
			case 44: // fragment: only the first carries the TCP header
				if len(body) < 8 || binary.BigEndian.Uint16(body[2:4])&0xfff8 != 0 {
					return segment{}, false
				}
				next, body = body[0], body[8:]
			default:
				return segment{}, false
			}
		}
		tcp = body
	default:
		return segment{}, false
	}
	if len(tcp) < 20 {
		return segment{}, false
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return segment{}, false
	}
	return segment{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:2])),
		dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:4])),
		seq:     binary.BigEndian.Uint32(tcp[4:8]),
		syn:     tcp[13]&0x02 != 0,
		payload: tcp[off:],
	}, true
}

type flowKey struct{ src, dst netip.AddrPort }

// flowBuf collects the segments of one flow; offsets are relative to base, the
// sequence number of the flow's first byte (or of the first byte the capture saw).
type flowBuf struct {
	key     flowKey
	base    uint32
	hasBase bool
	start   bool
	segs    []flowSeg
}

type flowSeg struct {
	off  int64
	data []byte
}

// flowTable reassembles captured segments into flows. It is not safe for concurrent use.
type flowTable struct {
	open map[flowKey]*flowBuf
	all  []*flowBuf
}

func newFlowTable() *flowTable { return &flowTable{open: map[flowKey]*flowBuf{}} }

// add records a segment; its payload is copied.
func (ft *flowTable) add(s segment) {
	k := flowKey{s.src, s.dst}
	f := ft.open[k]
	if s.syn {
		// A SYN starts the flow, unless it repeats the one that did. A new SYN on the
		// same addresses is a new connection (the 4-tuple was reused).
		if f == nil || !f.start || f.base != s.seq+1 {
			f = &flowBuf{key: k, base: s.seq + 1, hasBase: true, start: true}
			ft.open[k] = f
			ft.all = append(ft.all, f)
		}
		s.seq++ // a SYN takes a sequence number; data it carries (TFO) follows it
	}
	if len(s.payload) == 0 {
		return
	}
	if f == nil {
		f = &flowBuf{key: k}
		ft.open[k] = f
		ft.all = append(ft.all, f)
	}
	if !f.hasBase {
		f.base, f.hasBase = s.seq, true
	}
	// Offsets within ±2 GiB of the base; sequence numbers wrap around.
	off := int64(int32(s.seq - f.base))
	f.segs = append(f.segs, flowSeg{off: off, data: bytes.Clone(s.payload)})
}

// flow assembles the bytes of a flow in sequence order.
func (f *flowBuf) flow() Flow {
	out := Flow{Src: f.key.src, Dst: f.key.dst, Start: f.start}
	segs := slices.Clone(f.segs)
	slices.SortStableFunc(segs, func(a, b flowSeg) int { return cmp.Compare(a.off, b.off) })
	var next int64
	if len(segs) > 0 {
		next = segs[0].off
		if f.start && next > 0 {
			out.Gaps++ // the first bytes after the SYN were missed
		}
	}
	for _, s := range segs {
		end := s.off + int64(len(s.data))
		if end <= next {
			continue // a retransmission of what is there already
		}
		if s.off > next {
			out.Gaps++
			next = s.off
		}
		out.Payload = append(out.Payload, s.data[next-s.off:]...)
		next = end
	}
	return out
}

// flows returns the flows with either end on one of the ports (every flow when none is
// given), in the order the capture first saw them.
func (ft *flowTable) flows(ports []int) []Flow {
	var out []Flow
	for _, f := range ft.all {
		if len(ports) == 0 || slices.Contains(ports, int(f.key.src.Port())) || slices.Contains(ports, int(f.key.dst.Port())) {
			out = append(out, f.flow())
		}
	}
	return out
}

// Encodings returns the forms in which secret could cross a wire unencrypted inside
// another encoding: itself, hex (both cases) and base64 (standard and URL alphabets, at
// each of the three alignments a substring of a longer encoded value can have). Search
// a capture for all of them.
func Encodings(secret []byte) [][]byte {
	forms := [][]byte{secret, []byte(hex.EncodeToString(secret)), bytes.ToUpper([]byte(hex.EncodeToString(secret)))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for align := range 3 {
			// Encode the secret behind align bytes of padding, then keep only the
			// characters that depend on the secret's bytes alone: 2 or 3 leading ones
			// mix in padding, and a final partial group mixes in what follows.
			in := append(make([]byte, align), secret...)
			s := enc.EncodeToString(in)
			skip := [3]int{0, 2, 3}[align]
			end := len(in) / 3 * 4
			if end-skip >= 8 {
				forms = append(forms, []byte(s[skip:end]))
			}
		}
	}
	return forms
}

// FindIn reports the first flow whose payload holds any of the forms, and the form.
func FindIn(flows []Flow, forms [][]byte) (Flow, []byte, bool) {
	for _, f := range flows {
		for _, form := range forms {
			if bytes.Contains(f.Payload, form) {
				return f, form, true
			}
		}
	}
	return Flow{}, nil, false
}
