package tunnel

import "errors"

// Errors callers tell apart with errors.Is. They are wrapped with the details.
var (
	// ErrClosed reports a tunnel or listener closed by this side.
	ErrClosed = errors.New("tunnel closed")
	// ErrPeerClosed reports a tunnel the peer closed; the peer's reason follows.
	ErrPeerClosed = errors.New("tunnel closed by peer")
	// ErrRefused reports a handshake the peer refused; the peer's reason follows.
	ErrRefused = errors.New("tunnel refused by peer")
	// ErrUnknownPeer reports a peer whose key the ledger does not know (or no longer
	// knows: a revoked node), or which is not the node the dialer expected.
	ErrUnknownPeer = errors.New("unknown peer")
	// ErrClockSkew reports a peer whose clock is further from ours than MaxClockSkew.
	ErrClockSkew = errors.New("clock far off")
	// ErrProtocol reports bytes that break the tunnel protocol: a malformed, unknown,
	// oversized or truncated frame or binding message.
	ErrProtocol = errors.New("tunnel protocol violation")
	// ErrConnLost reports a connection of the tunnel that broke without the peer
	// closing the tunnel.
	ErrConnLost = errors.New("tunnel connection lost")
)
