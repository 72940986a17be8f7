package receipt

import (
	"hash"
	"net"
	"sync"

	"qnet.dev/qnet/ledger"
)

// Tally is what crossed one way of a connection so far: the number of bytes and the
// hash of them in order, by the algorithm Alg.
type Tally struct {
	Bytes int64
	Hash  ledger.Hash
	Alg   HashAlg
}

// tally accumulates a Tally. The hash runs over the caller's own buffer; only BLAKE3
// copies the part of a 16 KiB group that a write leaves unfinished. A mutex, not
// atomics, because the hash state and the count must move together for a snapshot to
// be meaningful.
type tally struct {
	alg HashAlg // fixed before the first add
	mu  sync.Mutex
	n   int64
	h   hash.Hash
}

func (t *tally) add(p []byte) {
	if len(p) == 0 {
		return
	}
	t.mu.Lock()
	if t.h == nil {
		t.h = t.alg.newHash()
	}
	t.h.Write(p) // a hash.Hash never fails
	t.n += int64(len(p))
	t.mu.Unlock()
}

func (t *tally) count() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *tally) get() Tally {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := Tally{Bytes: t.n, Alg: t.alg}
	if t.h == nil {
		t.alg.newHash().Sum(out.Hash[:0])
		return out
	}
	t.h.Sum(out.Hash[:0]) // Sum works on a copy of the state; hashing goes on
	return out
}

// Meter wraps a net.Conn and keeps a Tally of the bytes each way, hashed with
// DefaultHash(): those its Write handed to the connection and those its Read returned.
// It is for connections with no frame layer (the local side of a proxy, ingress from
// outside); a Conn from WrapDialer or WrapAcceptor keeps the same tallies of its
// payload itself.
//
// One goroutine may Read while another Writes, and Sent and Received may be called at
// any time from any goroutine.
type Meter struct {
	net.Conn
	sent, recv tally
}

// NewMeter returns c with its bytes counted and hashed both ways.
func NewMeter(c net.Conn) *Meter {
	return &Meter{Conn: c, sent: tally{alg: DefaultHash()}, recv: tally{alg: DefaultHash()}}
}

// Read reads from the connection and adds what it returns to the received tally.
func (m *Meter) Read(p []byte) (int, error) {
	n, err := m.Conn.Read(p)
	m.recv.add(p[:n])
	return n, err
}

// Write writes to the connection and adds what was written to the sent tally; on a
// short write only the bytes the connection took are counted.
func (m *Meter) Write(p []byte) (int, error) {
	n, err := m.Conn.Write(p)
	m.sent.add(p[:n])
	return n, err
}

// Sent returns the tally of the bytes written so far.
func (m *Meter) Sent() Tally { return m.sent.get() }

// Received returns the tally of the bytes read so far.
func (m *Meter) Received() Tally { return m.recv.get() }
