//go:build amd64 && !purego

package blake3

import "golang.org/x/sys/cpu"

//go:generate go run gen_kernel.go

// haveKernel reports whether the CPU runs the AVX-512 kernels of kernel_amd64.s
// (AVX-512 Foundation, and Vector Length for their 256-bit stores).
var haveKernel = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL

// compressChunks16 compresses the 16 whole chunks at in, chunk j with counter
// ctr[0][j] | ctr[1][j]<<32 and block b's flags flags[b], and writes chunk j's chaining
// value to out[j].
//
//go:noescape
func compressChunks16(out *[16][8]uint32, in *[16 * 1024]byte, key *[8]uint32, ctr *[2][16]uint32, flags *[16]uint32)

// compressParents16 compresses 16 parent nodes, parent j of the chaining values
// in[2j] and in[2j+1] with flags, and writes parent j's chaining value to out[j]. out
// may be the first half of in.
//
//go:noescape
func compressParents16(out *[16][8]uint32, in *[32][8]uint32, key *[8]uint32, flags uint32)
