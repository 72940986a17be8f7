package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"qnet.dev/qnet/mesh"
)

// Fuzz target for what a peer sends on its packet stream. Run it with:
// go test -fuzz FuzzReadPacket ./gossip

func packets(ps ...[]byte) []byte {
	var out []byte
	for _, p := range ps {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

// packetConn is a packet stream whose peer sent in and closed its side.
type packetConn struct{ *bytes.Reader }

func (packetConn) Write(p []byte) (int, error)      { return len(p), nil }
func (packetConn) Close() error                     { return nil }
func (packetConn) LocalAddr() net.Addr              { return mesh.NodeAddr("local") }
func (packetConn) RemoteAddr() net.Addr             { return mesh.NodeAddr("peer") }
func (packetConn) SetDeadline(time.Time) error      { return nil }
func (packetConn) SetReadDeadline(time.Time) error  { return nil }
func (packetConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadPacket reads a packet stream as a peer may send it: every packet read has 1
// to MaxPacket bytes and writes back as the bytes it came from; the stream ends cleanly
// (io.EOF) exactly at a packet boundary and with an error naming the problem otherwise;
// and the transport hands memberlist the same packets, from the peer's address.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{})
	f.Add(packets([]byte("ping")))
	f.Add(packets([]byte("ping"), []byte("ack"), bytes.Repeat([]byte{1}, 1000)))
	f.Add(packets([]byte("ping"))[:6])
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 1, 'x'}) // MaxPacket + 1
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var read [][]byte
		var end error
		for {
			start := len(in) - r.Len()
			p, err := readPacket(r)
			if err != nil {
				end = err
				break
			}
			if len(p) == 0 || len(p) > MaxPacket {
				t.Fatalf("a packet of %d bytes", len(p))
			}
			if used := in[start : len(in)-r.Len()]; !bytes.Equal(packets(p), used) {
				t.Fatalf("packet writes as % x, read from % x", packets(p), used)
			}
			read = append(read, p)
		}
		// A clean end (io.EOF, which the transport does not log) only where a packet ends.
		rest := in[len(packets(read...)):]
		if errors.Is(end, io.EOF) != (len(rest) == 0) {
			t.Fatalf("%d bytes after the last packet, stream ended with %v", len(rest), end)
		}

		// The transport's side: the same packets reach memberlist.
		tr := &transport{
			cfg:     Config{Resolve: func(string) (string, bool) { return "127.0.0.1:7701", true }},
			log:     slog.New(slog.DiscardHandler),
			packets: make(chan *memberlist.Packet, len(read)+1),
		}
		tr.ctx, tr.cancel = context.WithCancel(context.Background())
		defer tr.cancel()
		tr.servePackets(tr.ctx, packetConn{bytes.NewReader(in)}, mesh.Peer{NodeID: "peer", Registered: true})
		close(tr.packets)
		i := 0
		for p := range tr.packets {
			if i >= len(read) || !bytes.Equal(p.Buf, read[i]) {
				t.Fatalf("packet %d handed to memberlist differs from the one read", i)
			}
			if p.From.String() != "127.0.0.1:7701" {
				t.Fatalf("packet from %v, want the peer's mesh address", p.From)
			}
			i++
		}
		if i != len(read) {
			t.Fatalf("%d packets handed to memberlist, %d read", i, len(read))
		}
	})
}
