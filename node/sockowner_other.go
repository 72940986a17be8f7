//go:build !linux

package node

import "net/netip"

// socketOwnerDepot is Linux-only: elsewhere a connection to the proxy is not traced to
// a depot, so flows.allow is not enforced there (see docs/architecture.md).
func socketOwnerDepot(string, netip.AddrPort, map[int]string) (string, bool) { return "", false }
