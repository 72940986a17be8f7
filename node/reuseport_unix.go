//go:build linux || darwin || freebsd

package node

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenShared listens with SO_REUSEPORT, so that several nodes on one host (a testnet
// on one loopback) can all offer a service's stable address: the kernel spreads the
// connections among them. Only processes of the same user may share a port.
func listenShared(network, addr string) (net.Listener, error) {
	return reusePort.Listen(context.Background(), network, addr)
}

// listenPacketShared is listenShared for a udp port: the kernel gives each client
// address's datagrams to one of the sockets (by a hash of the addresses), so a client's
// UDP session stays with one node.
func listenPacketShared(network, addr string) (net.PacketConn, error) {
	return reusePort.ListenPacket(context.Background(), network, addr)
}

var reusePort = net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}}
