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

// socketOwnerDepot finds the depot whose process holds the TCP socket bound to local
// address addr on this host (the client end of a connection to the proxy): the socket's
// inode from /proc/net/tcp{,6}, the process that has it open from /proc/*/fd, and the
// depot from that process's QNET_DEPOT_ID, which the agent gives every depot and its
// children inherit. ok is false when no depot holds it (a process of the node's users).
func socketOwnerDepot(addr netip.AddrPort) (depot string, ok bool) {
	inode := socketInode(addr)
	if inode == "" {
		return "", false
	}
	target := "socket:[" + inode + "]"
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid := p.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", pid, "fd", fd.Name())); err == nil && l == target {
				return depotOfProcess(pid)
			}
		}
	}
	return "", false
}

// depotOfProcess reads QNET_DEPOT_ID from a process's environment.
func depotOfProcess(pid string) (string, bool) {
	env, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
	if err != nil {
		return "", false
	}
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if v, found := bytes.CutPrefix(kv, []byte("QNET_DEPOT_ID=")); found && len(v) > 0 {
			return string(v), true
		}
	}
	return "", false
}

// socketInode returns the inode of the TCP socket whose local address is addr.
func socketInode(addr netip.AddrPort) string {
	file, want := "/proc/net/tcp", procNetAddr(addr)
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		file = "/proc/net/tcp6"
	}
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1] == want {
			return fields[9]
		}
	}
	return ""
}

// procNetAddr writes addr as /proc/net/tcp does: the address's 32-bit words in host
// (little-endian) order, in upper-case hex, then the port.
func procNetAddr(addr netip.AddrPort) string {
	a := addr.Addr().Unmap()
	b := a.AsSlice()
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return strings.ToUpper(hex.EncodeToString(b)) + fmt.Sprintf(":%04X", addr.Port())
}
