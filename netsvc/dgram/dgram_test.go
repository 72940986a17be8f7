package dgram

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestFrames(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty datagram", nil},
		{"one byte", []byte{7}},
		{"text", []byte("hello over the tunnel")},
		{"largest", bytes.Repeat([]byte{0xab}, MaxPayload)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := AppendFrame(nil, tt.payload)
			if err != nil {
				t.Fatalf("AppendFrame: %v", err)
			}
			if len(f) != headerLen+len(tt.payload) {
				t.Fatalf("frame is %d bytes, want %d", len(f), headerLen+len(tt.payload))
			}
			buf := make([]byte, MaxPayload)
			r := bytes.NewReader(f)
			n, err := ReadFrame(r, buf)
			if err != nil || !bytes.Equal(buf[:n], tt.payload) {
				t.Fatalf("ReadFrame = %d bytes, %v; want the payload back", n, err)
			}
			if _, err := ReadFrame(r, buf); err != io.EOF {
				t.Fatalf("ReadFrame at the end = %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	if _, err := AppendFrame(nil, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("AppendFrame of %d bytes = %v, want ErrTooLarge", MaxPayload+1, err)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"half a header", []byte{0}, io.ErrUnexpectedEOF},
		{"short payload", []byte{0, 5, 'a', 'b'}, io.ErrUnexpectedEOF},
		{"length over the UDP maximum", []byte{0xff, 0xff}, ErrTooLarge},
		{"first length over the maximum", []byte{0xff, 0xe4}, ErrTooLarge}, // 65508
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadFrame(bytes.NewReader(tt.in), make([]byte, 16)); !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame(%x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestReadCutsLongDatagrams: a buffer shorter than the datagram gets its start, and
// the next Read starts at the next datagram, as with a UDP socket.
func TestReadCutsLongDatagrams(t *testing.T) {
	var stream []byte
	stream, _ = AppendFrame(stream, []byte("0123456789"))
	stream, _ = AppendFrame(stream, []byte("next"))
	r := bytes.NewReader(stream)
	buf := make([]byte, 4)
	if n, err := ReadFrame(r, buf); err != nil || string(buf[:n]) != "0123" {
		t.Fatalf("first ReadFrame = %q, %v; want \"0123\"", buf[:n], err)
	}
	if n, err := ReadFrame(r, buf); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("second ReadFrame = %q, %v; want \"next\"", buf[:n], err)
	}
}

// TestConnKeepsBoundaries sends datagrams over a real TCP stream, which merges and
// splits writes at will: every Read still returns exactly one datagram.
func TestConnKeepsBoundaries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := NewConn(raw)
	defer a.Close()
	rawB, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	b := NewConn(rawB)
	defer b.Close()
	b.SetDeadline(time.Now().Add(10 * time.Second))

	want := []string{"one", "", strings.Repeat("x", 40000), "four"}
	go func() {
		for _, m := range want {
			if _, err := a.Write([]byte(m)); err != nil {
				return
			}
		}
		a.CloseWrite()
	}()
	buf := make([]byte, MaxPayload)
	for i, w := range want {
		n, err := b.Read(buf)
		if err != nil || string(buf[:n]) != w {
			t.Fatalf("datagram %d: got %d bytes, %v; want %d bytes", i, n, err, len(w))
		}
	}
	if _, err := b.Read(buf); err != io.EOF {
		t.Fatalf("Read after the writer's CloseWrite = %v, want io.EOF", err)
	}
	if _, err := a.Write(make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write of %d bytes = %v, want ErrTooLarge", MaxPayload+1, err)
	}
}

func TestCloseWriteUnsupported(t *testing.T) {
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if err := NewConn(p).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite over a pipe = %v, want errors.ErrUnsupported", err)
	}
}
