package tunnel

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"qnet.dev/qnet/identity"
)

// Tunnel is an authenticated, encrypted connection to one peer node that carries many
// streams and renews its keys every epoch. It is safe for concurrent use.
type Tunnel struct {
	e        *endpoint
	log      *slog.Logger
	role     byte
	id       [16]byte
	peer     peerIdentity
	sess     *yamux.Session
	dialer   *Dialer   // dialer side: rekeys dial again
	addr     string    // dialer side: where
	listener *Listener // listener side: the registry to leave

	// Writing. wmu orders every frame written; it is held across a socket write, so
	// the reader never takes it: the epoch loop writes the listener's rekey requests.
	wmu       sync.Mutex
	wconn     *epochConn
	pending   []byte // a yamux data header whose body comes with the next Write
	pendBuf   [12]byte
	sent      atomic.Uint64
	epochSent atomic.Int64
	frameBuf  []byte

	// Reading: owned by yamux's receive loop, the only reader.
	rconn     *epochConn
	remain    int
	hdr       [headerLen]byte
	recv      atomic.Uint64
	epochRecv atomic.Int64
	next      chan *epochConn // established epochs the reader has yet to reach

	cur        atomic.Pointer[epochConn] // the connection this side writes on, for its addresses
	epoch      atomic.Uint64             // the epoch this side writes in
	epochStart atomic.Int64              // when it began, Unix nanoseconds
	rekeys     atomic.Int64
	rekeyWake  chan struct{} // wakes the epoch loop: byte limit, peer's request
	peerAsked  atomic.Uint64 // dialer: 1 + the epoch the listener asked to leave; 0 if none
	rekeying   atomic.Bool   // listener: a rekey handshake of this tunnel is in progress
	repoch     atomic.Uint64 // the epoch the reader is in
	newEpoch   chan struct{} // listener: the dialer completed a rekey

	muxLog   muxLog
	ctx      context.Context // ends with the tunnel; rekey handshakes run under it
	cancel   context.CancelFunc
	mu       sync.Mutex
	conns    map[*epochConn]struct{} // every open connection, for Close
	done     chan struct{}
	err      error
	loopDone chan struct{}
}

// Stats counts a tunnel's traffic: bytes of the tunnel's stream (stream data and the
// multiplexer's headers, not TLS overhead) and completed rekeys.
type Stats struct {
	BytesSent     uint64
	BytesReceived uint64
	Rekeys        int
}

// maxPendingEpochs bounds the established epochs a reader may lag behind. The dialer
// starts a rekey only once the previous old connection is retired, so one suffices;
// the rest is slack.
const maxPendingEpochs = 4

func newTunnel(e *endpoint, role byte, id [16]byte, peer peerIdentity, ec *epochConn) *Tunnel {
	t := &Tunnel{
		e: e, role: role, id: id, peer: peer,
		wconn: ec, rconn: ec,
		next:      make(chan *epochConn, maxPendingEpochs),
		rekeyWake: make(chan struct{}, 1),
		newEpoch:  make(chan struct{}, 1),
		conns:     map[*epochConn]struct{}{ec: {}},
		done:      make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.cur.Store(ec)
	t.epochStart.Store(time.Now().UnixNano())
	side := "dialer"
	if role == roleListener {
		side = "listener"
	}
	t.log = e.cfg.Logger.With("node", e.cfg.NodeID, "peer", peer.nodeID, "tunnel", hex.EncodeToString(id[:6]), "side", side)
	t.muxLog.log = t.log
	return t
}

// start runs the stream multiplexer and the epoch loop.
func (t *Tunnel) start() {
	yc := yamux.DefaultConfig()
	yc.MaxStreamWindowSize = t.e.cfg.StreamWindow
	yc.LogOutput = nil
	yc.Logger = &t.muxLog
	var err error
	if t.role == roleDialer {
		t.sess, err = yamux.Client(stream{t}, yc)
	} else {
		t.sess, err = yamux.Server(stream{t}, yc)
	}
	if err != nil { // only a bad yamux config, which Validate prevents
		panic(fmt.Sprintf("tunnel: yamux config: %v", err))
	}
	go t.epochLoop()
}

// Peer returns the peer's node ID and public key. For a peer that is not registered,
// the node ID is the one its key would have (identity.PublicKey.ID).
func (t *Tunnel) Peer() (nodeID string, key identity.PublicKey) { return t.peer.nodeID, t.peer.key }

// Registered reports whether the ledger knew the peer's key when the tunnel opened. A
// tunnel with an unregistered peer (a node joining) must be limited to the join service.
func (t *Tunnel) Registered() bool { return t.peer.registered }

// Open opens a new stream to the peer.
func (t *Tunnel) Open(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	// yamux's Open blocks only while too many opens await the peer's answer; it does
	// not take a context, so it runs aside and a late stream is closed.
	ch := make(chan result, 1)
	go func() {
		c, err := t.sess.Open()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, t.streamErr("open stream", r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Accept waits for the peer to open a stream.
func (t *Tunnel) Accept(ctx context.Context) (net.Conn, error) {
	c, err := t.sess.AcceptStreamWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, t.streamErr("accept stream", err)
	}
	return c, nil
}

func (t *Tunnel) streamErr(op string, err error) error {
	if terr := t.Err(); terr != nil {
		return fmt.Errorf("%s: %w", op, terr)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Close closes the tunnel and every stream at once, telling the peer if it can do so
// without waiting. It returns when the tunnel's goroutines have ended.
func (t *Tunnel) Close() error {
	t.fail(ErrClosed)
	<-t.loopDone
	return nil
}

// Done is closed when the tunnel has ended; Err says why.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Err returns nil while the tunnel is open, then why it ended: ErrClosed after Close,
// ErrPeerClosed, a failed rekey, a lost connection.
func (t *Tunnel) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Epoch returns the epoch this side sends in: 0 at first, one more after each rekey.
func (t *Tunnel) Epoch() uint64 { return t.epoch.Load() }

// Stats returns the tunnel's counters.
func (t *Tunnel) Stats() Stats {
	return Stats{BytesSent: t.sent.Load(), BytesReceived: t.recv.Load(), Rekeys: int(t.rekeys.Load())}
}

// LocalAddr returns the local address of the tunnel's current connection.
func (t *Tunnel) LocalAddr() net.Addr { return t.cur.Load().tls.LocalAddr() }

// RemoteAddr returns the peer's address on the tunnel's current connection.
func (t *Tunnel) RemoteAddr() net.Addr { return t.cur.Load().tls.RemoteAddr() }

// fail ends the tunnel with err (the first error wins). It never waits: it closes the
// connections, which unblocks every reader and writer, and leaves the rest of the
// teardown to the epoch loop.
func (t *Tunnel) fail(err error) {
	t.mu.Lock()
	if t.err != nil {
		t.mu.Unlock()
		return
	}
	t.err = err
	close(t.done)
	conns := make([]*epochConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.conns = nil
	t.mu.Unlock()
	t.cancel()

	switch {
	case errors.Is(err, ErrClosed):
		t.log.Debug("tunnel closed")
		t.tellPeer("closed")
	case errors.Is(err, ErrPeerClosed), errors.Is(err, ErrConnLost):
		t.log.Info("tunnel ended", "err", err)
	default:
		t.log.Warn("tunnel failed", "err", err)
		t.tellPeer(err.Error())
	}
	for _, c := range conns {
		c.close()
	}
}

// tellPeer sends a close frame if no write is in progress; a blocked writer means the
// peer is not reading, and Close must not wait for it.
func (t *Tunnel) tellPeer(reason string) {
	if !t.wmu.TryLock() {
		return
	}
	defer t.wmu.Unlock()
	c := t.wconn
	c.raw.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.tls.Write(appendFrame(nil, frameClose, closePayload(reason))); err == nil {
		c.raw.Flush()
	}
}

// track adds a connection to the set Close closes; it fails if the tunnel has ended.
func (t *Tunnel) track(c *epochConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Tunnel) untrack(c *epochConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns != nil {
		delete(t.conns, c)
	}
}

// retire releases one direction of c; after both, c is closed.
func (t *Tunnel) retire(c *epochConn) {
	if c.halves.Add(-1) == 0 {
		t.untrack(c)
		c.close()
	}
}

// install makes nc, a connection of the next epoch that both sides have accepted, the
// one this side writes on, after an epoch-end on the old one; the reader moves to it
// when it reaches the peer's epoch-end.
func (t *Tunnel) install(nc *epochConn) (old *epochConn, err error) {
	if !t.track(nc) {
		nc.close()
		return nil, t.Err()
	}
	select {
	case t.next <- nc:
	default:
		return nil, fmt.Errorf("%w: more than %d epochs ahead of the reader", ErrProtocol, maxPendingEpochs)
	}
	t.wmu.Lock()
	old = t.wconn
	_, err = old.tls.Write(appendFrame(nil, frameEpochEnd, epochEndPayload(t.sent.Load())))
	if err == nil {
		err = old.raw.Flush()
	}
	t.wconn = nc
	t.cur.Store(nc)
	t.epochSent.Store(0)
	// The start first: whoever sees the new epoch sees its start.
	t.epochStart.Store(time.Now().UnixNano())
	t.epoch.Store(nc.epoch)
	t.wmu.Unlock()
	if err != nil {
		return nil, t.connErr(old, "write epoch end", err)
	}
	t.retire(old)
	t.rekeys.Add(1)
	select {
	case t.newEpoch <- struct{}{}:
	default:
	}
	return old, nil
}

// connErr names an I/O error on c, or returns why the tunnel ended if it has.
func (t *Tunnel) connErr(c *epochConn, op string, err error) error {
	if terr := t.Err(); terr != nil {
		return terr
	}
	if errors.Is(err, ErrProtocol) {
		return fmt.Errorf("epoch %d: %w", c.epoch, err)
	}
	return fmt.Errorf("%w: epoch %d: %s: %w", ErrConnLost, c.epoch, op, err)
}

// wake asks the epoch loop to look at the counters or at a peer's request.
func (t *Tunnel) wake() {
	select {
	case t.rekeyWake <- struct{}{}:
	default:
	}
}

// stream is the tunnel's ordered byte stream, as yamux sees it.
type stream struct{ t *Tunnel }

// Write writes p as data frames on the current epoch's connection. yamux writes each
// of its frames as a header then a body; a data header is held back and sent in one
// frame with its body, which saves a TLS record and a system call.
func (s stream) Write(p []byte) (int, error) {
	t := s.t
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := t.Err(); err != nil {
		return 0, err
	}
	if t.pending == nil && isYamuxDataHeader(p) {
		t.pending = append(t.pendBuf[:0], p...)
		return len(p), nil
	}
	c := t.wconn
	written := len(p)
	prefix := t.pending
	t.pending = nil
	total := len(prefix) + len(p)
	for len(prefix)+len(p) > 0 {
		body := p[:min(len(p), maxData-len(prefix))]
		if err := t.writeData(c, prefix, body); err != nil {
			return 0, t.connErr(c, "write", err)
		}
		p = p[len(body):]
		prefix = nil
	}
	if err := c.raw.Flush(); err != nil {
		return 0, t.connErr(c, "write", err)
	}
	t.sent.Add(uint64(total))
	if t.epochSent.Add(int64(total)) >= t.e.cfg.RekeyBytes {
		t.wake()
	}
	return written, nil
}

// smallData is the largest payload copied next to its header into one TLS record.
const smallData = 512

// writeData writes one data frame of prefix and p. A small frame goes in one record;
// a large one as its header (with the prefix) then its body, without copying the body.
func (t *Tunnel) writeData(c *epochConn, prefix, p []byte) error {
	n := len(prefix) + len(p)
	b := appendHeader(t.frameBuf[:0], frameData, n)
	b = append(b, prefix...)
	if len(p) <= smallData {
		b = append(b, p...)
		p = nil
	}
	t.frameBuf = b
	if _, err := c.tls.Write(b); err != nil {
		return err
	}
	if len(p) > 0 {
		if _, err := c.tls.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// isYamuxDataHeader reports whether p is a yamux header of a data frame with a body
// (yamux spec: version 0, type 0, length in the last four bytes).
func isYamuxDataHeader(p []byte) bool {
	return len(p) == 12 && p[0] == 0 && p[1] == 0 && binary.BigEndian.Uint32(p[8:]) > 0
}

// Read reads the stream: data frames of the current read epoch, handling the control
// frames between them.
func (s stream) Read(p []byte) (int, error) {
	t := s.t
	for {
		c := t.rconn
		if t.remain > 0 {
			if len(p) > t.remain {
				p = p[:t.remain]
			}
			n, err := c.tls.Read(p)
			t.remain -= n
			if n > 0 {
				t.recv.Add(uint64(n))
				if t.epochRecv.Add(int64(n)) >= t.e.cfg.RekeyBytes {
					t.wake()
				}
				return n, nil
			}
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, t.readFailed(c, err)
		}
		h, err := readHeader(c.tls, &t.hdr)
		if err != nil {
			return 0, t.readFailed(c, err)
		}
		switch h.typ {
		case frameData:
			t.remain = h.n
		case frameEpochEnd:
			if err := t.endReadEpoch(c, h); err != nil {
				return 0, err
			}
		case frameRekey:
			if t.role != roleDialer {
				return 0, t.readFailed(c, fmt.Errorf("%w: rekey request from the dialer", ErrProtocol))
			}
			p, err := readPayload(c.tls, h)
			if err != nil {
				return 0, t.readFailed(c, err)
			}
			leave, err := decodeRekey(p)
			if err != nil {
				return 0, t.readFailed(c, err)
			}
			t.peerAsked.Store(leave + 1)
			t.wake()
		case frameClose:
			p, err := readPayload(c.tls, h)
			if err != nil {
				return 0, t.readFailed(c, err)
			}
			reason, err := decodeClose(p)
			if err != nil {
				return 0, t.readFailed(c, err)
			}
			err = fmt.Errorf("%w: %s", ErrPeerClosed, reason)
			t.fail(err)
			return 0, err
		default:
			return 0, t.readFailed(c, fmt.Errorf("%w: %s frame inside an established tunnel", ErrProtocol, frameName(h.typ)))
		}
	}
}

// endReadEpoch checks the peer's epoch-end against what was read, retires the read
// half of c, and moves to the next epoch's connection.
func (t *Tunnel) endReadEpoch(c *epochConn, h frameHeader) error {
	p, err := readPayload(c.tls, h)
	if err != nil {
		return t.readFailed(c, err)
	}
	off, err := decodeEpochEnd(p)
	if err != nil {
		return t.readFailed(c, err)
	}
	if got := t.recv.Load(); off != got {
		return t.readFailed(c, fmt.Errorf("%w: epoch %d ended at stream offset %d, but %d bytes arrived", ErrProtocol, c.epoch, off, got))
	}
	var nc *epochConn
	select {
	case nc = <-t.next:
	case <-t.done:
		return t.Err()
	}
	if nc.epoch != c.epoch+1 {
		return t.readFailed(c, fmt.Errorf("%w: epoch %d follows epoch %d", ErrProtocol, nc.epoch, c.epoch))
	}
	t.retire(c)
	t.rconn = nc
	t.epochRecv.Store(0)
	t.repoch.Store(nc.epoch)
	return nil
}

// readFailed ends the tunnel for an error read on c and returns the tunnel's error.
func (t *Tunnel) readFailed(c *epochConn, err error) error {
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("connection closed without a close frame: %w", io.ErrUnexpectedEOF)
	}
	t.fail(t.connErr(c, "read", err))
	return t.Err()
}

// Close is called by yamux when the session ends; the tunnel ends with it, for the
// reason yamux logged last.
func (s stream) Close() error {
	s.t.fail(s.t.muxLog.ended())
	return nil
}

// LocalAddr and RemoteAddr give yamux's streams their addresses.
func (s stream) LocalAddr() net.Addr  { return s.t.LocalAddr() }
func (s stream) RemoteAddr() net.Addr { return s.t.RemoteAddr() }

// muxLog takes yamux's log lines into the tunnel's log (at debug level: yamux reports
// every end of a session as an error) and keeps the last error, which says why the
// multiplexer ended when it ends on its own.
type muxLog struct {
	log  *slog.Logger
	last atomic.Pointer[string]
}

func (m *muxLog) Print(v ...any)                 { m.line(fmt.Sprint(v...)) }
func (m *muxLog) Printf(format string, v ...any) { m.line(fmt.Sprintf(format, v...)) }
func (m *muxLog) Println(v ...any)               { m.line(fmt.Sprintln(v...)) }

func (m *muxLog) line(s string) {
	s = strings.TrimSpace(s)
	if msg, ok := strings.CutPrefix(s, "[ERR] "); ok {
		m.last.Store(&msg)
	}
	m.log.Debug("stream multiplexer", "msg", s)
}

// ended is the error of a multiplexer that ended.
func (m *muxLog) ended() error {
	if last := m.last.Load(); last != nil {
		return fmt.Errorf("%w: stream multiplexer ended: %s", ErrConnLost, *last)
	}
	return fmt.Errorf("%w: stream multiplexer ended", ErrConnLost)
}
