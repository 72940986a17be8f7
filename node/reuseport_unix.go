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
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), network, addr)
}
