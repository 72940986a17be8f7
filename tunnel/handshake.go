package tunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"qnet.dev/qnet/identity"
)

// alpn names the protocol in the TLS handshake, so a tunnel port is never mistaken for
// another TLS service.
const alpn = "qnet-tunnel/1"

// endpoint is what a dialer and a listener share: the configuration, this node's
// certificate, and the parsed keys of the peers it met.
type endpoint struct {
	cfg Config
	// me is this node's identity; it changes when the node's keys rotate.
	me atomic.Pointer[self]

	// verifiers caches parsed registered keys by fingerprint: parsing an ML-DSA-65
	// key costs as much as verifying with it, and a node meets the same peers at
	// every rekey.
	mu        sync.Mutex
	verifiers map[[32]byte]*identity.Verifier
}

// maxVerifiers bounds the cache; it is emptied when full, which costs one parse per
// peer afterwards.
const maxVerifiers = 4096

// verifier returns the parsed key; registered keys are cached.
func (e *endpoint) verifier(key identity.PublicKey, registered bool) (*identity.Verifier, error) {
	if !registered {
		return key.Verifier()
	}
	fp := key.Fingerprint()
	e.mu.Lock()
	v, ok := e.verifiers[fp]
	e.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := key.Verifier()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.verifiers == nil || len(e.verifiers) >= maxVerifiers {
		e.verifiers = make(map[[32]byte]*identity.Verifier)
	}
	e.verifiers[fp] = v
	e.mu.Unlock()
	return v, nil
}

// self is this node's identity as handshakes present it.
type self struct {
	key    *identity.Key
	cert   tls.Certificate
	certFP [32]byte
	pub    identity.PublicKey
}

func newSelf(key *identity.Key) (*self, error) {
	cert, err := selfSigned(key)
	if err != nil {
		return nil, err
	}
	pub := key.Public()
	return &self{key: key, cert: cert, certFP: certFingerprint(pub.Ed25519), pub: pub}, nil
}

func newEndpoint(cfg Config) (*endpoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	me, err := newSelf(cfg.Key)
	if err != nil {
		return nil, err
	}
	e := &endpoint{cfg: cfg}
	e.me.Store(me)
	return e, nil
}

// setKey makes key this endpoint's identity from the next handshake on.
func (e *endpoint) setKey(key *identity.Key) error {
	me, err := newSelf(key)
	if err != nil {
		return err
	}
	e.me.Store(me)
	return nil
}

// selfSigned makes the node's TLS certificate from its Ed25519 key. No one checks its
// name or dates: peers trust the key, through the ledger.
func selfSigned(key *identity.Key) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "qnet node " + key.ID()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Ed25519().Public(), key.Ed25519())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tunnel certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tunnel certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key.Ed25519(), Leaf: leaf}, nil
}

// peerCert is what the TLS handshake learned about the peer.
type peerCert struct {
	ed ed25519.PublicKey
	fp [32]byte
}

// tlsConfig returns the TLS configuration of one handshake; check decides on the
// peer's certificate key while the handshake runs, so a refused peer gets a TLS alert.
// Session tickets are off: every handshake, rekeys included, is a full one that checks
// the peer anew.
func (e *endpoint) tlsConfig(me *self, got *peerCert, check func(ed25519.PublicKey) error) *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		MaxVersion:                  tls.VersionTLS13,
		CurvePreferences:            []tls.CurveID{tls.X25519MLKEM768},
		Certificates:                []tls.Certificate{me.cert},
		ClientAuth:                  tls.RequireAnyClientCert,
		InsecureSkipVerify:          true, // the key is checked against the ledger below
		SessionTicketsDisabled:      true,
		DynamicRecordSizingDisabled: true,
		NextProtos:                  []string{alpn},
		VerifyConnection: func(cs tls.ConnectionState) error {
			ed, err := checkState(cs)
			if err != nil {
				return err
			}
			if err := check(ed); err != nil {
				return err
			}
			*got = peerCert{ed: ed, fp: certFingerprint(ed)}
			return nil
		},
	}
}

// checkState checks what TLS negotiated and returns the peer's Ed25519 key.
func checkState(cs tls.ConnectionState) (ed25519.PublicKey, error) {
	if cs.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("TLS version %#x, want TLS 1.3", cs.Version)
	}
	if cs.CurveID != tls.X25519MLKEM768 {
		return nil, fmt.Errorf("key exchange %s, want X25519MLKEM768", cs.CurveID)
	}
	if cs.NegotiatedProtocol != alpn {
		return nil, fmt.Errorf("application protocol %q, want %q", cs.NegotiatedProtocol, alpn)
	}
	if len(cs.PeerCertificates) != 1 {
		return nil, fmt.Errorf("peer sent %d certificates, want 1", len(cs.PeerCertificates))
	}
	ed, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("peer certificate key is %T, want Ed25519", cs.PeerCertificates[0].PublicKey)
	}
	return ed, nil
}

// exporter returns the session's channel-binding secret.
func exporter(tc *tls.Conn) ([]byte, error) {
	cs := tc.ConnectionState()
	if _, err := checkState(cs); err != nil { // defence in depth: VerifyConnection ran
		return nil, err
	}
	ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("export keying material: %w", err)
	}
	return ekm, nil
}

// deadlineFor bounds the exchange on conn by the handshake timeout and ctx: the
// deadline is set now and moved to the past if ctx ends first. The returned stop must
// be called when the exchange is over; it clears the deadline.
func deadlineFor(ctx context.Context, conn net.Conn, timeout time.Duration) (stop func()) {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	conn.SetDeadline(d)
	stopAfter := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stopAfter()
		conn.SetDeadline(time.Time{})
	}
}

// timedOut names a handshake that failed because its time ran out, whichever of the
// context or the socket deadline noticed first.
func timedOut(ctx context.Context, err error, limit time.Duration) error {
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("handshake not done within %s (timeout): %w", limit, err)
	}
	return err
}

// writeFrame writes one frame at once (during a handshake nothing is batched).
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(appendFrame(nil, typ, payload))
	return err
}

// refuse tells the peer why we end the connection (best effort) and returns err.
func refuse(tc *tls.Conn, err error) error {
	tc.SetWriteDeadline(time.Now().Add(time.Second))
	writeFrame(tc, frameClose, closePayload(err.Error()))
	return err
}

// readBinding reads the peer's binding, or its refusal.
func readBinding(tc *tls.Conn, who string) (*binding, error) {
	h, p, err := readControl(tc)
	if err != nil {
		return nil, fmt.Errorf("read %s binding: %w", who, readErr(err))
	}
	switch h.typ {
	case frameHello:
		return unmarshalBinding(p)
	case frameClose:
		reason, err := decodeClose(p)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	return nil, fmt.Errorf("%w: %s frame where the %s binding belongs", ErrProtocol, frameName(h.typ), who)
}

// readErr names a refusal by TLS alert as such, so callers can tell it apart.
func readErr(err error) error {
	// crypto/tls reports the peer's alert as a *net.OpError of Op "remote error".
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: connection closed during the handshake", ErrRefused)
	}
	return err
}

// peerIdentity is the identity a binding proved.
type peerIdentity struct {
	nodeID     string
	key        identity.PublicKey
	registered bool
	cert       peerCert
}

// resolve decides which key the peer's binding must verify under: the ledger's, when
// the certificate key is registered, or else, if unregistered peers are allowed here,
// the key the binding carries, whose Ed25519 half must be the certificate's.
func (e *endpoint) resolve(cert peerCert, b *binding, allowUnregistered bool) (peerIdentity, error) {
	if nodeID, key, ok := e.cfg.lookup(cert.ed); ok {
		return peerIdentity{nodeID: nodeID, key: key, registered: true, cert: cert}, nil
	}
	if !allowUnregistered {
		return peerIdentity{}, fmt.Errorf("%w: key %x is not registered", ErrUnknownPeer, cert.fp[:8])
	}
	if !bytes.Equal(b.key.Ed25519, cert.ed) {
		return peerIdentity{}, fmt.Errorf("%w: binding key %s does not match the certificate key", ErrProtocol, b.key.ID())
	}
	return peerIdentity{nodeID: b.key.ID(), key: b.key, registered: false, cert: cert}, nil
}

// ownBinding builds and signs this side's binding.
func (e *endpoint) ownBinding(me *self, role, kind byte, tunnel [16]byte, epoch uint64, ekm []byte, dialerFP, listenerFP [32]byte) ([]byte, error) {
	b := &binding{role: role, kind: kind, tunnel: tunnel, epoch: epoch, time: e.cfg.Now().UnixNano(), key: me.pub}
	if err := b.sign(me.key, ekm, dialerFP, listenerFP); err != nil {
		return nil, err
	}
	return b.marshal(), nil
}

// checkBinding verifies the peer's binding under id's key and compares clocks.
func (e *endpoint) checkBinding(b *binding, id peerIdentity, ekm []byte, dialerFP, listenerFP [32]byte) error {
	v, err := e.verifier(id.key, id.registered)
	if err != nil {
		return fmt.Errorf("%w: node %s: key: %v", ErrProtocol, id.nodeID, err)
	}
	if err := b.verify(v, ekm, dialerFP, listenerFP); err != nil {
		return fmt.Errorf("node %s: %w", id.nodeID, err)
	}
	if err := b.checkClock(e.cfg.Now(), e.cfg.MaxClockSkew); err != nil {
		return fmt.Errorf("node %s: %w", id.nodeID, err)
	}
	return nil
}
