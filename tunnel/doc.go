// Package tunnel carries every byte between QNet nodes: mutually authenticated,
// post-quantum tunnels whose keys are renewed every epoch, with many streams
// multiplexed over each.
//
// # Trust
//
// A tunnel is TLS 1.3 with the X25519MLKEM768 key exchange and nothing else: a peer
// that offers only classical groups is refused. Each node presents a self-signed
// certificate of its Ed25519 key; trust comes from the ledger, not from a certificate
// authority, so a certificate is accepted only when its key belongs to a node the
// ledger knows (the [Peers] interface, which the node implements from its state
// store). Because Ed25519 alone is not post-quantum, both sides then bind the TLS
// session to their full hybrid identity: each signs, with Ed25519 and ML-DSA-65
// (identity.DomainTunnel), the session's exporter, the fingerprints of both
// certificate keys and its own clock, and checks the peer's signature against the key
// the ledger holds for it. A node joining the network is not in the ledger yet: a
// listener with [Config.AllowUnregistered] accepts it on the key it presents (the
// tunnel then reports Registered() == false, and the caller lets it reach only the join
// service), and the newcomer pins the node it contacts by the fingerprint its join
// token carries ([Expect]), so no side trusts on first use.
//
// # Wire format
//
// After the TLS handshake the connection carries frames: a 4-byte header (type, then
// the payload length as a 24-bit big-endian integer) and the payload. The types are
// hello (the binding message), accept (the dialer accepted the listener's binding),
// data (bytes of the tunnel's stream), epoch-end (the sender's last frame on this
// connection, with the stream offset it reached), rekey (the listener asks the dialer
// for a new epoch) and close (a reason). Each type has a fixed limit on its length;
// anything else is a protocol error that ends the connection.
//
// # Epochs
//
// Go's TLS cannot send a KeyUpdate, so a tunnel renews its keys by running a fresh
// handshake on a new TCP connection. The tunnel is one ordered byte stream carried by a
// sequence of TLS connections, one per epoch, and the stream multiplexer (yamux) runs
// on top of that stream, unaware of the switches. When an epoch is old enough (two
// minutes) or has carried enough bytes (1 GiB either way), the dialer connects again,
// naming the tunnel and the next epoch in its binding; the peer is authenticated from
// scratch (a revoked key fails here) and must be the same identity as before. Each
// side then writes epoch-end on the old connection after its last bytes and goes on
// writing on the new one; each reader drains the old connection up to the peer's
// epoch-end before reading the new one, so the stream stays in order. The old
// connection closes when both directions have ended on it. The listener may ask for a
// rekey with a rekey frame, and closes the tunnel if the dialer does not comply.
package tunnel
