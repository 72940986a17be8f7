package receipt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Fuzz targets for every decoder of what a peer sends or a disk holds: frames, the
// acceptor's whole stream, and log lines. Run one with:
//
//	go test -fuzz FuzzFrame ./netsvc/receipt

// viewFrame is a real VIEW frame of the dialer (node-a) of flow 9, of format 2
// (BLAKE3).
func viewFrame(t testing.TB) []byte { return viewFrameOf(t, HashBLAKE3) }

// viewFrameOf is viewFrame with the payload hashed by alg.
func viewFrameOf(t testing.TB, alg HashAlg) []byte {
	v := testView(flowID(9), "node-a", "node-b", 3, 0)
	v.HashAlg = alg
	body, err := json.Marshal(Receipt{View: v, FromSig: sig(t, "node-a", v)})
	if err != nil {
		t.Fatal(err)
	}
	return appendFrame(nil, frameView, body)
}

func seedFrames(f *testing.F) {
	f.Add([]byte{})
	f.Add(helloFrame(f, nil))
	f.Add(helloFrame(f, func(h *Hello) { h.Version, h.Hash = helloSHA256, HashSHA256 })) // a dialer of version 1
	f.Add(helloFrame(f, func(h *Hello) { h.Hash = "sha3" }))                             // an unknown hash
	f.Add(appendFrame(nil, frameData, []byte("payload")))
	f.Add(appendHeader(nil, frameEnd, 0))
	f.Add(appendFrame(nil, frameRefuse, []byte("flow web -> db not allowed")))
	f.Add(viewFrame(f))
	f.Add(viewFrameOf(f, HashSHA256))
	f.Add(appendFrame(nil, frameView, []byte(`{"hashAlg":"sha256"}`))) // SHA-256 named: not a format
	f.Add(appendHeader(nil, frameData, MaxFrame+1))                    // oversized
	f.Add(appendHeader(nil, frameRefuse, MaxReason+1))                 // oversized reason
	f.Add([]byte{0x7f, 0, 0, 0, 1, 'x'})                               // unknown type
	f.Add([]byte{frameData, 0, 0})                                     // cut header
	f.Add(appendHeader(nil, frameData, 100))                           // cut body
	f.Add(appendFrame(nil, frameHello, []byte(`{"v":1}`)))             // hello missing fields
	f.Add(appendFrame(nil, frameView, []byte(`{"flow":1}`)))           // view of the wrong type
	f.Add(bytes.Join([][]byte{appendFrame(nil, frameData, []byte("abc")), appendHeader(nil, frameEnd, 0), viewFrame(f)}, nil))
}

func FuzzFrame(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			start := len(in) - r.Len()
			h, body, err := readFrame(r)
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error outside the protocol's: %v", err)
				}
				if rest := in[start:]; len(rest) >= headerLen && binary.BigEndian.Uint32(rest[1:]) > MaxFrame && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("a header announcing %d bytes was not refused as too large: %v", binary.BigEndian.Uint32(rest[1:]), err)
				}
				return
			}
			if len(body) != h.n || h.n > MaxFrame {
				t.Fatalf("body of %d bytes for a header of %d", len(body), h.n)
			}
			if again := appendFrame(nil, h.typ, body); !bytes.Equal(again, in[start:len(in)-r.Len()]) {
				t.Fatal("frame does not re-encode to its bytes")
			}
			switch h.typ {
			case frameHello:
				if hl, err := decodeHello(body); err == nil {
					if err := hl.check(); err != nil {
						t.Fatalf("decoded hello fails its check: %v", err)
					}
				} else if !errors.Is(err, ErrProtocol) {
					t.Fatalf("hello error outside the protocol's: %v", err)
				}
			case frameView:
				for _, s := range []Side{Dialer, Acceptor} {
					if rc, err := decodeView(body, s); err == nil {
						if err := rc.Check(); err != nil {
							t.Fatalf("decoded view fails its check: %v", err)
						}
						rc.Leaf()
						VerifySide(rc, s, pub("node-a"))
					} else if !errors.Is(err, ErrProtocol) {
						t.Fatalf("view error outside the protocol's: %v", err)
					}
				}
			case frameRefuse:
				decodeRefuse(body)
			}
		}
	})
}

// streamConn is an acceptor's stream whose peer's bytes are fixed; writes are dropped.
type streamConn struct {
	net.Conn // nil: only the methods below are used
	r        io.Reader
}

func (c *streamConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *streamConn) SetDeadline(time.Time) error        { return nil }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzStream feeds an acceptor a valid HELLO and then anything: reading the payload
// and finishing must end in a receipt or an error, never a panic or a hang.
func FuzzStream(f *testing.F) {
	seedFrames(f)
	f.Add(bytes.Join([][]byte{appendFrame(nil, frameData, []byte("abc")), appendHeader(nil, frameEnd, 0), viewFrame(f)}, nil))
	hello := helloFrame(f, nil)
	cfg := config("node-b", "node-a")
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &streamConn{r: io.MultiReader(bytes.NewReader(hello), bytes.NewReader(in))}
		c, err := WrapAcceptor(context.Background(), conn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		n, rerr := io.Copy(io.Discard, c)
		if got := c.Received().Bytes; got != n {
			t.Fatalf("read %d payload bytes, counted %d", n, got)
		}
		r, err := c.Finish(context.Background())
		if err == nil {
			if rerr != nil {
				t.Fatalf("a complete receipt after a broken stream: %v", rerr)
			}
			if r.BytesOut != n {
				t.Fatalf("receipt says %d bytes out, %d were read", r.BytesOut, n)
			}
		}
		if r.ToSig != nil {
			if err := VerifySide(r, Acceptor, pub("node-b")); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzLogLine(f *testing.F) {
	v := testView(flowID(9), "node-a", "node-b", 3, 0)
	v1 := v // a receipt of format 1, from before receipts named their hash
	v1.HashAlg = HashSHA256
	for _, e := range []entry{
		{Receipt: &Receipt{View: v, FromSig: sig(f, "node-a", v)}},
		{Receipt: &Receipt{View: v1, FromSig: sig(f, "node-a", v1)}},
		{Batch: &Batch{Node: "node-a", Seq: 1, Count: 1, First: t0, Last: t0}},
		{Refusal: &Refusal{Node: "node-a", ToService: "db", At: t0, Reason: "no"}},
	} {
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte(`{"receipt":{},"batch":{}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := decodeEntry(line)
		if err != nil {
			return
		}
		b, err := json.Marshal(e)
		if err != nil {
			return // e.g. a time JSON reads but cannot write (year beyond 9999)
		}
		if _, err := decodeEntry(b); err != nil {
			t.Fatalf("a decoded record does not decode again: %v", err)
		}
		if e.Receipt != nil {
			e.Receipt.Leaf()
			e.Receipt.Check()
		}
	})
}
