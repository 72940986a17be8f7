package state

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"

	bolt "go.etcd.io/bbolt"
)

// VIPPrefix is where services' stable addresses come from: loopback addresses, which
// every Linux node can bind without configuring anything (the whole of 127.0.0.0/8 is
// local there). A service keeps its address from its creation to its deletion, the
// same on every node, since every node allocates it in the same block.
var VIPPrefix = netip.MustParsePrefix("127.64.0.0/10")

var bucketVIPs = []byte("vips")

// allocVIP gives service name a free address of VIPPrefix: the one its name hashes to,
// or the next free one after it. Deterministic, so every node's state agrees.
func allocVIP(b *bolt.Bucket, name string) (netip.Addr, error) {
	size := uint32(1) << (32 - VIPPrefix.Bits())
	base := binary.BigEndian.Uint32(VIPPrefix.Addr().AsSlice())
	sum := sha256.Sum256([]byte(name))
	start := binary.BigEndian.Uint32(sum[:4]) % size
	for i := range size {
		off := (start + i) % size
		if off == 0 || off == size-1 {
			continue // the prefix's first and last addresses are left alone
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+off)
		addr := netip.AddrFrom4(a)
		if b.Get(addr.AsSlice()) == nil {
			if err := b.Put(addr.AsSlice(), []byte(name)); err != nil {
				return netip.Addr{}, err
			}
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free service address left in %s", VIPPrefix)
}

// freeVIP returns a service's address to the pool.
func freeVIP(b *bolt.Bucket, addr string) error {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil // a service without an address has none to free
	}
	return b.Delete(a.AsSlice())
}
