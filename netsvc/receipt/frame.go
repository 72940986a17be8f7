package receipt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Frame types (see the package comment for the wire format).
const (
	frameHello  byte = 1
	frameData   byte = 2
	frameEnd    byte = 3
	frameView   byte = 4
	frameRefuse byte = 5
)

// Limits of the frame layer.
const (
	// MaxFrame is the largest frame body; a header announcing more is refused.
	MaxFrame = 64 << 10
	// MaxReason is the largest refusal reason.
	MaxReason = 1024
	// headerLen is the size of a frame header: type and big-endian length.
	headerLen = 5
	// helloVersion is the protocol version this node's HELLO carries: 2 names the
	// payload hash. It still accepts helloSHA256, the version before it, whose flows
	// are hashed with SHA-256.
	helloVersion = 2
	helloSHA256  = 1
)

var (
	// ErrProtocol is returned (wrapped) when a peer breaks the wire format: an unknown
	// or misplaced frame, a malformed body.
	ErrProtocol = errors.New("receipt protocol error")
	// ErrFrameTooLarge is returned (wrapped, with ErrProtocol) for a frame header that
	// announces more than MaxFrame bytes.
	ErrFrameTooLarge = errors.New("frame too large")
)

func frameName(t byte) string {
	switch t {
	case frameHello:
		return "HELLO"
	case frameData:
		return "DATA"
	case frameEnd:
		return "END"
	case frameView:
		return "VIEW"
	case frameRefuse:
		return "REFUSE"
	}
	return fmt.Sprintf("type-%d", t)
}

type header struct {
	typ byte
	n   int
}

// parseHeader decodes and checks a frame header: known type, and a length within the
// limits of that type.
func parseHeader(b [headerLen]byte) (header, error) {
	h := header{typ: b[0]}
	n := binary.BigEndian.Uint32(b[1:])
	if n > MaxFrame {
		return h, fmt.Errorf("%w: %w: %s frame of %d bytes, at most %d allowed", ErrProtocol, ErrFrameTooLarge, frameName(h.typ), n, MaxFrame)
	}
	h.n = int(n)
	switch h.typ {
	case frameHello, frameData, frameView:
		if h.n == 0 {
			return h, fmt.Errorf("%w: empty %s frame", ErrProtocol, frameName(h.typ))
		}
	case frameEnd:
		if h.n != 0 {
			return h, fmt.Errorf("%w: END frame with a %d-byte body, want none", ErrProtocol, h.n)
		}
	case frameRefuse:
		if h.n > MaxReason {
			return h, fmt.Errorf("%w: %w: REFUSE reason of %d bytes, at most %d allowed", ErrProtocol, ErrFrameTooLarge, h.n, MaxReason)
		}
	default:
		return h, fmt.Errorf("%w: unknown frame type %d (want 1 to 5)", ErrProtocol, h.typ)
	}
	return h, nil
}

// readHeader reads one frame header. It returns io.EOF only when r ends cleanly before
// the header starts.
func readHeader(r io.Reader) (header, error) {
	var b [headerLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return header{}, err
	}
	return parseHeader(b)
}

// readFrame reads a whole frame. The body is at most MaxFrame bytes, allocated only
// after the header passed its checks.
func readFrame(r io.Reader) (header, []byte, error) {
	h, err := readHeader(r)
	if err != nil {
		return h, nil, err
	}
	body := make([]byte, h.n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, fmt.Errorf("read %s frame body: %w", frameName(h.typ), err)
	}
	return h, body, nil
}

func appendHeader(b []byte, typ byte, n int) []byte {
	b = append(b, typ)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

func appendFrame(b []byte, typ byte, body []byte) []byte {
	return append(appendHeader(b, typ, len(body)), body...)
}

// Hello is the first frame of a flow: what the dialer asks for and who it is.
type Hello struct {
	Version     int       `json:"v"`
	Flow        string    `json:"flow"`
	Service     string    `json:"service"`
	Port        string    `json:"port"`
	Depot       string    `json:"depot"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	FromService string    `json:"fromService,omitempty"`
	FromDepot   string    `json:"fromDepot,omitempty"`
	Opened      time.Time `json:"opened"`
	// Hash is the payload hash both ends use (version 2; version 1 has none and
	// means SHA-256).
	Hash HashAlg `json:"hash,omitempty"`
}

// view is the flow's view at its start: nothing counted yet.
func (h *Hello) view() View {
	return View{
		Flow: h.Flow, Service: h.Service, Port: h.Port, Depot: h.Depot, From: h.From, To: h.To,
		FromService: h.FromService, FromDepot: h.FromDepot, Opened: h.Opened, Closed: h.Opened,
		HashAlg: h.Hash,
	}
}

func (h *Hello) check() error {
	switch {
	case h.Version == helloSHA256 && h.Hash != HashSHA256:
		return fmt.Errorf("%w: hello: version %d names hash %q; only version %d names one", ErrProtocol, h.Version, clip(string(h.Hash)), helloVersion)
	case h.Version == helloVersion && h.Hash == HashSHA256:
		return fmt.Errorf("%w: hello: version %d names no hash; want %q", ErrProtocol, h.Version, HashBLAKE3)
	case h.Version != helloSHA256 && h.Version != helloVersion:
		return fmt.Errorf("%w: hello: version %d, this node speaks %d and %d", ErrProtocol, h.Version, helloSHA256, helloVersion)
	}
	v := h.view()
	if err := v.Check(); err != nil {
		return fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	return nil
}

func decodeHello(body []byte) (Hello, error) {
	var h Hello
	if err := json.Unmarshal(body, &h); err != nil {
		return h, fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	return h, h.check()
}

// decodeView decodes a VIEW frame's body: a receipt signed by the sender (side) only.
func decodeView(body []byte, sender Side) (Receipt, error) {
	var r Receipt
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("%w: view: %w", ErrProtocol, err)
	}
	if err := r.Check(); err != nil {
		return r, fmt.Errorf("%w: view: %w", ErrProtocol, err)
	}
	if r.Dispute != nil {
		return r, fmt.Errorf("%w: view of flow %s carries a dispute", ErrProtocol, r.Flow)
	}
	if mine, _ := r.sig(sender); mine == nil {
		return r, fmt.Errorf("%w: view of flow %s lacks the %s's signature", ErrProtocol, r.Flow, sender)
	}
	if other, _ := r.sig(3 - sender); other != nil {
		return r, fmt.Errorf("%w: view of flow %s from the %s carries the other end's signature", ErrProtocol, r.Flow, sender)
	}
	return r, nil
}

func decodeRefuse(body []byte) (string, error) {
	if !utf8.Valid(body) {
		return "", fmt.Errorf("%w: REFUSE reason is not valid UTF-8", ErrProtocol)
	}
	return string(body), nil
}
