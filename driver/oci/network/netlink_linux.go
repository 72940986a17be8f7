//go:build linux

package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// The few rtnetlink requests the network needs, spoken directly: a bridge, a veth
// pair with one end moved into a namespace, addresses, a default route. Doing it here
// rather than through ip(8) saves a process start per step, which matters for start
// latency, and needs no tool on the node.

var native = binary.NativeEndian

// vethInfoPeer is VETH_INFO_PEER of linux/veth.h (not in x/sys).
const vethInfoPeer = 1

// nlConn is a netlink route socket, bound to the network namespace of the thread that
// opened it for as long as it lives.
type nlConn struct {
	fd  int
	seq uint32
}

func dialNetlink() (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &nlConn{fd: fd}, nil
}

func (c *nlConn) Close() error { return unix.Close(c.fd) }

// attr is a netlink attribute; nested attributes go in children.
type attr struct {
	typ      uint16
	data     []byte
	children []attr
}

func (a attr) encode() []byte {
	payload := a.data
	for _, ch := range a.children {
		payload = append(payload, ch.encode()...)
	}
	n := unix.SizeofRtAttr + len(payload)
	b := make([]byte, align4(n))
	native.PutUint16(b[0:2], uint16(n))
	native.PutUint16(b[2:4], a.typ)
	copy(b[4:], payload)
	return b
}

func align4(n int) int { return (n + 3) &^ 3 }

func strAttr(typ uint16, s string) attr { return attr{typ: typ, data: append([]byte(s), 0)} }

func u32Attr(typ uint16, v uint32) attr {
	b := make([]byte, 4)
	native.PutUint32(b, v)
	return attr{typ: typ, data: b}
}

func ipAttr(typ uint16, ip netip.Addr) attr {
	b := ip.As4()
	return attr{typ: typ, data: b[:]}
}

func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	native.PutUint32(b[4:8], uint32(index))
	native.PutUint32(b[8:12], flags)
	native.PutUint32(b[12:16], change)
	return b
}

// request sends one message and reads until its acknowledgement, returning the
// messages that answered it (for dumps and gets).
func (c *nlConn) request(typ, flags uint16, body []byte, attrs ...attr) ([]syscall.NetlinkMessage, error) {
	c.seq++
	for _, a := range attrs {
		body = append(body, a.encode()...)
	}
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	native.PutUint32(msg[0:4], uint32(len(msg)))
	native.PutUint16(msg[4:6], typ)
	native.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	native.PutUint32(msg[8:12], c.seq)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	var out []syscall.NetlinkMessage
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netlink parse: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("netlink: short error message")
				}
				if errno := -int32(native.Uint32(m.Data[0:4])); errno != 0 {
					return nil, unix.Errno(errno)
				}
				return out, nil
			case unix.NLMSG_DONE:
				return out, nil
			default:
				// buf is read into again for the acknowledgement.
				m.Data = append([]byte(nil), m.Data...)
				out = append(out, m)
			}
		}
	}
}

// linkIndex returns the index of the interface called name.
func (c *nlConn) linkIndex(name string) (int32, error) {
	msgs, err := c.request(unix.RTM_GETLINK, 0, ifinfomsg(0, 0, 0), strAttr(unix.IFLA_IFNAME, name))
	if err != nil {
		return 0, fmt.Errorf("find interface %s: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK && len(m.Data) >= unix.SizeofIfInfomsg {
			return int32(native.Uint32(m.Data[4:8])), nil
		}
	}
	return 0, fmt.Errorf("find interface %s: no answer", name)
}

// addBridge creates a bridge; it is an error wrapping unix.EEXIST if one exists.
func (c *nlConn) addBridge(name string) error {
	_, err := c.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifinfomsg(0, 0, 0),
		strAttr(unix.IFLA_IFNAME, name),
		attr{typ: unix.IFLA_LINKINFO, children: []attr{strAttr(unix.IFLA_INFO_KIND, "bridge")}})
	if err != nil {
		return fmt.Errorf("create bridge %s: %w", name, err)
	}
	return nil
}

// addVeth creates the pair host <-> peer, host attached to the bridge with index
// master, peer moved at once into the namespace open as nsFD.
func (c *nlConn) addVeth(host, peer string, master int32, nsFD int) error {
	peerInfo := append(ifinfomsg(0, 0, 0), strAttr(unix.IFLA_IFNAME, peer).encode()...)
	peerInfo = append(peerInfo, u32Attr(unix.IFLA_NET_NS_FD, uint32(nsFD)).encode()...)
	_, err := c.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifinfomsg(0, 0, 0),
		strAttr(unix.IFLA_IFNAME, host),
		u32Attr(unix.IFLA_MASTER, uint32(master)),
		attr{typ: unix.IFLA_LINKINFO, children: []attr{
			strAttr(unix.IFLA_INFO_KIND, "veth"),
			{typ: unix.IFLA_INFO_DATA, children: []attr{{typ: vethInfoPeer, data: peerInfo}}},
		}})
	if err != nil {
		return fmt.Errorf("create veth pair %s/%s: %w", host, peer, err)
	}
	return nil
}

// setUp brings the interface with the given index up.
func (c *nlConn) setUp(index int32) error {
	_, err := c.request(unix.RTM_NEWLINK, 0, ifinfomsg(index, unix.IFF_UP, unix.IFF_UP))
	if err != nil {
		return fmt.Errorf("bring interface %d up: %w", index, err)
	}
	return nil
}

// delLink deletes the interface called name (both ends, for a veth).
func (c *nlConn) delLink(name string) error {
	_, err := c.request(unix.RTM_DELLINK, 0, ifinfomsg(0, 0, 0), strAttr(unix.IFLA_IFNAME, name))
	return err
}

// addAddr gives the interface an IPv4 address; an existing one is an error wrapping
// unix.EEXIST.
func (c *nlConn) addAddr(index int32, p netip.Prefix) error {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	b[1] = uint8(p.Bits())
	native.PutUint32(b[4:8], uint32(index))
	attrs := []attr{ipAttr(unix.IFA_LOCAL, p.Addr()), ipAttr(unix.IFA_ADDRESS, p.Addr())}
	if bc, ok := broadcast(p); ok {
		attrs = append(attrs, ipAttr(unix.IFA_BROADCAST, bc))
	}
	if _, err := c.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b, attrs...); err != nil {
		return fmt.Errorf("add address %s to interface %d: %w", p, index, err)
	}
	return nil
}

// addDefaultRoute routes everything not on a connected network via gw on the
// interface index.
func (c *nlConn) addDefaultRoute(gw netip.Addr, index int32) error {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	b[4] = unix.RT_TABLE_MAIN
	b[5] = unix.RTPROT_BOOT
	b[6] = unix.RT_SCOPE_UNIVERSE
	b[7] = unix.RTN_UNICAST
	if _, err := c.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, b,
		ipAttr(unix.RTA_GATEWAY, gw), u32Attr(unix.RTA_OIF, uint32(index))); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}

// broadcast returns the broadcast address of an IPv4 prefix shorter than /31.
func broadcast(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() >= 31 {
		return netip.Addr{}, false
	}
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a), true
}
