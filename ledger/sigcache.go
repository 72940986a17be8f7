package ledger

import "sync"

// VerifiedSet is a bounded SigCache: it remembers the last n leaf hashes whose
// signatures verified, forgetting the oldest first. It is safe for concurrent use.
type VerifiedSet struct {
	mu   sync.Mutex
	set  map[Hash]struct{}
	ring []Hash
	next int
}

// NewVerifiedSet returns a VerifiedSet holding up to n entries.
func NewVerifiedSet(n int) *VerifiedSet {
	return &VerifiedSet{set: make(map[Hash]struct{}, n), ring: make([]Hash, n)}
}

// Verified implements SigCache.
func (v *VerifiedSet) Verified(leaf Hash) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.set[leaf]
	return ok
}

// Add implements SigCache.
func (v *VerifiedSet) Add(leaf Hash) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.set[leaf]; ok || len(v.ring) == 0 {
		return
	}
	if old := v.ring[v.next]; len(v.set) == len(v.ring) {
		delete(v.set, old)
	}
	v.ring[v.next] = leaf
	v.set[leaf] = struct{}{}
	v.next = (v.next + 1) % len(v.ring)
}
