package portalloc

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// booksOnly returns an allocator over [lo, hi] whose host check says busy for the
// ports in busy and free for the rest, so its bookkeeping can be tested without
// touching real ports.
func booksOnly(t *testing.T, lo, hi int, busy ...int) *Allocator {
	t.Helper()
	a, err := New(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	a.next = lo // deterministic for the bookkeeping tests
	a.probe = func(p int) error {
		if slices.Contains(busy, p) {
			return fmt.Errorf("bind :%d: %w", p, syscall.EADDRINUSE)
		}
		return nil
	}
	return a
}

func TestNew(t *testing.T) {
	t.Parallel()
	a, err := New(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := a.Range(); lo != DefaultLow || hi != DefaultHigh {
		t.Fatalf("New(0, 0) range = %d-%d, want %d-%d", lo, hi, DefaultLow, DefaultHigh)
	}
	for _, r := range [][2]int{{0, 100}, {100, 50}, {1, 65536}, {-5, 10}} {
		if _, err := New(r[0], r[1]); err == nil || !strings.Contains(err.Error(), "is invalid; want 1 <= low <= high <= 65535") {
			t.Errorf("New(%d, %d) error = %v, want an invalid range error", r[0], r[1], err)
		}
	}
}

func TestAllocateBooks(t *testing.T) {
	t.Parallel()
	a := booksOnly(t, 100, 109, 102) // 102 is held by something else on the host
	got, err := a.Allocate(3, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{101, 103, 104}; !slices.Equal(got, want) {
		t.Fatalf("Allocate(3, exclude 100) = %v, want %v (skipping the excluded and the busy port)", got, want)
	}
	got, err = a.Allocate(2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{105, 106}; !slices.Equal(got, want) {
		t.Fatalf("second Allocate(2) = %v, want %v", got, want)
	}
	// Released ports are reused last: the search goes on from where it stopped.
	a.Release(101, 103, 999)
	got, err = a.Allocate(4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{107, 108, 109, 100}; !slices.Equal(got, want) {
		t.Fatalf("Allocate(4) after release = %v, want %v", got, want)
	}
	if want := []int{100, 104, 105, 106, 107, 108, 109}; !slices.Equal(a.InUse(), want) {
		t.Fatalf("InUse = %v, want %v", a.InUse(), want)
	}

	// All or nothing: 101 and 103 are the only free ports left.
	before := a.InUse()
	_, err = a.Allocate(3)
	if err == nil || err.Error() != "allocate 3 ports: only 2 free in 100-109 on this node; release ports or widen the range" {
		t.Fatalf("Allocate(3) with 2 free = %v", err)
	}
	if !slices.Equal(a.InUse(), before) {
		t.Fatalf("a failed Allocate changed InUse from %v to %v", before, a.InUse())
	}
}

func TestAllocateBadCounts(t *testing.T) {
	t.Parallel()
	a := booksOnly(t, 100, 104)
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "allocate 0 ports: want 1 or more"},
		{-1, "allocate -1 ports: want 1 or more"},
		{6, "allocate 6 ports: the range 100-104 holds only 5"},
	} {
		if _, err := a.Allocate(tc.n); err == nil || err.Error() != tc.want {
			t.Errorf("Allocate(%d) = %v, want %q", tc.n, err, tc.want)
		}
	}
}

func TestReserveBooks(t *testing.T) {
	t.Parallel()
	a := booksOnly(t, 100, 109)
	if err := a.Reserve(8080); err != nil {
		t.Fatalf("Reserve(8080) outside the range = %v, want ok", err)
	}
	err := a.Reserve(8080)
	if err == nil || err.Error() != "port 8080 is already in use on this node" || !errors.Is(err, ErrInUse) {
		t.Fatalf("second Reserve(8080) = %v, want already in use", err)
	}
	got, err := a.Allocate(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reserve(got[0]); !errors.Is(err, ErrInUse) {
		t.Fatalf("Reserve of an allocated port = %v, want ErrInUse", err)
	}
	a.Release(8080)
	if err := a.Reserve(8080); err != nil {
		t.Fatalf("Reserve(8080) after release = %v", err)
	}
	for _, p := range []int{0, -1, 65536} {
		if err := a.Reserve(p); err == nil || !strings.Contains(err.Error(), "is not a valid port; want 1-65535") {
			t.Errorf("Reserve(%d) = %v, want an invalid port error", p, err)
		}
	}
	// An allocated port inside the range is never handed out again while reserved.
	if err := a.Reserve(101); err != nil {
		t.Fatal(err)
	}
	got, err = a.Allocate(8)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, 101) || slices.Contains(got, 100) {
		t.Fatalf("Allocate gave out a taken port: %v", got)
	}
}

func TestConcurrentAllocate(t *testing.T) {
	t.Parallel()
	a := booksOnly(t, 1000, 1999)
	var (
		mu  sync.Mutex
		all []int
		wg  sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				ports, err := a.Allocate(1 + (g+i)%3)
				if err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 {
					a.Release(ports...)
					continue
				}
				mu.Lock()
				all = append(all, ports...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(all)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("port %d was given out twice", all[i])
		}
	}
	if !slices.Equal(a.InUse(), all) {
		t.Fatalf("InUse has %d ports, the callers hold %d", len(a.InUse()), len(all))
	}
}

// listen binds host:0 and returns the listener and its port.
func listen(t *testing.T, host string) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp4", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func TestReserveHostPortTaken(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"0.0.0.0", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			_, port := listen(t, host)
			a, err := New(0, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Reserve(port)
			want := fmt.Sprintf("port %d is already in use on this node", port)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrInUse) {
				t.Fatalf("Reserve of a port bound on %s = %v, want %q", host, err, want)
			}
			if len(a.InUse()) != 0 {
				t.Fatalf("a failed Reserve left %v in use", a.InUse())
			}
		})
	}
}

func TestAllocateSkipsHostPortTaken(t *testing.T) {
	t.Parallel()
	ln, port := listen(t, "127.0.0.1")
	a, err := New(port, port)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.Allocate(1); err == nil {
		t.Fatalf("Allocate gave out %v, which a listener holds", got)
	}
	ln.Close()
	got, err := a.Allocate(1)
	if err != nil || !slices.Equal(got, []int{port}) {
		t.Fatalf("Allocate after the listener closed = %v, %v; want [%d]", got, err, port)
	}
}

// TestAllocateGivesBindablePorts checks the real thing: the ports given out in the
// default range can be bound by a depot.
func TestAllocateGivesBindablePorts(t *testing.T) {
	t.Parallel()
	a, err := New(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := a.Allocate(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p < DefaultLow || p > DefaultHigh {
			t.Fatalf("port %d is outside the default range", p)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("allocated port %d cannot be bound: %v", p, err)
		}
		ln.Close()
	}
}

func TestClaimSkipsHostCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	a, err := New(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reserve(port); !errors.Is(err, ErrInUse) {
		t.Fatalf("Reserve of a bound port: %v", err)
	}
	if err := a.Claim(port); err != nil {
		t.Fatalf("Claim of the port its depot holds: %v", err)
	}
	if err := a.Claim(port); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Claim: %v", err)
	}
}

// TestStartsAtRandomPoint: allocators on one machine do not all begin at the bottom of
// the range, so nodes sharing it seldom race for one port.
func TestStartsAtRandomPoint(t *testing.T) {
	starts := map[int]bool{}
	for range 20 {
		a, err := New(20000, 32767)
		if err != nil {
			t.Fatal(err)
		}
		if a.next < 20000 || a.next > 32767 {
			t.Fatalf("start %d outside the range", a.next)
		}
		starts[a.next] = true
	}
	if len(starts) < 10 {
		t.Fatalf("20 allocators began at only %d points", len(starts))
	}
}
