package gossip

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"qnet.dev/qnet/mesh"
)

// transport is a memberlist.NodeAwareTransport over the mesh: packets travel on one
// long-lived stream per peer, each as a 4-byte length and the bytes; streams are mesh
// streams. Sends never block memberlist: each peer has a queue, and a full queue drops
// packets as a congested UDP socket would.
type transport struct {
	cfg  Config
	log  *slog.Logger
	host string
	port int

	packets chan *memberlist.Packet
	streams chan net.Conn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peerQueue
}

type peerQueue struct {
	q chan []byte
}

func newTransport(cfg Config, host string, port int, log *slog.Logger) *transport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &transport{
		cfg: cfg, log: log, host: host, port: port,
		packets: make(chan *memberlist.Packet, 256), streams: make(chan net.Conn),
		ctx: ctx, cancel: cancel, peers: map[string]*peerQueue{},
	}
	cfg.Mesh.Handle(packetService, false, t.servePackets)
	cfg.Mesh.Handle(streamService, false, t.serveStream)
	return t
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	ip := net.ParseIP(t.host)
	if ip == nil {
		return nil, 0, fmt.Errorf("mesh host %q is not an IP address", t.host)
	}
	return ip, t.port, nil
}

// PacketCh implements memberlist.Transport.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh implements memberlist.Transport.
func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

func (t *transport) nodeOf(a memberlist.Address) (string, error) {
	if a.Name != "" {
		return a.Name, nil
	}
	if id, ok := t.cfg.ResolveAddr(a.Addr); ok {
		return id, nil
	}
	return "", fmt.Errorf("gossip: no node known at %s", a.Addr)
}

// WriteTo implements memberlist.Transport.
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	id, err := t.nodeOf(a)
	if err != nil {
		return time.Time{}, err
	}
	if len(b) > MaxPacket {
		return time.Time{}, fmt.Errorf("gossip packet of %d bytes: at most %d", len(b), MaxPacket)
	}
	q := t.queue(id)
	select {
	case q.q <- append([]byte(nil), b...):
	default: // congested: dropped, as UDP would
	}
	return time.Now(), nil
}

func (t *transport) queue(id string) *peerQueue {
	t.mu.Lock()
	defer t.mu.Unlock()
	if q, ok := t.peers[id]; ok {
		return q
	}
	q := &peerQueue{q: make(chan []byte, 128)}
	t.peers[id] = q
	t.wg.Go(func() { t.sendLoop(id, q) })
	return q
}

// peerIdle is how long a peer's sender waits for a packet before it ends.
const peerIdle = time.Minute

// sendLoop writes a peer's queued packets on its packet stream, opening it again after
// a failure; packets that cannot be sent are dropped.
func (t *transport) sendLoop(id string, q *peerQueue) {
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var hdr [4]byte
	idle := time.NewTimer(peerIdle)
	defer idle.Stop()
	for {
		var b []byte
		select {
		case <-t.ctx.Done():
			return
		case <-idle.C:
			// No packet for a while (the node left, or was removed): end this sender; the
			// next packet for the peer starts another.
			t.mu.Lock()
			if len(q.q) == 0 {
				delete(t.peers, id)
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
			idle.Reset(peerIdle)
			continue
		case b = <-q.q:
		}
		idle.Reset(peerIdle)
		if conn == nil {
			ctx, cancel := context.WithTimeout(t.ctx, time.Second)
			c, err := t.cfg.Mesh.Open(ctx, id, packetService)
			cancel()
			if err != nil {
				t.log.Debug("gossip packet dropped", "peer", id, "err", err)
				continue
			}
			conn = c
		}
		binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(append(hdr[:], b...)); err != nil {
			conn.Close()
			conn = nil
		}
	}
}

func (t *transport) servePackets(ctx context.Context, conn net.Conn, peer mesh.Peer) {
	from := t.addrOf(peer.NodeID)
	for {
		buf, err := readPacket(conn)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				t.log.Debug("gossip packet stream ended", "peer", peer.NodeID, "err", err)
			}
			return
		}
		select {
		case t.packets <- &memberlist.Packet{Buf: buf, From: from, Timestamp: time.Now()}:
		case <-ctx.Done():
			return
		case <-t.ctx.Done():
			return
		}
	}
}

// readPacket reads one length-prefixed gossip packet.
func readPacket(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxPacket {
		return nil, fmt.Errorf("gossip packet of %d bytes: want 1 to %d", n, MaxPacket)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		// io.EOF means a clean end of the stream, between packets; a packet cut short
		// after its length is not one.
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated gossip packet of %d bytes: %w", n, err)
	}
	return buf, nil
}

func (t *transport) addrOf(id string) net.Addr {
	if a, ok := t.cfg.Resolve(id); ok {
		if tcp, err := net.ResolveTCPAddr("tcp", a); err == nil {
			return tcp
		}
	}
	return mesh.NodeAddr(id)
}

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	id, err := t.nodeOf(a)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	return t.cfg.Mesh.Open(ctx, id, streamService)
}

func (t *transport) serveStream(ctx context.Context, conn net.Conn, peer mesh.Peer) {
	c := &heldConn{Conn: conn, closed: make(chan struct{})}
	select {
	case t.streams <- c:
	case <-ctx.Done():
		return
	case <-t.ctx.Done():
		return
	}
	select {
	case <-c.closed:
	case <-ctx.Done():
	case <-t.ctx.Done():
	}
}

type heldConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *heldConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// Shutdown implements memberlist.Transport.
func (t *transport) Shutdown() error {
	t.cancel()
	t.wg.Wait()
	return nil
}
