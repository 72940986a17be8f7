package tunnel

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// batchSize is how many bytes of TLS records a connection gathers before one write to
// the socket. crypto/tls writes each 16 KiB record with its own system call; gathering
// them halves the CPU cost per byte on a busy stream.
const batchSize = 256 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}

// batchConn is the socket under a TLS connection. Once batching is on, records are
// gathered and written at each Flush, which the tunnel calls at the end of every
// write. During the handshake it writes through, since the handshake must not wait.
type batchConn struct {
	net.Conn

	// mu guards buf: crypto/tls may write on its own (the answer to a peer's
	// KeyUpdate) while the tunnel writes.
	mu  sync.Mutex
	buf *[]byte // nil while writing through
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.Conn.Write(p)
	}
	buf := *b.buf
	if len(buf)+len(p) > cap(buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		buf = *b.buf
		if len(p) > cap(buf) {
			return b.Conn.Write(p)
		}
	}
	*b.buf = append(buf, p...)
	return len(p), nil
}

// Flush writes what was gathered.
func (b *batchConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *batchConn) flushLocked() error {
	if b.buf == nil || len(*b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	return err
}

// startBatching turns batching on, after the handshake.
func (b *batchConn) startBatching() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
}

// Close closes the socket and returns the buffer to the pool.
func (b *batchConn) Close() error {
	err := b.Conn.Close()
	b.mu.Lock()
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		batchPool.Put(b.buf)
		b.buf = nil
	}
	b.mu.Unlock()
	return err
}

// frameConn is what a tunnel reads and writes frames on: a *tls.Conn, or in tests
// anything that carries bytes.
type frameConn interface {
	io.ReadWriter
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// epochConn is the TLS connection of one epoch.
type epochConn struct {
	epoch uint64
	tls   frameConn
	raw   *batchConn
	// halves counts the directions still open on this connection; when both have
	// seen their epoch-end, the connection closes.
	halves  atomic.Int32
	retired chan struct{}
	once    sync.Once
}

func newEpochConn(epoch uint64, tc frameConn, raw *batchConn) *epochConn {
	ec := &epochConn{epoch: epoch, tls: tc, raw: raw, retired: make(chan struct{})}
	ec.halves.Store(2)
	return ec
}

// close closes the socket at once. The TLS close_notify is not sent: it could block on
// a full socket, and a tunnel's connections end by epoch-end or close frames.
func (ec *epochConn) close() {
	ec.once.Do(func() {
		ec.raw.Close()
		close(ec.retired)
	})
}
