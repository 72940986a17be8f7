package node

import (
	"net"
	"net/netip"
	"os"
	"testing"
)

// TestSocketOwnerDepot traces sockets of this process, as the proxy traces a client's,
// to the "depot" whose root process is this one: TCP, a connected UDP socket, and
// unconnected UDP sockets on the IPv4 and the dual-stack wildcard address (a datagram's
// source then is the node's address and the port alone).
func TestSocketOwnerDepot(t *testing.T) {
	roots := map[int]string{os.Getpid(): "depot-1"}
	other := map[int]string{1 << 30: "depot-2"} // no such process: none holds the sockets

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcp, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	connected, err := net.Dial("udp", "127.0.0.1:9") // no datagram is sent
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	wild4, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild4.Close()
	dual, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer dual.Close()

	portOf := func(a net.Addr) uint16 { return uint16(a.(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()) }
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name, proto string
		from        netip.AddrPort
	}{
		{"tcp client", "tcp", netip.AddrPortFrom(loopback, portOf(tcp.LocalAddr()))},
		{"connected udp", "udp", netip.AddrPortFrom(loopback, portOf(connected.LocalAddr()))},
		{"udp on 0.0.0.0", "udp", netip.AddrPortFrom(loopback, portOf(wild4.LocalAddr()))},
		{"dual-stack udp", "udp", netip.AddrPortFrom(loopback, portOf(dual.LocalAddr()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := socketOwnerDepot(tc.proto, tc.from, roots); !ok || got != "depot-1" {
				t.Fatalf("socketOwnerDepot(%s, %s) = %q, %v; want depot-1", tc.proto, tc.from, got, ok)
			}
			if got, ok := socketOwnerDepot(tc.proto, tc.from, other); ok {
				t.Fatalf("socketOwnerDepot with another process as root = %q, want none", got)
			}
		})
	}
	// The wrong protocol finds nothing: a UDP sender is not looked for among TCP sockets.
	from := netip.AddrPortFrom(loopback, portOf(wild4.LocalAddr()))
	if got, ok := socketOwnerDepot("tcp", from, roots); ok {
		t.Fatalf("a UDP socket found as TCP: %q", got)
	}
}
