//go:build !amd64 || purego

package blake3

// haveKernel is false: the AVX-512 kernels are for amd64 only.
var haveKernel = false

func compressChunks16(out *[16][8]uint32, in *[16 * 1024]byte, key *[8]uint32, ctr *[2][16]uint32, flags *[16]uint32) {
	panic("blake3: no AVX-512 kernel on this platform")
}

func compressParents16(out *[16][8]uint32, in *[32][8]uint32, key *[8]uint32, flags uint32) {
	panic("blake3: no AVX-512 kernel on this platform")
}
