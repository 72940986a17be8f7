//go:build linux

package network

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Network attaches containers to the node's bridge. It is safe for concurrent use.
type Network struct {
	cfg Config
	mu  sync.Mutex // serializes bridge set-up
}

// New checks cfg and prepares its directories; the bridge is made at the first
// Attach.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.NetnsDir, cfg.LeaseDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	return &Network{cfg: cfg}, nil
}

// Config returns the network's configuration.
func (n *Network) Config() Config { return n.cfg }

// Attach makes a network namespace for container id, connected to the bridge with a
// leased address and a default route, and returns it; the container joins it by
// path (Endpoint.NetNS). On error nothing is left behind.
func (n *Network) Attach(ctx context.Context, id string) (_ *Endpoint, err error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return nil, fmt.Errorf("network: container id %q: want a single path element", id)
	}
	host, err := dialNetlink()
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	defer host.Close()
	bridge, err := n.bridge(host)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ep := &Endpoint{ID: id, NetNS: filepath.Join(n.cfg.NetnsDir, id), Gateway: n.cfg.Gateway(), HostVeth: VethName(n.cfg.NetnsDir, id)}
	ns, err := newNetns(ep.NetNS)
	if err != nil {
		// Nothing made; an existing namespace file is another run's, not ours to undo.
		return nil, fmt.Errorf("network of %q: %w", id, err)
	}
	defer ns.Close()
	defer func() {
		if err != nil {
			n.Detach(ep)
		}
	}()
	if ep.Addr, ep.Lease, err = n.lease(id, ep.NetNS); err != nil {
		return nil, err
	}
	nsFile, err := os.Open(ep.NetNS)
	if err != nil {
		return nil, fmt.Errorf("network of %q: %w", id, err)
	}
	defer nsFile.Close()
	err = host.addVeth(ep.HostVeth, "eth0", bridge, int(nsFile.Fd()))
	if errors.Is(err, unix.EEXIST) {
		// A host end left by a depot of this name that was not cleaned up.
		host.delLink(ep.HostVeth)
		err = host.addVeth(ep.HostVeth, "eth0", bridge, int(nsFile.Fd()))
	}
	if err != nil {
		return nil, fmt.Errorf("network of %q: %w", id, err)
	}
	idx, err := host.linkIndex(ep.HostVeth)
	if err == nil {
		err = host.setUp(idx)
	}
	if err == nil {
		err = ns.setUp(1) // lo is always 1 in a new namespace
	}
	if err == nil {
		idx, err = ns.linkIndex("eth0")
	}
	if err == nil {
		err = ns.addAddr(idx, ep.Addr)
	}
	if err == nil {
		err = ns.setUp(idx)
	}
	if err == nil {
		err = ns.addDefaultRoute(ep.Gateway, idx)
	}
	if err != nil {
		return nil, fmt.Errorf("network of %q: %w", id, err)
	}
	return ep, nil
}

// Detach undoes Attach: the veth pair, the namespace's mount and file, and the lease
// go. It may be called again, and on a half-made endpoint.
func (n *Network) Detach(ep *Endpoint) error {
	var errs []error
	if ep.HostVeth != "" {
		if c, err := dialNetlink(); err == nil {
			if err := c.delLink(ep.HostVeth); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("delete %s: %w", ep.HostVeth, err))
			}
			c.Close()
		}
	}
	if ep.NetNS != "" {
		if err := unix.Unmount(ep.NetNS, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", ep.NetNS, err))
		}
		if err := os.Remove(ep.NetNS); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if ep.Lease != "" {
		// Only our own lease: after a crash the address may have gone to another.
		if owner, err := os.ReadFile(ep.Lease); err == nil && string(owner) == ep.NetNS {
			os.Remove(ep.Lease)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network: detach %q: %w", ep.ID, errors.Join(errs...))
	}
	return nil
}

// bridge returns the index of the bridge, creating it with the gateway address if it
// is missing.
func (n *Network) bridge(c *nlConn) (int32, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	idx, err := c.linkIndex(n.cfg.Bridge)
	if errors.Is(err, unix.ENODEV) {
		if err := c.addBridge(n.cfg.Bridge); err != nil && !errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("network: %w", err)
		}
		idx, err = c.linkIndex(n.cfg.Bridge)
	}
	if err != nil {
		return 0, fmt.Errorf("network: %w", err)
	}
	gw := netip.PrefixFrom(n.cfg.Gateway(), n.cfg.Subnet.Bits())
	if err := c.addAddr(idx, gw); err != nil && !errors.Is(err, unix.EEXIST) {
		return 0, fmt.Errorf("network: bridge %s: %w", n.cfg.Bridge, err)
	}
	if err := c.setUp(idx); err != nil {
		return 0, fmt.Errorf("network: bridge %s: %w", n.cfg.Bridge, err)
	}
	return idx, nil
}

// VethName names the host end of a container's veth pair: "qv" and 12 hex digits of
// a hash of its namespace path, which is unique on the machine (interface names
// have at most 15 characters).
func VethName(netnsDir, id string) string {
	h := sha256.Sum256([]byte(filepath.Join(netnsDir, id)))
	return "qv" + hex.EncodeToString(h[:6])
}

// lease takes a free address of the subnet for the namespace at netns: a file named
// after the address, made with O_EXCL, holding netns. The search starts at a point
// that depends on id, so a restarted depot tends to get its address again. A lease
// whose namespace is no longer mounted is stale and is taken over.
func (n *Network) lease(id, netns string) (netip.Prefix, string, error) {
	first := n.cfg.Gateway().Next()
	size := uint32(1)<<(32-n.cfg.Subnet.Bits()) - 3 // minus network, gateway, broadcast
	h := fnv.New32a()
	h.Write([]byte(id))
	start := h.Sum32() % size
	base := first.As4()
	b := binary.BigEndian.Uint32(base[:])
	for i := uint32(0); i < size; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], b+(start+i)%size)
		addr := netip.AddrFrom4(a)
		path := filepath.Join(n.cfg.LeaseDir, addr.String())
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			if !staleLease(path) {
				continue
			}
			// Take it over: remove, then race for it like anyone else.
			os.Remove(path)
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
		}
		if err != nil {
			return netip.Prefix{}, "", fmt.Errorf("network: lease an address: %w", err)
		}
		_, err = f.WriteString(netns)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return netip.Prefix{}, "", fmt.Errorf("network: lease an address: %w", err)
		}
		return netip.PrefixFrom(addr, n.cfg.Subnet.Bits()), path, nil
	}
	return netip.Prefix{}, "", fmt.Errorf("network: all %d addresses of %v are leased", size, n.cfg.Subnet)
}

// staleLease reports whether the namespace a lease names is gone. A lease still
// being written (empty) is not stale.
func staleLease(path string) bool {
	owner, err := os.ReadFile(path)
	if err != nil || len(owner) == 0 {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(string(owner), &st); err != nil {
		return errors.Is(err, unix.ENOENT)
	}
	return st.Type != unix.NSFS_MAGIC
}

// newNetns makes a network namespace, mounts it on path (a new file) and returns a
// netlink socket inside it. The namespace is made by a thread of its own (see
// onThread), so no other goroutine ever runs in it.
func newNetns(path string) (*nlConn, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return nil, fmt.Errorf("network namespace file: %w", err)
	}
	f.Close()
	var c *nlConn
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare network namespace: %w", err)
		}
		return nil
	}, func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount network namespace on %s: %w", path, err)
		}
		var err error
		c, err = dialNetlink()
		return err
	})
	if err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return nil, err
	}
	return c, nil
}

// onThread runs fn on an OS thread locked to its goroutine, after enter has moved
// the thread to another network namespace; then it moves the thread back and hands
// it back to the Go scheduler. A thread that cannot be moved back is never handed
// back: it ends with its goroutine. Moving back comes first because the runtime never
// ends the process's main thread (it parks it for good instead), and a main thread
// left in a container's namespace would give the whole process that namespace's
// /proc/self/net (the flows check reads /proc/net/tcp).
func onThread(enter, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread() // nothing changed
			done <- fmt.Errorf("network namespace of the thread: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			// unshare and setns change nothing when they fail.
			runtime.UnlockOSThread()
			done <- err
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// InNamespace runs fn on an OS thread that has joined the network namespace mounted
// at netns (an Endpoint's NetNS), so that the sockets fn opens belong to that
// namespace: a socket keeps the namespace it was made in for its whole life, whatever
// thread uses it afterwards, so the node can serve a container's namespace from its
// own goroutines. The thread is locked to fn's goroutine and moved back before any
// other goroutine may run on it (see onThread). fn must only make sockets (socket,
// bind, listen, connect) or fork processes (which are born in the thread's namespace):
// a goroutine it starts runs elsewhere.
func InNamespace(netns string, fn func() error) error {
	f, err := os.Open(netns)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer f.Close()
	return onThread(func() error {
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("join network namespace %s: %w", netns, err)
		}
		return nil
	}, fn)
}
