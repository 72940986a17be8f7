// Package blake3 is a streaming BLAKE3-256 hasher for long streams written in pieces
// of any size, as the receipt frame layer hashes a flow's payload.
//
// It drives the compression functions of lukechampine.com/blake3/guts (AVX-512 with 16
// chunks at once, AVX2 with 8, or plain Go) itself rather than using that module's
// Hasher, for two reasons measured on the target machines: its Hasher runs large writes
// on several goroutines, which on a node whose cores also carry the tunnel's encryption
// only adds hand-offs; and it holds back each write's last chunk, so the next write's
// chunks no longer start on a 16-chunk boundary and fall off the SIMD path (below 2 GB/s
// for 64 KiB writes, where this hasher reaches 5 GB/s with AVX-512).
//
// Here every 16 KiB group of chunks (16 × 1 KiB, one AVX-512 pass) is compressed in
// place from the caller's slice when it lies whole in one Write; only the bytes of a
// group that is split across writes are copied into a buffer. No goroutine is started.
// The output is standard BLAKE3 (unkeyed, 32 bytes), checked against the official test
// vectors and the guts module's own hasher.
package blake3

import (
	"math/bits"

	"lukechampine.com/blake3/guts"
)

// Size is the length of a sum in bytes.
const Size = 32

// group is the bytes of chunks compressed in one SIMD pass.
const group = guts.MaxSIMD * guts.ChunkSize

// groupHeight is the height in the chunk tree of a group's subtree (16 = 1<<4).
const groupHeight = 4

// Hasher computes the BLAKE3-256 of everything written to it. Its zero value is ready
// to use. It implements hash.Hash; it is not safe for concurrent use.
type Hasher struct {
	// stack holds the chaining values of complete subtrees, at most one per height,
	// as the bits of counter say; heights below groupHeight are never used.
	stack   [64][8]uint32
	counter uint64 // chunks in the subtrees of stack

	// last is the root node of the latest whole group, not yet on the stack: if the
	// stream ends with it, it is the tree's right edge and needs no chaining value.
	last    guts.Node
	hasLast bool

	// buf holds the start of a group that a Write did not complete.
	buf    [group]byte
	buflen int
}

// New returns a Hasher.
func New() *Hasher { return new(Hasher) }

// Size returns the length of a sum: 32.
func (h *Hasher) Size() int { return Size }

// BlockSize returns BLAKE3's block size, 64.
func (h *Hasher) BlockSize() int { return guts.BlockSize }

// Reset forgets everything written.
func (h *Hasher) Reset() { h.counter, h.hasLast, h.buflen = 0, false, 0 }

// push puts the pending group on the stack.
func (h *Hasher) push() {
	if h.hasLast {
		h.hasLast = false
		pushCV(&h.stack, &h.counter, guts.ChainingValue(h.last))
	}
}

// pushCV puts the chaining value of a whole group on a stack of complete subtrees,
// merging those of equal height into their parents as it goes.
func pushCV(stack *[64][8]uint32, counter *uint64, cv [8]uint32) {
	i := groupHeight
	for *counter&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(stack[i], cv, &guts.IV, 0))
		i++
	}
	stack[i] = cv
	*counter += guts.MaxSIMD
}

// compress compresses one whole group, which follows everything hashed so far.
func (h *Hasher) compress(g *[group]byte) {
	h.push()
	h.last = guts.CompressBuffer(g, group, &guts.IV, h.counter, 0)
	h.hasLast = true
}

// Write adds p to the hash. It never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	if h.buflen > 0 {
		c := copy(h.buf[h.buflen:], p)
		h.buflen += c
		p = p[c:]
		if h.buflen < group {
			return n, nil
		}
		h.compress(&h.buf)
		h.buflen = 0
	}
	for len(p) >= group {
		h.compress((*[group]byte)(p))
		p = p[group:]
	}
	h.buflen = copy(h.buf[:], p)
	return n, nil
}

// Sum appends the hash of what was written so far to b. Writing may go on after it.
func (h *Hasher) Sum(b []byte) []byte {
	s := h.Sum256()
	return append(b, s[:]...)
}

// Sum256 returns the hash of what was written so far. Writing may go on after it.
func (h *Hasher) Sum256() [Size]byte {
	var n guts.Node
	counter, stack := h.counter, &h.stack
	if h.buflen > 0 || !h.hasLast {
		// The tree's right edge is the partial group (or the empty input): the
		// pending whole group, if any, joins the stack first, on a copy of it.
		if h.hasLast {
			st := h.stack
			pushCV(&st, &counter, guts.ChainingValue(h.last))
			stack = &st
		}
		n = guts.CompressBuffer(&h.buf, h.buflen, &guts.IV, counter, 0)
	} else {
		n = h.last
	}
	for i := bits.TrailingZeros64(counter); i < bits.Len64(counter); i++ {
		if counter&(1<<i) != 0 {
			n = guts.ParentNode(stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	n.Flags |= guts.FlagRoot
	words := guts.WordsToBytes(guts.CompressNode(n))
	var out [Size]byte
	copy(out[:], words[:])
	return out
}
