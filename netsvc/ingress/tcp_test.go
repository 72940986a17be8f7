package ingress

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// startTCPEcho is a TCP service that upper-cases nothing: it echoes lines back, and
// closes its side when the client closes its.
func startTCPEcho(t *testing.T, b *testBackend, service, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	b.set(service, port, ln.Addr().String())
}

// echoOnce sends a line through a TCP route and reads it back.
func echoOnce(addr net.Addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

func TestTCPRoute(t *testing.T) {
	b := newTestBackend()
	startTCPEcho(t, b, "db", "pg")
	clock := newFakeClock()
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(
		Route{Service: "db", Port: "pg", TCP: true, RateLimit: Rate{Count: 1, Per: time.Second, Burst: 2}},
	)}, clock)
	addr := in.TCPAddr("db", "pg")
	if addr == nil {
		t.Fatal("TCPAddr(db, pg) = nil; want the route's listener")
	}

	// A connection lives on and carries both ways; half-closing it ends it cleanly.
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, line := range []string{"one", "two"} {
		io.WriteString(c, line+"\n")
		if got, err := r.ReadString('\n'); err != nil || got != line+"\n" {
			t.Fatalf("echo of %q: %q, %v", line, got, err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v; want a clean end", rest, err)
	}
	c.Close()

	// The burst of 2 is spent: the next connection is closed at once.
	if got, err := echoOnce(addr, "three"); err != nil || got != "three" {
		t.Fatalf("second connection within the burst: %q, %v", got, err)
	}
	if got, err := echoOnce(addr, "four"); err == nil {
		t.Fatalf("a connection over the rate limit echoed %q; want it closed", got)
	}
	clock.Advance(time.Second)
	if got, err := echoOnce(addr, "five"); err != nil || got != "five" {
		t.Fatalf("a connection after a refill: %q, %v", got, err)
	}
	rs := routeStats(t, in, "db", true)
	if rs.Accepted != 3 || rs.Limited != 1 || rs.BackendErrors != 0 {
		t.Errorf("stats %+v; want 3 accepted and 1 limited", rs)
	}
}

func TestTCPRouteChanges(t *testing.T) {
	b := newTestBackend()
	startTCPEcho(t, b, "db", "pg")
	startTCPEcho(t, b, "cache", "redis")
	table := NewRouteTable(Route{Service: "db", Port: "pg", TCP: true})
	in := startIngress(t, Config{Backend: b, Routes: table}, nil)
	dbAddr := in.TCPAddr("db", "pg")

	// An open connection through a route that goes away is cut; its port closes.
	open, err := net.Dial("tcp", dbAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	open.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(open)
	io.WriteString(open, "hi\n")
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	table.Set([]Route{{Service: "cache", Port: "redis", TCP: true}})
	waitFor(t, "the cache route to listen", func() bool { return in.TCPAddr("cache", "redis") != nil })
	if got, err := echoOnce(in.TCPAddr("cache", "redis"), "x"); err != nil || got != "x" {
		t.Fatalf("new route: %q, %v", got, err)
	}
	if in.TCPAddr("db", "pg") != nil {
		t.Error("TCPAddr of a removed route is not nil")
	}
	var ne net.Error
	if _, err := r.ReadString('\n'); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("the open connection of the removed route: %v; want it cut", err)
	}
	if _, err := echoOnce(dbAddr, "y"); err == nil {
		t.Error("the removed route's port still answers")
	}
}

func TestTCPBackendError(t *testing.T) {
	b := newTestBackend()
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(Route{Service: "db", Port: "pg", TCP: true})}, nil)
	if _, err := echoOnce(in.TCPAddr("db", "pg"), "x"); err == nil {
		t.Fatal("a connection to a service with no backend echoed")
	}
	waitFor(t, "the backend error to be counted", func() bool { return routeStats(t, in, "db", true).BackendErrors == 1 })
}

func TestTCPPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	in := startIngress(t, Config{Backend: newTestBackend(), Routes: NewRouteTable(
		Route{Service: "db", Port: "pg", TCP: true, ListenPort: port},
	)}, nil)
	if in.TCPAddr("db", "pg") != nil {
		t.Error("TCPAddr of a route whose port is taken is not nil")
	}
	if rs := routeStats(t, in, "db", true); rs.Err == "" {
		t.Error("stats of a route whose port is taken have no Err")
	}
}
