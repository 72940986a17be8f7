//go:build linux

package network

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testConfig is a bridge and a /24 of this test process alone, so parallel test runs
// (and a real agent's qnet0) are not disturbed; the bridge is deleted at the end.
func testConfig(t *testing.T) Config {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("container networks need root (network namespaces, veth pairs, a bridge); run the tests as root")
	}
	pid := os.Getpid()
	dir := t.TempDir()
	cfg := Config{
		Bridge:   fmt.Sprintf("qt%x", pid),
		Subnet:   netip.MustParsePrefix(fmt.Sprintf("10.250.%d.0/24", pid%256)),
		NetnsDir: filepath.Join(dir, "netns"),
		LeaseDir: filepath.Join(dir, "leases"),
	}
	t.Cleanup(func() {
		if c, err := dialNetlink(); err == nil {
			c.delLink(cfg.Bridge)
			c.Close()
		}
	})
	return cfg
}

// listenIn listens on a TCP port inside the namespace mounted at nsPath: from a
// thread that enters it and is never returned to the scheduler.
func listenIn(t *testing.T, nsPath string) net.Listener {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		ln, err := net.Listen("tcp4", ":0")
		ch <- res{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

// echo answers each line on a connection with "echo: " and the line.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "echo: %s\n", sc.Text())
			}
		}()
	}
}

func roundTrip(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "hello")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("answer from %s = %q, %v", addr, line, err)
	}
}

func TestAttachDetach(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := n.Attach(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Attach(ctx, "web-2")
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr == b.Addr || !cfg.Subnet.Contains(a.Addr.Addr()) || a.Addr.Addr() == cfg.Gateway() {
		t.Errorf("addresses %v and %v: want two distinct container addresses of %v", a.Addr, b.Addr, cfg.Subnet)
	}
	if _, err := n.Attach(ctx, "web-1"); err == nil {
		t.Error("a second Attach of the same container succeeded")
	}

	// The node reaches the container at its address, through the bridge.
	ln := listenIn(t, a.NetNS)
	go echo(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	roundTrip(t, net.JoinHostPort(a.Addr.Addr().String(), fmt.Sprint(port)))

	// And a host port reaches it through Forward.
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Forward(fctx, hostLn, net.JoinHostPort(a.Addr.Addr().String(), fmt.Sprint(port)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	roundTrip(t, hostLn.Addr().String())
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Forward = %v", err)
	}

	for _, ep := range []*Endpoint{a, b} {
		if err := n.Detach(ep); err != nil {
			t.Fatal(err)
		}
		if err := n.Detach(ep); err != nil {
			t.Errorf("second Detach: %v", err)
		}
		for _, p := range []string{ep.NetNS, ep.Lease} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s is left after Detach", p)
			}
		}
		if _, err := net.InterfaceByName(ep.HostVeth); err == nil {
			t.Errorf("veth %s is left after Detach", ep.HostVeth)
		}
	}
	// The address is free again.
	c, err := n.Attach(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Detach(c)
	if c.Addr != a.Addr {
		t.Errorf("re-attached web-1 got %v, want its address %v again", c.Addr, a.Addr)
	}
}

func TestStaleLease(t *testing.T) {
	cfg := testConfig(t)
	cfg.Subnet = netip.MustParsePrefix(fmt.Sprintf("10.250.%d.0/29", os.Getpid()%256)) // 5 addresses
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Leases of namespaces that are gone (a crash, a reboot) hold every address.
	gone := filepath.Join(t.TempDir(), "gone")
	os.WriteFile(gone, nil, 0o600) // a plain file, as a namespace file is after a reboot
	for a := cfg.Gateway().Next(); cfg.Subnet.Contains(a); a = a.Next() {
		os.WriteFile(filepath.Join(cfg.LeaseDir, a.String()), []byte(gone), 0o600)
	}
	ep, err := n.Attach(context.Background(), "x")
	if err != nil {
		t.Fatalf("Attach with only stale leases: %v", err)
	}
	defer n.Detach(ep)
	if owner, _ := os.ReadFile(ep.Lease); string(owner) != ep.NetNS {
		t.Errorf("lease %s holds %q, want %q", ep.Lease, owner, ep.NetNS)
	}
	// Live leases are never taken: fill the subnet, then one more fails.
	var eps []*Endpoint
	for i := 0; ; i++ {
		e, err := n.Attach(context.Background(), fmt.Sprintf("y%d", i))
		if err != nil {
			if !strings.Contains(err.Error(), "leased") {
				t.Fatalf("Attach on a full subnet: %v, want an error saying all addresses are leased", err)
			}
			break
		}
		eps = append(eps, e)
		if i > 10 {
			t.Fatal("more containers than addresses")
		}
	}
	if len(eps) != 4 {
		t.Errorf("attached %d more containers, want 4 (5 addresses in a /29 minus gateway and broadcast, one taken)", len(eps))
	}
	for _, e := range eps {
		n.Detach(e)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig("/tmp/x")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"long bridge": func(c *Config) { c.Bridge = "a-very-long-bridge-name" },
		"bad bridge":  func(c *Config) { c.Bridge = "br/0" },
		"ipv6":        func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") },
		"host bits":   func(c *Config) { c.Subnet = netip.MustParsePrefix("10.88.0.1/16") },
		"too small":   func(c *Config) { c.Subnet = netip.MustParsePrefix("10.88.0.0/30") },
		"no netns":    func(c *Config) { c.NetnsDir = "" },
		"no leases":   func(c *Config) { c.LeaseDir = "" },
	} {
		c := good
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	if b, ok := broadcast(netip.MustParsePrefix("10.88.0.0/16")); !ok || b.String() != "10.88.255.255" {
		t.Errorf("broadcast of 10.88.0.0/16 = %v", b)
	}
}
