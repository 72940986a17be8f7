package identity

import "sync/atomic"

// Current holds the key a node signs with now. A node's keys can be rotated while it
// runs; every part that signs or handshakes reads the key from here each time.
type Current struct{ p atomic.Pointer[Key] }

// NewCurrent returns a holder of k.
func NewCurrent(k *Key) *Current {
	c := &Current{}
	c.p.Store(k)
	return c
}

// Get returns the key.
func (c *Current) Get() *Key { return c.p.Load() }

// Set replaces the key.
func (c *Current) Set(k *Key) { c.p.Store(k) }
