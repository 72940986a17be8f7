// Package blake3 is a streaming BLAKE3-256 hasher for long streams written in pieces
// of any size, as the receipt frame layer hashes a flow's payload.
//
// It builds BLAKE3's tree itself rather than using the Hasher of
// lukechampine.com/blake3, for reasons measured on the target machines: that Hasher
// runs large writes on several goroutines, which on a node whose cores also carry the
// tunnel's encryption only adds hand-offs; and it holds back each write's last chunk,
// so the next write's chunks no longer start on a 16-chunk boundary and fall off the
// SIMD path (below 2 GB/s for 64 KiB writes).
//
// Chunks are compressed 16 at a time (a group of 16 KiB). On CPUs with AVX-512 this
// package uses kernels of its own (kernel_amd64.s, written by gen_kernel.go): the
// guts module's AVX-512 code loads the message words of 16 chunks with VPGATHERDD,
// which on AMD Zen costs as much as the compression itself (7.0 GB/s for whole
// groups; 10 GB/s with the gathers taken out), where loads and an in-register
// transpose reach 11 GB/s, and the whole hasher 9.4-9.9 GB/s (BenchmarkWrite). The
// tree above the chunks is also compressed 16 nodes at a time: eight groups' chunk
// chaining values (128) are gathered first and reduced level by level, where the
// guts module spends an 8-wide AVX2 call on every level of every group (18% of its
// time). Elsewhere the guts module's code (AVX2 or plain Go) compresses each group,
// and its tree is reduced one node at a time.
//
// Every whole group is compressed in place from the caller's slice when it lies whole
// in one Write; only the bytes of a group that is split across writes are copied into
// a buffer. No goroutine is started. The output is standard BLAKE3 (unkeyed, 32
// bytes), checked against the official test vectors and the guts module's own hasher.
package blake3

import (
	"math/bits"

	"lukechampine.com/blake3/guts"
)

// Size is the length of a sum in bytes.
const Size = 32

const (
	// group is the bytes of chunks compressed in one SIMD pass, and groupHeight the
	// height of its subtree in the chunk tree (16 = 1<<4).
	group       = guts.MaxSIMD * guts.ChunkSize
	groupHeight = 4
	// batchGroups groups make a batch, whose tree is reduced at once: 128 chunks, a
	// subtree of height batchHeight.
	batchGroups = 8
	batchChunks = batchGroups * guts.MaxSIMD
	batchHeight = groupHeight + 3
)

// useKernel selects the AVX-512 kernels; tests turn it off to check the other path.
var useKernel = haveKernel

// chunkFlags are the flags of the 16 blocks of a whole chunk.
var chunkFlags = [16]uint32{0: guts.FlagChunkStart, 15: guts.FlagChunkEnd}

// Hasher computes the BLAKE3-256 of everything written to it. Its zero value is ready
// to use. It implements hash.Hash; it is not safe for concurrent use.
//
// The stream so far is, from left to right: complete subtrees on the stack; the
// latest batch (last), whose root node is held uncompressed because, if the stream
// ends with it, it is the tree's right edge; the whole groups of the next batch
// (pending); and the start of a group (buf).
type Hasher struct {
	// stack holds the chaining values of complete subtrees, at most one per height,
	// as the bits of counter say; heights below batchHeight are never used.
	stack   [64][8]uint32
	counter uint64 // chunks in the subtrees of stack

	last    guts.Node
	hasLast bool

	// pending is the number of whole groups after last. With the kernels, cvs holds
	// their chunks' chaining values; without, nodes holds each group's root node.
	pending int
	cvs     [batchChunks][8]uint32
	nodes   [batchGroups]guts.Node

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
func (h *Hasher) Reset() { h.counter, h.hasLast, h.pending, h.buflen = 0, false, 0, 0 }

// chunks is the number of chunks in whole groups so far.
func (h *Hasher) chunks() uint64 {
	n := h.counter + uint64(h.pending)*guts.MaxSIMD
	if h.hasLast {
		n += batchChunks
	}
	return n
}

// pushCV puts the chaining value of a complete subtree of the given height on a stack
// of complete subtrees, merging those of equal height into their parents as it goes.
// counter must be a multiple of the subtree's chunks.
func pushCV(stack *[64][8]uint32, counter *uint64, cv [8]uint32, height int) {
	i := height
	for *counter&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(stack[i], cv, &guts.IV, 0))
		i++
	}
	stack[i] = cv
	*counter += 1 << height
}

// compress compresses one whole group, which follows everything hashed so far, and
// reduces the batch when it is the batch's last.
func (h *Hasher) compress(g *[group]byte) {
	at := h.chunks()
	if useKernel {
		var ctr [2][16]uint32
		for j := range 16 {
			c := at + uint64(j)
			ctr[0][j], ctr[1][j] = uint32(c), uint32(c>>32)
		}
		compressChunks16((*[16][8]uint32)(h.cvs[h.pending*guts.MaxSIMD:]), g, &guts.IV, &ctr, &chunkFlags)
	} else {
		h.nodes[h.pending] = guts.CompressBuffer(g, group, &guts.IV, at, 0)
	}
	h.pending++
	if h.pending < batchGroups {
		return
	}
	var n guts.Node
	if useKernel {
		n = reduce(&h.cvs, batchChunks)
	} else {
		var cvs [batchChunks][8]uint32
		for i, g := range h.nodes {
			cvs[i] = guts.ChainingValue(g)
		}
		n = reduce(&cvs, batchGroups)
	}
	if h.hasLast {
		pushCV(&h.stack, &h.counter, guts.ChainingValue(h.last), batchHeight)
	}
	h.last, h.hasLast, h.pending = n, true, 0
}

// reduce returns the root node of the subtree whose leaves' chaining values are the
// first n (a power of two, at least 2) of cvs, which it overwrites.
func reduce(cvs *[batchChunks][8]uint32, n int) guts.Node {
	for ; n > 2; n /= 2 {
		if useKernel {
			// Parent j of this level goes to cvs[j]; each call reads its 32
			// inputs before writing its 16 outputs over the ones it read or
			// those an earlier call read. Lanes past n/2 compute garbage.
			for j := 0; j < n/2; j += 16 {
				compressParents16((*[16][8]uint32)(cvs[j:]), (*[32][8]uint32)(cvs[2*j:]), &guts.IV, guts.FlagParent)
			}
			continue
		}
		for j := range n / 2 {
			cvs[j] = guts.ChainingValue(guts.ParentNode(cvs[2*j], cvs[2*j+1], &guts.IV, 0))
		}
	}
	return guts.ParentNode(cvs[0], cvs[1], &guts.IV, 0)
}

// groupNode returns the root node of pending group i.
func (h *Hasher) groupNode(i int) guts.Node {
	if !useKernel {
		return h.nodes[i]
	}
	var cvs [batchChunks][8]uint32
	copy(cvs[:guts.MaxSIMD], h.cvs[i*guts.MaxSIMD:])
	return reduce(&cvs, guts.MaxSIMD)
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
	// The subtrees after the stack go on a copy of it, left to right, each but the
	// rightmost as a chaining value; the rightmost stays a node, to be the root or
	// the right child of the parents above it.
	stack, counter := h.stack, h.counter
	var n guts.Node
	height := -1 // of n; -1 while there is none
	next := func(m guts.Node, mh int) {
		if height >= 0 {
			pushCV(&stack, &counter, guts.ChainingValue(n), height)
		}
		n, height = m, mh
	}
	if h.hasLast {
		next(h.last, batchHeight)
	}
	for i := range h.pending {
		next(h.groupNode(i), groupHeight)
	}
	if h.buflen > 0 || height < 0 { // a partial group, or the empty input
		next(guts.CompressBuffer(&h.buf, h.buflen, &guts.IV, h.chunks(), 0), 0)
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
