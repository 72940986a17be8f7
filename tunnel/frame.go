package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Frame types. The numbers are on the wire; never reuse one.
const (
	frameHello    byte = 1 // binding message
	frameAccept   byte = 2 // the dialer accepted the listener's binding; empty
	frameData     byte = 3 // bytes of the tunnel's stream
	frameEpochEnd byte = 4 // last frame of this direction on this connection; 8-byte stream offset
	frameRekey    byte = 5 // the listener asks for a new epoch; 8-byte epoch to leave
	frameClose    byte = 6 // the sender closes the tunnel or refuses the handshake; reason
)

// Frame sizes.
const (
	headerLen = 4
	// maxFrameLen is the largest length a header can carry (24 bits).
	maxFrameLen = 1<<24 - 1
	// maxData is the largest data payload: big enough that headers cost nothing, small
	// enough that a control frame never waits long behind one.
	maxData = 256 << 10
	// maxHello bounds a binding message: a hybrid key with its HPKE half and a hybrid
	// signature take about 6.5 KiB.
	maxHello = 16 << 10
	// maxReason bounds the reason of a close frame.
	maxReason = 1024
	// epochEndLen is the payload of an epoch-end frame: the stream offset.
	epochEndLen = 8
	// rekeyLen is the payload of a rekey frame: the epoch the listener wants to leave.
	rekeyLen = 8
)

// frameHeader is a decoded, checked frame header.
type frameHeader struct {
	typ byte
	n   int
}

func frameName(typ byte) string {
	switch typ {
	case frameHello:
		return "hello"
	case frameAccept:
		return "accept"
	case frameData:
		return "data"
	case frameEpochEnd:
		return "epoch-end"
	case frameRekey:
		return "rekey"
	case frameClose:
		return "close"
	}
	return fmt.Sprintf("unknown(%d)", typ)
}

// parseHeader decodes a frame header and checks its length against its type's limit.
func parseHeader(h [headerLen]byte) (frameHeader, error) {
	typ := h[0]
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	var lo, hi int
	switch typ {
	case frameHello:
		lo, hi = 1, maxHello
	case frameAccept:
		lo, hi = 0, 0
	case frameRekey:
		lo, hi = rekeyLen, rekeyLen
	case frameData:
		lo, hi = 1, maxData
	case frameEpochEnd:
		lo, hi = epochEndLen, epochEndLen
	case frameClose:
		lo, hi = 0, maxReason
	default:
		return frameHeader{}, fmt.Errorf("%w: unknown frame type %d (want 1 to 6)", ErrProtocol, typ)
	}
	if n < lo || n > hi {
		if lo == hi {
			return frameHeader{}, fmt.Errorf("%w: %s frame of %d bytes, want %d", ErrProtocol, frameName(typ), n, lo)
		}
		return frameHeader{}, fmt.Errorf("%w: %s frame of %d bytes, want %d to %d", ErrProtocol, frameName(typ), n, lo, hi)
	}
	return frameHeader{typ: typ, n: n}, nil
}

// appendHeader appends the header of a frame of type typ with an n-byte payload.
func appendHeader(b []byte, typ byte, n int) []byte {
	return append(b, typ, byte(n>>16), byte(n>>8), byte(n))
}

// appendFrame appends a whole frame. The payload must respect its type's limit.
func appendFrame(b []byte, typ byte, payload []byte) []byte {
	return append(appendHeader(b, typ, len(payload)), payload...)
}

// readHeader reads and checks one frame header. A stream that ends cleanly before the
// header returns io.EOF; one that ends inside it is a truncated frame.
func readHeader(r io.Reader, buf *[headerLen]byte) (frameHeader, error) {
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frameHeader{}, fmt.Errorf("%w: truncated frame header", ErrProtocol)
		}
		return frameHeader{}, err
	}
	return parseHeader(*buf)
}

// readPayload reads the whole payload of a control frame (never data: data is
// streamed).
func readPayload(r io.Reader, h frameHeader) ([]byte, error) {
	p := make([]byte, h.n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated %s frame: %d bytes announced", ErrProtocol, frameName(h.typ), h.n)
		}
		return nil, err
	}
	return p, nil
}

// readControl reads one whole frame that is not data.
func readControl(r io.Reader) (frameHeader, []byte, error) {
	var buf [headerLen]byte
	h, err := readHeader(r, &buf)
	if err != nil {
		return h, nil, err
	}
	if h.typ == frameData {
		return h, nil, fmt.Errorf("%w: data frame before the tunnel is established", ErrProtocol)
	}
	p, err := readPayload(r, h)
	return h, p, err
}

// epochEndPayload encodes the stream offset an epoch ended at.
func epochEndPayload(offset uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, offset)
}

// decodeEpochEnd decodes an epoch-end payload.
func decodeEpochEnd(p []byte) (uint64, error) {
	if len(p) != epochEndLen {
		return 0, fmt.Errorf("%w: epoch-end of %d bytes, want %d", ErrProtocol, len(p), epochEndLen)
	}
	return binary.BigEndian.Uint64(p), nil
}

// decodeRekey decodes a rekey payload: the epoch to leave.
func decodeRekey(p []byte) (uint64, error) {
	if len(p) != rekeyLen {
		return 0, fmt.Errorf("%w: rekey of %d bytes, want %d", ErrProtocol, len(p), rekeyLen)
	}
	return binary.BigEndian.Uint64(p), nil
}

// closePayload encodes a close reason, cut to the limit on a rune boundary.
func closePayload(reason string) []byte {
	reason = cleanReason(reason)
	for len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "")
	}
	return []byte(reason)
}

// decodeClose decodes a close reason. The peer's text reaches our logs and errors, so
// what is not printable is replaced rather than trusted.
func decodeClose(p []byte) (string, error) {
	if len(p) > maxReason {
		return "", fmt.Errorf("%w: close reason of %d bytes, want at most %d", ErrProtocol, len(p), maxReason)
	}
	r := cleanReason(string(p))
	if r == "" {
		r = "no reason given"
	}
	return r, nil
}

func cleanReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}
