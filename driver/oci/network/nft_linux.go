//go:build linux

package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The nftables requests a Redirect needs: one table, one NAT chain on the output hook
// and a rule per redirect, sent as one transaction by github.com/google/nftables over
// a netlink socket made in the container's namespace. No nft(8) on the node, no
// process start per container, and nothing on the node's own tables: the rules live in
// the container's namespace and go with it.

// RedirectTable is the nftables table (family ip) of a container's namespace that
// holds its redirects.
const RedirectTable = "qnet"

// redirectChain is the table's one chain: NAT on the output hook, so it sees the
// container's own connections (to its loopback) and nothing from outside.
const redirectChain = "services"

// nftAckTimeout bounds the wait for the kernel's answer to a transaction.
const nftAckTimeout = 5 * time.Second

// InstallRedirect puts r's rules in the network namespace mounted at netns, in place of
// any it had (a restarted node opens new sockets and redirects to them), in one
// transaction: the namespace never holds half of them. A namespace without them (a
// container being started) takes well under a millisecond; replacing them takes a
// grace period of the kernel's (some 10 ms), so it is done only when they are there.
func InstallRedirect(netns string, r Redirect) error {
	if err := r.Validate(); err != nil {
		return err
	}
	ns, err := os.Open(netns)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer ns.Close()
	// Each Flush dials its own socket in the namespace (the Conn is not lasting), and
	// the deadline is set as it is dialled: it bounds that one transaction.
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())), nftables.WithSockOptions(func(c *netlink.Conn) error {
		return c.SetReadDeadline(time.Now().Add(nftAckTimeout))
	}))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	queueRedirect(c, r, false)
	err = c.Flush()
	if errors.Is(err, unix.EEXIST) {
		queueRedirect(c, r, true)
		err = c.Flush()
	}
	if err != nil {
		return fmt.Errorf("nftables: install the service redirects in %s: %w", netns, err)
	}
	return nil
}

// queueRedirect queues r on c as one transaction, sent by c.Flush. Unless replace is
// set, the transaction fails with EEXIST when the table exists.
func queueRedirect(c *nftables.Conn, r Redirect, replace bool) {
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: RedirectTable}
	if replace {
		// Add then delete: the delete cannot fail for want of the table, and takes
		// what a previous install left.
		c.AddTable(table)
		c.DelTable(table)
		c.AddTable(table)
	} else {
		c.CreateTable(table)
	}
	chain := c.AddChain(&nftables.Chain{
		Name:     redirectChain,
		Table:    table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityNATDest,
	})
	rule := func(exprs ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: exprs})
	}
	// tcp to the VIPs: dnat to the proxy's listener.
	vip := r.VIPs.Masked().Addr().As4()
	rule(
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		ipDaddr(),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(r.VIPs.Bits(), 32), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip[:]},
		&expr.Immediate{Register: 1, Data: r.Proxy.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, r.Proxy.Port())},
		dnat())
	if r.DNS.IsValid() {
		dns := r.DNS.As4()
		for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			rule(
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
				ipDaddr(),
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dns[:]},
				// th dport
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 53}},
				&expr.Immediate{Register: 1, Data: r.DNSTarget.Addr().AsSlice()},
				&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, r.DNSTarget.Port())},
				dnat())
		}
	}
}

// ipDaddr loads a packet's IPv4 destination address into register 1.
func ipDaddr() *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

// dnat rewrites the destination to the address in register 1 and the port in
// register 2.
func dnat() *expr.NAT {
	return &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2}
}

// OriginalDest returns where a connection that a Redirect sent to a listener was
// going (the VIP and port the container dialled), from the namespace's connection
// tracking. A connection that was not redirected has its own address there.
func OriginalDest(c syscall.Conn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var mreq *unix.IPv6Mreq
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// A sockaddr_in comes back; IPv6Mreq is a 20-byte buffer that holds it.
		mreq, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", serr)
	}
	b := mreq.Multiaddr
	if native.Uint16(b[0:2]) != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("original destination: address family %d, want IPv4", native.Uint16(b[0:2]))
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4])), nil
}
