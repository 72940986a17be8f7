//go:build linux

package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

// listenIn listens on a TCP port inside the namespace mounted at nsPath.
func listenIn(t *testing.T, nsPath string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := InNamespace(nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
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

// TestInNamespace opens sockets in a container's namespace from the host's process:
// fn runs in that namespace, the sockets stay there (reachable from it, not from the
// host's loopback) and serve from any goroutine afterwards.
func TestInNamespace(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := n.Attach(context.Background(), "svc-1")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Detach(ep)
	var st unix.Stat_t
	if err := unix.Stat(ep.NetNS, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	host, _ := os.Readlink("/proc/thread-self/ns/net")

	// A loopback address of the container's, as the node's services use (a VIP).
	const addr = "127.64.201.7:8080"
	var ln net.Listener
	if err := InNamespace(ep.NetNS, func() error {
		if got, _ := os.Readlink("/proc/thread-self/ns/net"); got != want {
			return fmt.Errorf("fn runs in %s, want %s", got, want)
		}
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echo(ln)
	if got, _ := os.Readlink("/proc/thread-self/ns/net"); got != host {
		t.Errorf("the caller moved to %s, want the host's %s", got, host)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the host's loopback reaches %s: the listener is not in the container's namespace", addr)
	}
	// A connection made in the namespace reaches the listener.
	var c net.Conn
	if err := InNamespace(ep.NetNS, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, "hello")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("answer in the namespace = %q, %v", line, err)
	}

	// The threads go back to the host's namespace: the process's main thread, which
	// the runtime never ends, would otherwise be left in the container's for good and
	// give the whole process its /proc/self/net.
	for range 100 {
		InNamespace(ep.NetNS, func() error { return nil })
	}
	if self, _ := os.Readlink("/proc/self/ns/net"); self != host {
		t.Errorf("the process's main thread is in %s, not the host's %s", self, host)
	}

	// A file that is not a network namespace, or none at all, is an error.
	notNS := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notNS, nil, 0o600)
	for _, p := range []string{notNS, filepath.Join(t.TempDir(), "missing")} {
		if err := InNamespace(p, func() error { return nil }); err == nil {
			t.Errorf("InNamespace(%s) = nil, want an error", p)
		}
	}
}

// inNS runs fn in the namespace at path, failing the test on error.
func inNS(t *testing.T, path string, fn func() error) {
	t.Helper()
	if err := InNamespace(path, fn); err != nil {
		t.Fatal(err)
	}
}

// TestRedirect installs a container's service redirects and follows connections
// through them: TCP to any VIP reaches the proxy's listener, which learns the VIP and
// port dialled; DNS on port 53 reaches the DNS server's own port, and its answer comes
// back from port 53. Installing again replaces the rules.
func TestRedirect(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := n.Attach(context.Background(), "redir-1")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Detach(ep)
	var proxy, proxy2 net.Listener
	var dns net.PacketConn
	inNS(t, ep.NetNS, func() (err error) {
		if proxy, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		if proxy2, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		dns, err = net.ListenPacket("udp4", "127.0.0.11:0")
		return err
	})
	defer proxy.Close()
	defer proxy2.Close()
	defer dns.Close()
	r := Redirect{
		VIPs:      netip.MustParsePrefix("127.64.0.0/10"),
		Proxy:     proxy.Addr().(*net.TCPAddr).AddrPort(),
		DNS:       netip.MustParseAddr("127.0.0.11"),
		DNSTarget: dns.LocalAddr().(*net.UDPAddr).AddrPort(),
	}
	if err := InstallRedirect(ep.NetNS, r); err != nil {
		t.Fatal(err)
	}

	// dial connects from inside the namespace and returns what ln accepted, with the
	// original destination.
	dial := func(ln net.Listener, addr string) netip.AddrPort {
		t.Helper()
		var c net.Conn
		inNS(t, ep.NetNS, func() (err error) {
			c, err = net.DialTimeout("tcp", addr, 5*time.Second)
			return err
		})
		defer c.Close()
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
		s, err := ln.Accept()
		if err != nil {
			t.Fatalf("%s did not reach the proxy: %v", addr, err)
		}
		defer s.Close()
		dst, err := OriginalDest(s.(*net.TCPConn))
		if err != nil {
			t.Fatal(err)
		}
		return dst
	}
	for _, addr := range []string{"127.64.0.1:80", "127.100.7.9:8080", "127.127.255.254:5432"} {
		if got := dial(proxy, addr); got.String() != addr {
			t.Errorf("dialled %s, the proxy saw %s", addr, got)
		}
	}
	// A connection straight to the listener is not redirected: its own address.
	if got := dial(proxy, proxy.Addr().String()); got.String() != proxy.Addr().String() {
		t.Errorf("direct connection: original destination %s, want %s", got, proxy.Addr())
	}
	// Outside the VIPs nothing is redirected.
	inNS(t, ep.NetNS, func() error {
		if c, err := net.DialTimeout("tcp", "127.0.0.5:80", time.Second); err == nil {
			c.Close()
			return errors.New("127.0.0.5:80 was answered")
		}
		return nil
	})

	// DNS: a query to 127.0.0.11:53 reaches the server's port; the answer comes from 53.
	go func() {
		buf := make([]byte, 512)
		n, from, err := dns.ReadFrom(buf)
		if err == nil {
			dns.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	var qc net.Conn
	inNS(t, ep.NetNS, func() (err error) {
		qc, err = net.Dial("udp", "127.0.0.11:53")
		return err
	})
	defer qc.Close()
	qc.SetDeadline(time.Now().Add(5 * time.Second))
	qc.Write([]byte("query"))
	buf := make([]byte, 512)
	if n, err := qc.Read(buf); err != nil || string(buf[:n]) != "re:query" {
		t.Errorf("DNS through the redirect: %q, %v", buf[:n], err)
	}

	// Installed again (a restarted node), the rules are replaced, not added to.
	r.Proxy = proxy2.Addr().(*net.TCPAddr).AddrPort()
	if err := InstallRedirect(ep.NetNS, r); err != nil {
		t.Fatal(err)
	}
	if got := dial(proxy2, "127.64.0.1:80"); got.String() != "127.64.0.1:80" {
		t.Errorf("after the second install the proxy saw %s", got)
	}
	if out, err := exec.Command("nsenter", "--net="+ep.NetNS, "nft", "list", "table", "ip", RedirectTable).CombinedOutput(); err == nil {
		if c := strings.Count(string(out), "dnat to"); c != 3 {
			t.Errorf("after two installs the table has %d dnat rules, want 3:\n%s", c, out)
		}
	} else {
		t.Logf("the rules are not listed (no nsenter or nft): %v", err)
	}

	if err := InstallRedirect(ep.NetNS, Redirect{}); err == nil {
		t.Error("an empty Redirect was installed")
	}
}
