//go:build linux

package shim

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestEpollWaiter checks the Linux socket waiter on real sockets of this process: a
// connection arriving ends a wait, a readiness already reported does not end the next
// one (edge-triggered: an idle module must not spin on data it has not read yet), Unix
// sockets are not watched, and a stop ends a wait at once. Not parallel: it counts on
// no other test opening TCP sockets meanwhile.
func TestEpollWaiter(t *testing.T) {
	w, err := newEpollWaiter()
	if err != nil {
		t.Skipf("epoll unavailable: %v", err)
	}
	defer w.close()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if w.wait(ctx, 20*time.Millisecond) {
		t.Fatal("wait ended without a connection")
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The connection is accepted by the kernel; this process owns both its ends.
	if !w.wait(ctx, 10*time.Second) {
		t.Fatal("a connection did not end the wait")
	}
	for w.wait(ctx, 20*time.Millisecond) {
		// The new client socket registered now reports once (writable): drain it.
	}
	if w.wait(ctx, 20*time.Millisecond) {
		t.Error("an unaccepted connection ended a second wait: not edge-triggered")
	}

	// Data on a Unix socket (the supervisor's own connections) is not the module's.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	unix.Write(fds[0], []byte("x"))
	if w.wait(ctx, 20*time.Millisecond) {
		t.Error("a Unix socket ended the wait")
	}

	// Data on the accepted connection ends a wait.
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for w.wait(ctx, 20*time.Millisecond) {
	}
	c.Write([]byte("request"))
	if !w.wait(ctx, 10*time.Second) {
		t.Error("data did not end the wait")
	}

	stopped, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	t0 := time.Now()
	if w.wait(stopped, time.Hour) || time.Since(t0) > 10*time.Second {
		t.Errorf("a stop did not end the wait (%v)", time.Since(t0))
	}
}
