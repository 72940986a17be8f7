// Package dgram carries datagrams over a byte stream: each datagram is one frame, a
// 2-byte big-endian length then the payload. The proxy sends the datagrams of a UDP
// session to a replica on another node through a tunnel stream (under the receipt
// layer, which counts and hashes the frames' bytes like any other); the node at the
// other end turns the frames back into datagrams. Both ends use Conn.
package dgram

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// MaxPayload is the largest datagram a frame carries: the largest UDP payload over
// IPv4 (65,535 less the IP and UDP headers).
const MaxPayload = 65507

// headerLen is the size of a frame's length prefix.
const headerLen = 2

// ErrTooLarge is the error of a datagram, or a frame, longer than MaxPayload.
var ErrTooLarge = fmt.Errorf("datagram longer than %d bytes", MaxPayload)

// AppendFrame appends payload to dst as one frame.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("frame of %d bytes: %w", len(payload), ErrTooLarge)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(payload)))
	return append(dst, payload...), nil
}

// ReadFrame reads one frame from r into p and returns the datagram's length in p. As a
// UDP socket does, it cuts a datagram longer than p to len(p) and drops the rest. It
// returns io.EOF when r ends before a frame, io.ErrUnexpectedEOF when it ends inside
// one, and an error wrapping ErrTooLarge for a length over MaxPayload (the stream is
// then out of step and must be closed).
func ReadFrame(r io.Reader, p []byte) (int, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("frame header: %w", err)
		}
		return 0, err // io.EOF: the stream ended between frames
	}
	size := int(binary.BigEndian.Uint16(h[:]))
	if size > MaxPayload {
		return 0, fmt.Errorf("frame of %d bytes: %w", size, ErrTooLarge)
	}
	n := min(size, len(p))
	if _, err := io.ReadFull(r, p[:n]); err != nil {
		return 0, fmt.Errorf("frame of %d bytes: %w", size, eofIsUnexpected(err))
	}
	if rest := int64(size - n); rest > 0 {
		if _, err := io.CopyN(io.Discard, r, rest); err != nil {
			return 0, fmt.Errorf("frame of %d bytes: %w", size, eofIsUnexpected(err))
		}
	}
	return n, nil
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Conn is a net.Conn of datagrams over a stream: one Write sends one datagram as one
// frame (in one Write of the stream), one Read returns one datagram. Reads and writes
// may run at once; Close, CloseWrite and the deadlines go to the stream.
type Conn struct {
	net.Conn

	rmu sync.Mutex
	wmu sync.Mutex
	buf []byte // guarded by wmu
}

// NewConn returns a Conn of datagrams over stream.
func NewConn(stream net.Conn) *Conn { return &Conn{Conn: stream} }

// Read reads one datagram into p (cut to len(p) when longer, as UDP does).
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return ReadFrame(c.Conn, p)
}

// Write sends p as one datagram; p may not be longer than MaxPayload.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.buf, err = AppendFrame(c.buf[:0], p); err != nil {
		return 0, err
	}
	if _, err := c.Conn.Write(c.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite ends the sending direction of the stream (the receipt layer sends its
// END then); it returns an error wrapping errors.ErrUnsupported when the stream
// cannot end one direction alone, and the caller should then close it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("dgram: stream %T cannot close its sending side alone: %w", c.Conn, errors.ErrUnsupported)
}
