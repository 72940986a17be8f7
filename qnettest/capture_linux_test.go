//go:build linux

package qnettest

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// TestCaptureLoopback sends bytes both ways over a loopback TCP connection and finds
// them, whole and in order, in the capture.
func TestCaptureLoopback(t *testing.T) {
	c := StartCapture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// More than one segment's worth, so reassembly matters.
	request := bytes.Repeat([]byte("request-0123456789-"), 20000)
	reply := []byte("reply")
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		got := make([]byte, len(request))
		if _, err := io.ReadFull(conn, got); err != nil {
			errc <- err
			return
		}
		_, err = conn.Write(reply)
		errc <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(request); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, len(reply))); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	flows := c.Flows(port)
	stats, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capture: %+v", stats)
	if len(flows) != 2 {
		t.Fatalf("%d flows on port %d, want 2: %+v", len(flows), port, flows)
	}
	for _, f := range flows {
		want := request
		if int(f.Src.Port()) == port {
			want = reply
		}
		if !f.Start || f.Gaps != 0 || !bytes.Equal(f.Payload, want) {
			t.Errorf("flow %v -> %v: start %v, %d gaps, %d bytes, want %d bytes", f.Src, f.Dst, f.Start, f.Gaps, len(f.Payload), len(want))
		}
	}
}
