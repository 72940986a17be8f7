package node

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socketOwnerDepot finds the depot whose process holds the socket of protocol proto
// ("tcp" or "udp") bound to local address addr on this host (the client end of a
// connection, or the sender of a datagram, to the proxy). roots maps the main process
// of each depot running on this node to the depot's ID. The socket's inode comes from
// /proc/net/{tcp,udp}{,6}; the processes searched for it are the roots and their
// descendants only (from the parent PIDs in /proc/*/stat), so the search costs a few
// directory reads, not a scan of every process's descriptors. ok is false when no
// depot holds it (a process of the node's users).
func socketOwnerDepot(proto string, addr netip.AddrPort, roots map[int]string) (depot string, ok bool) {
	if len(roots) == 0 {
		return "", false
	}
	inode := socketInode(proto, addr)
	if inode == "" {
		return "", false
	}
	target := "socket:[" + inode + "]"
	for pid, id := range depotProcesses(roots) {
		p := strconv.Itoa(pid)
		fds, err := os.ReadDir(filepath.Join("/proc", p, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", p, "fd", fd.Name())); err == nil && l == target {
				return id, true
			}
		}
	}
	return "", false
}

// depotProcesses returns every process descended from (or being) one of roots, with
// the depot of its root.
func depotProcesses(roots map[int]string) map[int]string {
	parent := map[int]int{}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so read
		// after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			parent[pid] = ppid
		}
	}
	out := map[int]string{}
	for pid := range parent {
		for p, hops := pid, 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if id, ok := roots[p]; ok {
				out[pid] = id
				break
			}
		}
	}
	for pid, id := range roots {
		out[pid] = id
	}
	return out
}

// socketInode returns the inode of the socket of protocol proto ("tcp" or "udp") whose
// local address is addr. A UDP client need not connect its socket, nor bind it to an
// address: the datagram's source is then the port alone on the wildcard address
// (0.0.0.0, or :: for a dual-stack socket), which is looked for when no socket has the
// exact address. Two sockets cannot hold one port there without SO_REUSEPORT, which a
// client's ephemeral port does not have.
func socketInode(proto string, addr netip.AddrPort) string {
	base := "/proc/net/tcp"
	if proto == "udp" {
		base = "/proc/net/udp"
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	port := addr.Port()
	type place struct{ file, local string }
	var places []place
	if addr.Addr().Is4() {
		// A dual-stack socket sees an IPv4 peer as ::ffff:a.b.c.d, in the *6 file.
		mapped := netip.AddrPortFrom(netip.AddrFrom16(addr.Addr().As16()), port)
		places = append(places, place{base, procNetAddr(addr)}, place{base + "6", procNetAddr(mapped)})
		if proto == "udp" {
			places = append(places, place{base, procNetAddr(netip.AddrPortFrom(netip.IPv4Unspecified(), port))})
		}
	} else {
		places = append(places, place{base + "6", procNetAddr(addr)})
	}
	if proto == "udp" {
		places = append(places, place{base + "6", procNetAddr(netip.AddrPortFrom(netip.IPv6Unspecified(), port))})
	}
	for _, pl := range places {
		if inode := inodeIn(pl.file, pl.local); inode != "" {
			return inode
		}
	}
	return ""
}

// inodeIn returns the inode of the socket of /proc/net file whose local address is
// local, as procNetAddr writes it.
func inodeIn(file, local string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1] == local {
			return fields[9]
		}
	}
	return ""
}

// procNetAddr writes addr as /proc/net/tcp does: the address's 32-bit words in host
// (little-endian) order, in upper-case hex, then the port. An IPv4-mapped IPv6
// address stays IPv6 (as /proc/net/*6 writes it); callers unmap the senders they see.
func procNetAddr(addr netip.AddrPort) string {
	a := addr.Addr()
	b := a.AsSlice()
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return strings.ToUpper(hex.EncodeToString(b)) + fmt.Sprintf(":%04X", addr.Port())
}
