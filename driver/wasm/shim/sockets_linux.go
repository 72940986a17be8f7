//go:build linux

package shim

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// newSocketWaiter returns the Linux socketWaiter: an edge-triggered epoll set holding
// the process's TCP sockets, or the interval waiter if epoll cannot be set up.
func newSocketWaiter() socketWaiter {
	w, err := newEpollWaiter()
	if err != nil {
		return &intervalWaiter{}
	}
	return w
}

// epollWaiter waits for the module's sockets with an epoll set of its own (Go's runtime
// keeps its own set for the same sockets; the two do not interfere). Before each wait it
// looks through /proc/self/fd for TCP sockets it has not registered yet, because wazero
// creates them (sock_accept) without telling. Registration is edge-triggered: a wait
// ends when data or a connection arrives, or a full send buffer drains, not while data
// the module has not read yet sits in a socket, which would make an idle module spin.
// A socket registered while it already has data is reported at once, so a connection
// accepted between two waits is not missed.
type epollWaiter struct {
	epfd   int
	wake   int            // eventfd that ends a wait when the depot is stopped
	known  map[int]fileID // descriptors looked at, by number
	events []unix.EpollEvent
}

// fileID identifies the open file behind a descriptor number, which the number alone
// does not: a closed socket's number is soon reused by the next one.
type fileID struct {
	dev, ino uint64
}

func newEpollWaiter() (*epollWaiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &epollWaiter{epfd: epfd, wake: wake, known: map[int]fileID{}, events: make([]unix.EpollEvent, 64)}, nil
}

func (w *epollWaiter) wait(ctx context.Context, timeout time.Duration) bool {
	w.scan()
	ms := -1
	if timeout >= 0 {
		// epoll counts milliseconds: round up, so a timer is never woken early.
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	stop := context.AfterFunc(ctx, func() {
		var one [8]byte
		one[0] = 1
		unix.Write(w.wake, one[:])
	})
	defer stop()
	if ctx.Err() != nil {
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.EpollWait(w.epfd, w.events, ms)
		if errors.Is(err, unix.EINTR) {
			if ms > 0 {
				ms = max(0, int((time.Until(deadline)+time.Millisecond-1)/time.Millisecond))
			}
			continue
		}
		if err != nil {
			return true // cannot wait: let the module look, as if a socket were ready
		}
		ready := false
		for _, ev := range w.events[:n] {
			if int(ev.Fd) == w.wake {
				var buf [8]byte
				unix.Read(w.wake, buf[:])
				continue
			}
			ready = true
		}
		return ready
	}
}

// scan registers the TCP sockets of the process that are not registered yet.
func (w *epollWaiter) scan() {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	seen := make(map[int]bool, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == w.epfd || fd == w.wake {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue // closed meanwhile (the listing's own descriptor, say)
		}
		seen[fd] = true
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		if prev, ok := w.known[fd]; ok && prev == id {
			continue
		}
		w.known[fd] = id
		if st.Mode&unix.S_IFMT != unix.S_IFSOCK || !isTCP(fd) {
			continue
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); errors.Is(err, unix.EEXIST) {
			unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
		}
	}
	for fd := range w.known {
		if !seen[fd] {
			delete(w.known, fd) // closed: the kernel dropped it from the set
		}
	}
}

// isTCP reports whether fd is an IPv4 or IPv6 socket (the module's), not a Unix-domain
// one (the supervisor's control connections).
func isTCP(fd int) bool {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	switch sa.(type) {
	case *unix.SockaddrInet4, *unix.SockaddrInet6:
		return true
	}
	return false
}

func (w *epollWaiter) close() {
	unix.Close(w.epfd)
	unix.Close(w.wake)
}
