// Package portalloc hands out the host ports of the depots on one node. A port is given
// out only when neither this allocator nor anything else on the host holds it, and it
// stays taken in the allocator's books until released, so two depots never get the same
// port even while neither has bound it yet.
package portalloc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
)

// The default range of assigned host ports. It ends below Linux's default ephemeral
// range (32768-60999), so outgoing connections of the node do not take them.
const (
	DefaultLow  = 20000
	DefaultHigh = 32767
)

// ErrInUse is wrapped by the errors of ports that are already taken.
var ErrInUse = errors.New("already in use on this node")

// Allocator tracks the host ports given out on one node. It is safe for concurrent use.
type Allocator struct {
	lo, hi int
	// probe reports whether the host has port free; a field so tests of the
	// bookkeeping can replace the real check.
	probe func(port int) error

	mu   sync.Mutex
	used map[int]bool
	next int // where the next search starts, so released ports are reused last
}

// New returns an allocator that assigns ports in [lo, hi]. New(0, 0) uses
// DefaultLow-DefaultHigh.
func New(lo, hi int) (*Allocator, error) {
	if lo == 0 && hi == 0 {
		lo, hi = DefaultLow, DefaultHigh
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return nil, fmt.Errorf("port range %d-%d is invalid; want 1 <= low <= high <= 65535", lo, hi)
	}
	// Each allocator starts at a random point of its range, so nodes that share a machine
	// (a testnet, tests) seldom race for the same port.
	next := lo + rand.IntN(hi-lo+1)
	return &Allocator{lo: lo, hi: hi, probe: probeHost, used: map[int]bool{}, next: next}, nil
}

// Range returns the range ports are assigned from.
func (a *Allocator) Range() (lo, hi int) { return a.lo, a.hi }

// Allocate returns n distinct ports from the range that are free in the allocator's
// books and on the host and are not among exclude, and marks them taken. It takes
// either all n or none.
func (a *Allocator) Allocate(n int, exclude ...int) ([]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("allocate %d ports: want 1 or more", n)
	}
	size := a.hi - a.lo + 1
	if n > size {
		return nil, fmt.Errorf("allocate %d ports: the range %d-%d holds only %d", n, a.lo, a.hi, size)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	got := make([]int, 0, n)
	p := a.next
	for range size {
		if !a.used[p] && !slices.Contains(exclude, p) && a.probe(p) == nil {
			got = append(got, p)
			if len(got) == n {
				break
			}
		}
		if p++; p > a.hi {
			p = a.lo
		}
	}
	if len(got) < n {
		return nil, fmt.Errorf("allocate %d ports: only %d free in %d-%d on this node; release ports or widen the range",
			n, len(got), a.lo, a.hi)
	}
	for _, q := range got {
		a.used[q] = true
	}
	a.next = got[len(got)-1] + 1
	if a.next > a.hi {
		a.next = a.lo
	}
	return got, nil
}

// Reserve marks a fixed host port (a hostPort of a manifest) taken. The port need not
// be in the allocator's range. It fails, wrapping ErrInUse, when the allocator already
// gave the port out or anything on the host holds it.
func (a *Allocator) Reserve(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is not a valid port; want 1-65535", port)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used[port] {
		return fmt.Errorf("port %d is %w", port, ErrInUse)
	}
	if err := a.probe(port); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %d is %w: %w", port, ErrInUse, err)
		}
		return fmt.Errorf("port %d cannot be bound on this node: %w", port, err)
	}
	a.used[port] = true
	return nil
}

// Claim marks ports taken without checking the host: they belong to a depot that is
// already running and holds them (one a restarted agent adopted). It fails, wrapping
// ErrInUse, for a port the allocator already gave to someone else.
func (a *Allocator) Claim(port int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used[port] {
		return fmt.Errorf("port %d is %w", port, ErrInUse)
	}
	a.used[port] = true
	return nil
}

// Free reports whether port is free on the host now (nothing listens on it).
func (a *Allocator) Free(port int) bool { return a.probe(port) == nil }

// Release gives ports back. Ports that were not taken are ignored, so releasing twice
// is harmless.
func (a *Allocator) Release(ports ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ports {
		delete(a.used, p)
	}
}

// InUse returns the ports taken in the allocator's books, in order.
func (a *Allocator) InUse() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]int, 0, len(a.used))
	for p := range a.used {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// probeHost reports whether TCP port is free on the host by binding it briefly on all
// IPv4 addresses and on loopback: a depot may bind either, and a listener on one of
// them can block the other.
func probeHost(port int) error {
	for _, host := range []string{"0.0.0.0", "127.0.0.1"} {
		ln, err := net.Listen("tcp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		if err := ln.Close(); err != nil {
			return fmt.Errorf("close probe of %s:%d: %w", host, port, err)
		}
	}
	return nil
}
