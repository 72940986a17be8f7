//go:build linux

package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The nftables requests a Redirect needs, spoken directly over netlink like the
// rtnetlink ones (netlink_linux.go): one table, one NAT chain on the output hook and a
// rule per redirect, sent as one transaction. No nft(8) on the node, no process start
// per container, and nothing on the node's own tables: the rules live in the
// container's namespace and go with it.

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
	return InNamespace(netns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("nftables: netlink socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("nftables: netlink bind: %w", err)
		}
		tv := unix.NsecToTimeval(nftAckTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		send := func(replace bool, seq uint32) error {
			batch, acks := redirectBatch(r, seq, replace)
			if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			return readAcks(fd, acks)
		}
		err = send(false, 1)
		if errors.Is(err, unix.EEXIST) {
			err = send(true, 100)
		}
		if err != nil {
			return fmt.Errorf("nftables: install the service redirects in %s: %w", netns, err)
		}
		return nil
	})
}

// redirectBatch encodes r as one nftables transaction whose messages are numbered from
// seq; acks are the sequence numbers the kernel answers. Unless replace is set, the
// transaction fails with EEXIST when the table exists.
func redirectBatch(r Redirect, seq uint32, replace bool) (batch []byte, acks []uint32) {
	const (
		create     = unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_ACK
		appendRule = create | unix.NLM_F_APPEND
	)
	table := strAttr(unix.NFTA_TABLE_NAME, RedirectTable)
	add := func(typ int, flags uint16, attrs ...attr) {
		batch = append(batch, nftMsg(uint16(unix.NFNL_SUBSYS_NFTABLES<<8|typ), flags, seq, unix.NFPROTO_IPV4, 0, attrs...)...)
		acks = append(acks, seq)
		seq++
	}
	batch = nftMsg(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	seq++
	if replace {
		// Add then delete: the delete cannot fail for want of the table, and takes
		// what a previous install left.
		add(unix.NFT_MSG_NEWTABLE, create, table)
		add(unix.NFT_MSG_DELTABLE, unix.NLM_F_REQUEST|unix.NLM_F_ACK, table)
		add(unix.NFT_MSG_NEWTABLE, create, table)
	} else {
		add(unix.NFT_MSG_NEWTABLE, create|unix.NLM_F_EXCL, table)
	}
	add(unix.NFT_MSG_NEWCHAIN, create,
		strAttr(unix.NFTA_CHAIN_TABLE, RedirectTable),
		strAttr(unix.NFTA_CHAIN_NAME, redirectChain),
		nested(unix.NFTA_CHAIN_HOOK,
			be32Attr(unix.NFTA_HOOK_HOOKNUM, unix.NF_INET_LOCAL_OUT),
			be32Attr(unix.NFTA_HOOK_PRIORITY, natDstPriority)),
		strAttr(unix.NFTA_CHAIN_TYPE, "nat"))
	rule := func(exprs ...attr) {
		add(unix.NFT_MSG_NEWRULE, appendRule,
			strAttr(unix.NFTA_RULE_TABLE, RedirectTable),
			strAttr(unix.NFTA_RULE_CHAIN, redirectChain),
			nested(unix.NFTA_RULE_EXPRESSIONS, exprs...))
	}
	// tcp to the VIPs: dnat to the proxy's listener.
	vip := r.VIPs.Masked().Addr().As4()
	rule(
		meta(unix.NFT_META_L4PROTO), cmpEq([]byte{unix.IPPROTO_TCP}),
		payload(unix.NFT_PAYLOAD_NETWORK_HEADER, 16, 4), // ip daddr
		bitwise(prefixMask(r.VIPs.Bits())), cmpEq(vip[:]),
		immediate(unix.NFT_REG_1, r.Proxy.Addr().AsSlice()),
		immediate(unix.NFT_REG_2, binary.BigEndian.AppendUint16(nil, r.Proxy.Port())),
		dnat())
	if r.DNS.IsValid() {
		dns := r.DNS.As4()
		for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			rule(
				meta(unix.NFT_META_L4PROTO), cmpEq([]byte{proto}),
				payload(unix.NFT_PAYLOAD_NETWORK_HEADER, 16, 4), cmpEq(dns[:]), // ip daddr
				payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2), cmpEq([]byte{0, 53}), // th dport
				immediate(unix.NFT_REG_1, r.DNSTarget.Addr().AsSlice()),
				immediate(unix.NFT_REG_2, binary.BigEndian.AppendUint16(nil, r.DNSTarget.Port())),
				dnat())
		}
	}
	batch = append(batch, nftMsg(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)...)
	return batch, acks
}

// natDstPriority is the priority of destination NAT (NF_IP_PRI_NAT_DST, -100), as
// the kernel reads it: a signed 32-bit number in network order.
const natDstPriority = ^uint32(100) + 1

// prefixMask is the network mask of a prefix length, as 4 bytes.
func prefixMask(bits int) []byte {
	m := make([]byte, 4)
	binary.BigEndian.PutUint32(m, ^uint32(0)<<(32-bits))
	return m
}

// nftMsg is one netfilter netlink message: the netlink header, the nfgenmsg header
// (family, version, resource ID) and the attributes.
func nftMsg(typ, flags uint16, seq uint32, family uint8, resID uint16, attrs ...attr) []byte {
	body := []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
	for _, a := range attrs {
		body = append(body, a.encode()...)
	}
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	native.PutUint32(msg[0:4], uint32(len(msg)))
	native.PutUint16(msg[4:6], typ)
	native.PutUint16(msg[6:8], flags)
	native.PutUint32(msg[8:12], seq)
	return msg
}

// nested is an attribute holding others, flagged as such.
func nested(typ uint16, children ...attr) attr {
	return attr{typ: typ | unix.NLA_F_NESTED, children: children}
}

// be32Attr is a 32-bit attribute in network order, as nftables has them.
func be32Attr(typ uint16, v uint32) attr {
	return attr{typ: typ, data: binary.BigEndian.AppendUint32(nil, v)}
}

// dataAttr is an nftables data attribute: a nest holding the value.
func dataAttr(typ uint16, value []byte) attr {
	return nested(typ, attr{typ: unix.NFTA_DATA_VALUE, data: value})
}

// expression is one element of a rule's expression list.
func expression(name string, data ...attr) attr {
	return nested(unix.NFTA_LIST_ELEM, strAttr(unix.NFTA_EXPR_NAME, name), nested(unix.NFTA_EXPR_DATA, data...))
}

// meta loads a packet's meta information (such as its layer 4 protocol) into
// register 1.
func meta(key uint32) attr {
	return expression("meta",
		be32Attr(unix.NFTA_META_DREG, unix.NFT_REG_1),
		be32Attr(unix.NFTA_META_KEY, key))
}

// payload loads n bytes at offset of a header into register 1.
func payload(base, offset, n uint32) attr {
	return expression("payload",
		be32Attr(unix.NFTA_PAYLOAD_DREG, unix.NFT_REG_1),
		be32Attr(unix.NFTA_PAYLOAD_BASE, base),
		be32Attr(unix.NFTA_PAYLOAD_OFFSET, offset),
		be32Attr(unix.NFTA_PAYLOAD_LEN, n))
}

// bitwise masks register 1 with mask.
func bitwise(mask []byte) attr {
	return expression("bitwise",
		be32Attr(unix.NFTA_BITWISE_SREG, unix.NFT_REG_1),
		be32Attr(unix.NFTA_BITWISE_DREG, unix.NFT_REG_1),
		be32Attr(unix.NFTA_BITWISE_LEN, uint32(len(mask))),
		dataAttr(unix.NFTA_BITWISE_MASK, mask),
		dataAttr(unix.NFTA_BITWISE_XOR, make([]byte, len(mask))))
}

// cmpEq ends the rule unless register 1 holds v.
func cmpEq(v []byte) attr {
	return expression("cmp",
		be32Attr(unix.NFTA_CMP_SREG, unix.NFT_REG_1),
		be32Attr(unix.NFTA_CMP_OP, unix.NFT_CMP_EQ),
		dataAttr(unix.NFTA_CMP_DATA, v))
}

// immediate loads v into register reg.
func immediate(reg uint32, v []byte) attr {
	return expression("immediate", be32Attr(unix.NFTA_IMMEDIATE_DREG, reg), dataAttr(unix.NFTA_IMMEDIATE_DATA, v))
}

// dnat rewrites the destination to the address in register 1 and the port in
// register 2.
func dnat() attr {
	return expression("nat",
		be32Attr(unix.NFTA_NAT_TYPE, unix.NFT_NAT_DNAT),
		be32Attr(unix.NFTA_NAT_FAMILY, unix.NFPROTO_IPV4),
		be32Attr(unix.NFTA_NAT_REG_ADDR_MIN, unix.NFT_REG_1),
		be32Attr(unix.NFTA_NAT_REG_PROTO_MIN, unix.NFT_REG_2))
}

// readAcks reads the kernel's answers until every sequence number of acks has been
// acknowledged, and returns the first error it reported.
func readAcks(fd int, acks []uint32) error {
	want := map[uint32]bool{}
	for _, s := range acks {
		want[s] = true
	}
	var first error
	buf := make([]byte, 1<<16)
	for len(want) > 0 {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parse: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || !want[m.Header.Seq] {
				continue
			}
			delete(want, m.Header.Seq)
			if len(m.Data) < 4 {
				return errors.New("short error message")
			}
			if errno := -int32(native.Uint32(m.Data[0:4])); errno != 0 && first == nil {
				first = unix.Errno(errno)
				// A failed transaction is aborted; the kernel may not answer the rest.
				return first
			}
		}
	}
	return first
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
