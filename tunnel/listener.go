package tunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"qnet.dev/qnet/identity"
)

// Listener accepts tunnels on a TCP listener: new tunnels, which Accept returns, and
// the rekey connections of the tunnels it accepted before. Every refused connection
// is logged; none harms the listener or its other tunnels.
type Listener struct {
	e        *endpoint
	log      *slog.Logger
	ln       net.Listener
	accepted chan *Tunnel
	sem      chan struct{} // one token per handshake in progress
	ctx      context.Context
	cancel   context.CancelFunc

	mu      sync.Mutex
	closed  bool
	tunnels map[[16]byte]*Tunnel  // every open tunnel accepted here, by ID
	pending map[net.Conn]struct{} // connections still in their handshake

	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Listen accepts tunnels on ln, which the Listener owns from now on.
func Listen(cfg Config, ln net.Listener) (*Listener, error) {
	e, err := newEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	if ln == nil {
		return nil, fmt.Errorf("tunnel listener: no net.Listener given")
	}
	l := &Listener{
		e:        e,
		log:      e.cfg.Logger.With("node", e.cfg.NodeID, "listener", ln.Addr().String()),
		ln:       ln,
		accepted: make(chan *Tunnel, e.cfg.AcceptBacklog),
		sem:      make(chan struct{}, e.cfg.MaxPendingHandshakes),
		tunnels:  make(map[[16]byte]*Tunnel),
		pending:  make(map[net.Conn]struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept waits for a new tunnel. Tunnels whose peer is not registered (with
// AllowUnregistered) come here too: check Registered.
func (l *Listener) Accept(ctx context.Context) (*Tunnel, error) {
	select {
	case t := <-l.accepted:
		return t, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.ctx.Done():
		return nil, fmt.Errorf("accept tunnel: listener %s: %w", l.ln.Addr(), ErrClosed)
	}
}

// SetKey makes key this listener's identity from its next handshake on: a node whose
// keys rotated keeps its listener.
func (l *Listener) SetKey(key *identity.Key) error { return l.e.setKey(key) }

// Close stops the listener and closes every tunnel it accepted: their rekeys come
// through it, so they could not outlive it.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.cancel()
		err = l.ln.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.pending {
			c.Close()
		}
		tunnels := make([]*Tunnel, 0, len(l.tunnels))
		for _, t := range l.tunnels {
			if t != nil { // nil: an ID reserved by a handshake in progress
				tunnels = append(tunnels, t)
			}
		}
		l.mu.Unlock()
		for _, t := range tunnels {
			t.Close()
		}
		l.wg.Wait()
	})
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				l.log.Error("tunnel listener stopped: its socket was closed", "err", err)
				return
			}
			// Out of descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept tunnel connection", "err", err, "retry_in", backoff)
			timer := time.NewTimer(backoff)
			select {
			case <-timer.C:
			case <-l.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		backoff = 0
		select {
		case l.sem <- struct{}{}:
		default:
			l.log.Warn("tunnel connection refused: too many handshakes in progress", "remote", conn.RemoteAddr(), "max", cap(l.sem))
			conn.Close()
			continue
		}
		if !l.addPending(conn) {
			conn.Close()
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.sem }()
			l.serve(conn)
		}()
	}
}

func (l *Listener) addPending(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *Listener) removePending(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
}

// serve runs the handshake of one connection and logs its refusal.
func (l *Listener) serve(conn net.Conn) {
	defer l.removePending(conn)
	if err := l.handshake(conn); err != nil {
		if l.ctx.Err() != nil {
			return
		}
		l.log.Warn("tunnel connection refused", "remote", conn.RemoteAddr().String(), "err", err)
	}
}

// checkCert runs during the TLS handshake, on the peer's certificate key. A key that
// is no longer known also ends the tunnels this listener holds with it: this is where
// a revoked node's next rekey lands.
func (l *Listener) checkCert(ed ed25519.PublicKey) error {
	_, _, registered := l.e.cfg.lookup(ed)
	revoked := false
	if rp, ok := l.e.cfg.Peers.(RevokedPeers); ok && !registered {
		revoked = rp.Revoked(ed)
	}
	if registered || (l.e.cfg.AllowUnregistered && !revoked) {
		return nil
	}
	fp := certFingerprint(ed)
	err := fmt.Errorf("%w: key %x is not registered", ErrUnknownPeer, fp[:8])
	if revoked {
		err = fmt.Errorf("%w: key %x was revoked", ErrUnknownPeer, fp[:8])
	}
	for _, t := range l.tunnelsOf(ed) {
		if t.peer.registered {
			t.fail(fmt.Errorf("node %s is no longer registered; its rekey was refused: %w", t.peer.nodeID, err))
		}
	}
	return err
}

func (l *Listener) tunnelsOf(ed ed25519.PublicKey) []*Tunnel {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Tunnel
	for _, t := range l.tunnels {
		if t != nil && bytes.Equal(t.peer.key.Ed25519, ed) {
			out = append(out, t)
		}
	}
	return out
}

// handshake authenticates one connection, then opens a tunnel with it or makes it the
// next epoch of one.
func (l *Listener) handshake(conn net.Conn) error {
	e := l.e
	raw := &batchConn{Conn: conn}
	ctx, cancel := context.WithTimeout(l.ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	stop := deadlineFor(ctx, raw, e.cfg.HandshakeTimeout)
	defer stop()
	fail := func(err error) error {
		raw.Close()
		return timedOut(ctx, err, e.cfg.HandshakeTimeout)
	}

	var cert peerCert
	me := e.me.Load()
	tc := tls.Server(raw, e.tlsConfig(me, &cert, l.checkCert))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("TLS handshake: %w", err))
	}
	ekm, err := exporter(tc)
	if err != nil {
		return fail(err)
	}
	// Sign ours before reading the dialer's: it is signing its own meanwhile.
	mine, err := e.ownBinding(me, roleListener, 0, [16]byte{}, 0, ekm, cert.fp, me.certFP)
	if err != nil {
		return fail(err)
	}
	b, err := readBinding(tc, "dialer")
	if err != nil {
		return fail(err)
	}
	if b.role != roleDialer {
		return fail(refuse(tc, fmt.Errorf("%w: binding of role %d from the dialer", ErrProtocol, b.role)))
	}
	id, err := e.resolve(cert, b, e.cfg.AllowUnregistered)
	if err == nil {
		err = e.checkBinding(b, id, ekm, cert.fp, me.certFP)
	}
	if err != nil {
		return fail(refuse(tc, err))
	}

	var t *Tunnel
	if b.kind == kindRekey {
		if t, err = l.rekeyTarget(b, id); err != nil {
			return fail(refuse(tc, err))
		}
		defer t.rekeying.Store(false)
	} else if err := l.reserve(b.tunnel); err != nil {
		return fail(refuse(tc, err))
	}
	opened := false
	defer func() {
		if !opened && b.kind == kindOpen {
			l.unreserve(b.tunnel)
		}
	}()

	if err := writeFrame(tc, frameHello, mine); err != nil {
		return fail(fmt.Errorf("send binding: %w", err))
	}
	h, p, err := readControl(tc)
	if err == nil && h.typ == frameClose {
		reason, _ := decodeClose(p)
		err = fmt.Errorf("%w: node %s refused our binding: %s", ErrRefused, id.nodeID, reason)
	} else if err == nil && h.typ != frameAccept {
		err = fmt.Errorf("%w: %s frame where accept belongs", ErrProtocol, frameName(h.typ))
	}
	if err != nil {
		if t != nil {
			t.fail(fmt.Errorf("rekey to epoch %d: %w", b.epoch, err))
		}
		return fail(err)
	}
	raw.startBatching()
	ec := newEpochConn(b.epoch, tc, raw)

	if t != nil {
		if _, err := t.install(ec); err != nil {
			err = fmt.Errorf("rekey to epoch %d: %w", b.epoch, err)
			t.fail(err)
			return err
		}
		return nil
	}
	t = newTunnel(e, roleListener, b.tunnel, id, ec)
	t.listener = l
	if !l.register(t) {
		ec.close()
		return fmt.Errorf("listener closed during the handshake")
	}
	opened = true
	t.start()
	select {
	case l.accepted <- t:
		t.log.Info("tunnel opened", "remote", conn.RemoteAddr().String(), "registered", id.registered)
	default:
		t.fail(fmt.Errorf("listener backlog full (%d tunnels wait for Accept)", cap(l.accepted)))
	}
	return nil
}

// reserve claims a tunnel ID for a tunnel being opened; IDs are random, so a taken one
// is a replay or an attack.
func (l *Listener) reserve(id [16]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("listener closed")
	}
	if _, ok := l.tunnels[id]; ok {
		return fmt.Errorf("%w: tunnel %x is already open", ErrProtocol, id[:6])
	}
	l.tunnels[id] = nil
	return nil
}

func (l *Listener) unreserve(id [16]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.tunnels[id]; ok && t == nil {
		delete(l.tunnels, id)
	}
}

func (l *Listener) register(t *Tunnel) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.tunnels[t.id] = t
	return true
}

// forget removes an ended tunnel.
func (l *Listener) forget(t *Tunnel) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tunnels[t.id] == t {
		delete(l.tunnels, t.id)
	}
}

// rekeyTarget finds the tunnel a rekey binding names and checks that the same peer
// asks, for the next epoch. A registered peer that is no longer registered loses the
// tunnel.
func (l *Listener) rekeyTarget(b *binding, id peerIdentity) (*Tunnel, error) {
	l.mu.Lock()
	t := l.tunnels[b.tunnel]
	l.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("rekey of tunnel %s: no such tunnel here (closed?)", hex.EncodeToString(b.tunnel[:6]))
	}
	if !t.peer.key.Equal(id.key) {
		return nil, fmt.Errorf("%w: rekey of tunnel %s by node %s, but it belongs to node %s", ErrUnknownPeer, hex.EncodeToString(b.tunnel[:6]), id.nodeID, t.peer.nodeID)
	}
	if t.peer.registered && !id.registered {
		err := fmt.Errorf("%w: node %s is no longer registered", ErrUnknownPeer, t.peer.nodeID)
		t.fail(fmt.Errorf("rekey to epoch %d refused: %w", b.epoch, err))
		return nil, err
	}
	if !t.rekeying.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: rekey of tunnel %s while another is in progress", ErrProtocol, hex.EncodeToString(b.tunnel[:6]))
	}
	if want := t.epoch.Load() + 1; b.epoch != want {
		t.rekeying.Store(false)
		err := fmt.Errorf("%w: rekey to epoch %d, want %d", ErrProtocol, b.epoch, want)
		t.fail(err)
		return nil, err
	}
	return t, nil
}
