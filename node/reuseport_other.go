//go:build !(linux || darwin || freebsd)

package node

import "net"

// listenShared is net.Listen where SO_REUSEPORT is not available.
func listenShared(network, addr string) (net.Listener, error) { return net.Listen(network, addr) }

// listenPacketShared is net.ListenPacket where SO_REUSEPORT is not available.
func listenPacketShared(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket(network, addr)
}
