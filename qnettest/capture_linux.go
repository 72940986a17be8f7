//go:build linux

package qnettest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records the TCP traffic of the loopback interface, as a packet sniffer on the
// wire would see it, so a test can check what crossed between nodes.
type Capture struct {
	f    *os.File
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	table *flowTable
	stats CaptureStats
	err   error
}

// captureBuffer is the capture socket's receive buffer: room for bursts of 64 KiB
// loopback segments while the reader catches up.
const captureBuffer = 32 << 20

// StartCapture starts recording every TCP segment on the loopback interface, in both
// directions; everything sent after it returns is recorded until Stop. It needs root
// (or CAP_NET_RAW) and skips the test when the process may not open a packet socket.
// The capture is stopped when the test ends.
func StartCapture(t testing.TB) *Capture {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		t.Skipf("packet capture needs root or CAP_NET_RAW to open an AF_PACKET socket: %v", err)
	case errors.Is(err, unix.EAFNOSUPPORT):
		t.Skipf("packet capture: this kernel has no AF_PACKET sockets: %v", err)
	case err != nil:
		t.Fatalf("packet capture: open an AF_PACKET socket: %v", err)
	}
	lo, err := loopback()
	if err != nil {
		unix.Close(fd)
		t.Fatalf("packet capture: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureBuffer)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		t.Fatalf("packet capture: bind to %s: %v", lo.Name, err)
	}
	// A non-blocking descriptor joins Go's poller, so Stop can wake the reader.
	c := &Capture{f: os.NewFile(uintptr(fd), "packet:"+lo.Name), done: make(chan struct{}), table: newFlowTable()}
	go c.read(lo.Index)
	t.Cleanup(func() { c.Stop() })
	return c
}

func loopback() (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return &i, nil
		}
	}
	return nil, errors.New("no loopback interface")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read records frames until Stop, then whatever the socket still holds.
func (c *Capture) read(ifindex int) {
	defer close(c.done)
	rc, err := c.f.SyscallConn()
	if err != nil {
		c.fail(err)
		return
	}
	buf := make([]byte, 256<<10)
	// recv reads one frame; it reports false when none is waiting, or the socket failed.
	var failed bool
	recv := func(fd uintptr) bool {
		n, from, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case err != nil:
			c.fail(err)
			failed = true
			return false
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		// Linux hands a packet socket each loopback frame twice: as it is sent
		// (outgoing) and as it is received. Keep the received copy only.
		if ok && ll.Ifindex == ifindex && ll.Pkttype != unix.PACKET_OUTGOING {
			c.record(buf[:min(n, len(buf))])
		}
		return true
	}
	for !failed {
		// Read waits until the socket is readable, then calls its function until it
		// reports done: one frame at a time, back here each time.
		if err := rc.Read(func(fd uintptr) bool { return recv(fd) || failed }); err != nil {
			break // Stop set a deadline in the past
		}
	}
	// Drain what was queued before Stop: everything sent before it was called.
	rc.Control(func(fd uintptr) {
		for recv(fd) {
		}
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			c.mu.Lock()
			c.stats.Dropped += int64(st.Drops)
			c.mu.Unlock()
		}
	})
}

func (c *Capture) record(frame []byte) {
	s, ok := parseFrame(frame)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		c.stats.Skipped++
		return
	}
	c.stats.Packets++
	c.stats.Bytes += int64(len(s.payload))
	c.table.add(s)
}

func (c *Capture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("packet capture: %w", err)
	}
}

// Stop ends the capture once it has read every frame sent before the call, and
// returns its statistics and the first read error, if any. Stopping twice is harmless.
func (c *Capture) Stop() (CaptureStats, error) {
	c.once.Do(func() {
		c.f.SetReadDeadline(time.Unix(1, 0))
		<-c.done
		c.f.Close()
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, c.err
}

// Flows stops the capture and returns the flows with either end on one of the ports
// (all of them when none is given).
func (c *Capture) Flows(ports ...int) []Flow {
	c.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.table.flows(ports)
}
