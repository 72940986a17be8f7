package tunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"fmt"

	"qnet.dev/qnet/identity"
)

// Dialer opens tunnels to other nodes. It holds this node's certificate, made once.
type Dialer struct {
	e *endpoint
}

// NewDialer checks cfg and prepares a Dialer.
func NewDialer(cfg Config) (*Dialer, error) {
	e, err := newEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	return &Dialer{e: e}, nil
}

// Dial opens a tunnel to the node listening at addr, which must be the node want
// names (the zero Expect accepts any registered node). The tunnel rekeys by dialing
// addr again.
func Dial(ctx context.Context, cfg Config, addr string, want Expect) (*Tunnel, error) {
	d, err := NewDialer(cfg)
	if err != nil {
		return nil, err
	}
	return d.Dial(ctx, addr, want)
}

// Dial opens a tunnel to the node listening at addr, which must be the node want
// names (the zero Expect accepts any registered node). The tunnel rekeys by dialing
// addr again.
func (d *Dialer) Dial(ctx context.Context, addr string, want Expect) (*Tunnel, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("tunnel ID: %w", err)
	}
	ec, peer, err := d.connect(ctx, addr, kindOpen, id, 0, dialPolicy{want: want})
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", addr, err)
	}
	t := newTunnel(d.e, roleDialer, id, peer, ec)
	t.dialer, t.addr = d, addr
	t.start()
	return t, nil
}

// SetKey makes key this dialer's identity from its next handshake on (new tunnels and
// rekeys of existing ones): a node whose keys rotated keeps its dialer.
func (d *Dialer) SetKey(key *identity.Key) error { return d.e.setKey(key) }

// dialPolicy says which peer a dial accepts.
type dialPolicy struct {
	want Expect
	// same, on a rekey, is the identity the tunnel has: the peer must be it again.
	same *peerIdentity
}

// checkCert runs during the TLS handshake, on the peer's certificate key.
func (d *Dialer) checkCert(p dialPolicy, ed ed25519.PublicKey) error {
	nodeID, key, ok := d.e.cfg.lookup(ed)
	fp := certFingerprint(ed)
	if s := p.same; s != nil {
		switch {
		case !bytes.Equal(ed, s.key.Ed25519):
			return fmt.Errorf("%w: peer presents key %x, not the key of node %s", ErrUnknownPeer, fp[:8], s.nodeID)
		case s.registered && !ok:
			return fmt.Errorf("%w: node %s is no longer registered", ErrUnknownPeer, s.nodeID)
		case ok && (nodeID != s.nodeID || !key.Equal(s.key)):
			return fmt.Errorf("%w: the ledger's key for node %s changed", ErrUnknownPeer, s.nodeID)
		}
		return nil
	}
	if ok {
		if p.want.NodeID != "" && nodeID != p.want.NodeID {
			return fmt.Errorf("%w: peer is node %s, want node %s", ErrUnknownPeer, nodeID, p.want.NodeID)
		}
		if p.want.Fingerprint != ([32]byte{}) && key.Fingerprint() != p.want.Fingerprint {
			got := key.Fingerprint()
			return fmt.Errorf("%w: peer is node %s with key fingerprint %x, want %x", ErrUnknownPeer, nodeID, got[:8], p.want.Fingerprint[:8])
		}
		return nil
	}
	if p.want.Fingerprint != ([32]byte{}) {
		return nil // the binding carries the full key; its fingerprint is checked then
	}
	return fmt.Errorf("%w: key %x is not registered", ErrUnknownPeer, fp[:8])
}

// checkIdentity runs on the identity the listener's binding proved.
func (d *Dialer) checkIdentity(p dialPolicy, id peerIdentity) error {
	if s := p.same; s != nil {
		if !id.key.Equal(s.key) {
			return fmt.Errorf("%w: peer's key changed from %s to %s", ErrUnknownPeer, s.key.ID(), id.key.ID())
		}
		return nil
	}
	if p.want.NodeID != "" && id.nodeID != p.want.NodeID {
		return fmt.Errorf("%w: peer is node %s, want node %s", ErrUnknownPeer, id.nodeID, p.want.NodeID)
	}
	if fp := id.key.Fingerprint(); p.want.Fingerprint != ([32]byte{}) && fp != p.want.Fingerprint {
		return fmt.Errorf("%w: peer's key fingerprint is %x, want %x", ErrUnknownPeer, fp[:8], p.want.Fingerprint[:8])
	}
	return nil
}

// connect opens one TLS connection to addr and runs the binding exchange on it: the
// first epoch of a new tunnel, or the next epoch of an existing one.
func (d *Dialer) connect(ctx context.Context, addr string, kind byte, tunnel [16]byte, epoch uint64, p dialPolicy) (*epochConn, peerIdentity, error) {
	e := d.e
	ctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := e.cfg.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, peerIdentity{}, err
	}
	raw := &batchConn{Conn: conn}
	stop := deadlineFor(ctx, raw, e.cfg.HandshakeTimeout)
	defer stop()

	var cert peerCert
	me := e.me.Load()
	tc := tls.Client(raw, e.tlsConfig(me, &cert, func(ed ed25519.PublicKey) error { return d.checkCert(p, ed) }))
	fail := func(err error) (*epochConn, peerIdentity, error) {
		raw.Close()
		return nil, peerIdentity{}, timedOut(ctx, err, e.cfg.HandshakeTimeout)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("TLS handshake: %w", readErr(err)))
	}
	ekm, err := exporter(tc)
	if err != nil {
		return fail(err)
	}
	mine, err := e.ownBinding(me, roleDialer, kind, tunnel, epoch, ekm, me.certFP, cert.fp)
	if err != nil {
		return fail(err)
	}
	if err := writeFrame(tc, frameHello, mine); err != nil {
		return fail(fmt.Errorf("send binding: %w", err))
	}
	b, err := readBinding(tc, "listener")
	if err != nil {
		return fail(err)
	}
	if b.role != roleListener {
		return fail(refuse(tc, fmt.Errorf("%w: binding of role %d from the listener", ErrProtocol, b.role)))
	}
	id, err := e.resolve(cert, b, p.same != nil && !p.same.registered || p.want.Fingerprint != [32]byte{})
	if err == nil {
		err = d.checkIdentity(p, id)
	}
	if err == nil {
		err = e.checkBinding(b, id, ekm, me.certFP, cert.fp)
	}
	if err != nil {
		return fail(refuse(tc, err))
	}
	if err := writeFrame(tc, frameAccept, nil); err != nil {
		return fail(fmt.Errorf("send accept: %w", err))
	}
	raw.startBatching()
	return newEpochConn(epoch, tc, raw), id, nil
}
