package tunnel

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// readerTunnel returns a tunnel without a multiplexer whose reader reads in, as the
// bytes of epoch 0 and of every later epoch in turn: for tests of the frame reader.
func readerTunnel(t testing.TB, role byte, in []byte) *Tunnel {
	cfg := testConfig(testKey(t, 0), nil, nil).withDefaults()
	r := bytes.NewReader(in)
	mk := func(epoch uint64) *epochConn {
		fc := &fakeConn{Reader: r}
		return newEpochConn(epoch, fc, &batchConn{Conn: fc})
	}
	tun := newTunnel(&endpoint{cfg: cfg}, role, [16]byte{1}, peerIdentity{nodeID: "peer"}, mk(0))
	go func() { // the next epochs, as handshakes would establish them
		for epoch := uint64(1); ; epoch++ {
			select {
			case tun.next <- mk(epoch):
			case <-tun.done:
				return
			}
		}
	}()
	return tun
}

// readAll reads the tunnel's stream until it fails.
func readAll(tun *Tunnel) ([]byte, error) {
	defer tun.fail(ErrClosed)
	var out []byte
	buf := make([]byte, 7) // small reads cross frame boundaries
	for {
		n, err := stream{tun}.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

func TestStreamReader(t *testing.T) {
	t.Parallel()
	data := func(s string) []byte { return appendFrame(nil, frameData, []byte(s)) }
	end := func(off uint64) []byte { return appendFrame(nil, frameEpochEnd, epochEndPayload(off)) }
	for _, tc := range []struct {
		name  string
		role  byte
		in    []byte
		want  string // bytes of the stream read before the error
		err   error
		msg   string
		epoch uint64 // the reader's epoch at the end
	}{
		{"across epochs", roleListener, frames(data("hello, "), end(7), data("tunnel"), end(13), data("!")),
			"hello, tunnel!", ErrConnLost, "connection closed without a close frame", 2},
		{"close", roleListener, frames(data("bye"), appendFrame(nil, frameClose, []byte("node revoked"))),
			"bye", ErrPeerClosed, "tunnel closed by peer: node revoked", 0},
		{"epoch-end at the wrong offset", roleListener, frames(data("abc"), end(2)),
			"abc", ErrProtocol, "epoch 0 ended at stream offset 2, but 3 bytes arrived", 0},
		{"rekey request to the listener", roleListener, frames(data("a"), appendFrame(nil, frameRekey, make([]byte, 8))),
			"a", ErrProtocol, "rekey request from the dialer", 0},
		{"hello inside the tunnel", roleDialer, frames(appendFrame(nil, frameHello, []byte{1})),
			"", ErrProtocol, "hello frame inside an established tunnel", 0},
		{"oversized data", roleDialer, []byte{frameData, 0x10, 0, 0},
			"", ErrProtocol, "data frame of 1048576 bytes", 0},
		{"unknown type", roleDialer, []byte{42, 0, 0, 0},
			"", ErrProtocol, "unknown frame type 42", 0},
		{"truncated data", roleDialer, data("abcdef")[:6],
			"ab", ErrConnLost, "unexpected EOF", 0},
		{"truncated header", roleDialer, []byte{frameData, 0},
			"", ErrProtocol, "truncated frame header", 0},
		{"truncated epoch-end", roleDialer, end(0)[:6],
			"", ErrProtocol, "truncated epoch-end frame", 0},
	} {
		tun := readerTunnel(t, tc.role, tc.in)
		got, err := readAll(tun)
		if string(got) != tc.want || !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: read %q, %v; want %q, %v with %q", tc.name, got, err, tc.want, tc.err, tc.msg)
		}
		if !errors.Is(tun.Err(), tc.err) {
			t.Errorf("%s: tunnel ended with %v, want %v", tc.name, tun.Err(), tc.err)
		}
		if tun.repoch.Load() != tc.epoch {
			t.Errorf("%s: reader in epoch %d, want %d", tc.name, tun.repoch.Load(), tc.epoch)
		}
		if n := tun.Stats().BytesReceived; n != uint64(len(tc.want)) {
			t.Errorf("%s: %d bytes counted, want %d", tc.name, n, len(tc.want))
		}
	}
}

func TestStreamReaderTakesRekeyRequests(t *testing.T) {
	t.Parallel()
	rekey := appendFrame(nil, frameRekey, epochEndPayload(0))
	tun := readerTunnel(t, roleDialer, frames(rekey, appendFrame(nil, frameData, []byte("x"))))
	got, _ := readAll(tun)
	if string(got) != "x" || tun.peerAsked.Load() != 1 {
		t.Fatalf("read %q, peer asked %d; want the request to leave epoch 0 recorded", got, tun.peerAsked.Load())
	}
}

// TestStreamWriterFrames checks what the writer puts on the wire: yamux's data header
// joined with its body in one frame, bodies split at the frame limit.
func TestStreamWriterFrames(t *testing.T) {
	t.Parallel()
	tun := readerTunnel(t, roleDialer, nil)
	defer tun.fail(ErrClosed)
	w := stream{tun}
	hdr := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0x04, 0, 1} // yamux data header, stream 1, 0x40001 bytes
	body := bytes.Repeat([]byte{'b'}, 0x40001)
	if n, err := w.Write(hdr); n != len(hdr) || err != nil {
		t.Fatalf("header: %d, %v", n, err)
	}
	if n, err := w.Write(body); n != len(body) || err != nil {
		t.Fatalf("body: %d, %v", n, err)
	}
	if n, err := w.Write([]byte("tail")); n != 4 || err != nil {
		t.Fatalf("tail: %d, %v", n, err)
	}
	wire := tun.wconn.tls.(*fakeConn).Buffer.Bytes()
	var got []byte
	var sizes []int
	r := bytes.NewReader(wire)
	var hb [headerLen]byte
	for r.Len() > 0 {
		h, err := readHeader(r, &hb)
		if err != nil || h.typ != frameData {
			t.Fatalf("frame %d: %+v %v", len(sizes), h, err)
		}
		p, _ := readPayload(r, h)
		got = append(got, p...)
		sizes = append(sizes, h.n)
	}
	if want := frames(hdr, body, []byte("tail")); !bytes.Equal(got, want) {
		t.Fatal("the stream on the wire differs from what was written")
	}
	if len(sizes) != 3 || sizes[0] != maxData || sizes[1] != 12+0x40001-maxData || sizes[2] != 4 {
		t.Fatalf("frame sizes %v, want [%d %d 4]", sizes, maxData, 12+0x40001-maxData)
	}
	if s := tun.Stats(); s.BytesSent != uint64(len(got)) {
		t.Fatalf("BytesSent %d, want %d", s.BytesSent, len(got))
	}
}
