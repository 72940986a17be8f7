package blake3

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3/guts"

	ref "lukechampine.com/blake3"
)

var _ hash.Hash = (*Hasher)(nil)

// vectors are the official BLAKE3 test vectors (test_vectors.json of the BLAKE3
// reference implementation): the hash of input_len bytes 0, 1, ..., 250, 0, 1, ...,
// its first 32 bytes.
var vectors = []struct {
	n    int
	hash string
}{
	{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
	{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
	{1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
	{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
	{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
	{2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
	{2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"},
	{3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"},
	{3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"},
	{4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"},
	{4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"},
	{5120, "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833"},
	{5121, "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff"},
	{6144, "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205"},
	{6145, "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f"},
	{7168, "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a"},
	{7169, "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817"},
	{8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
	{8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
	{16384, "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4"},
	{31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
	{100000, "d93c23eedaf165a7e0be908ba86f1a7a520d568d2d13cde787c8580c5c72cc54"},
}

// input is the test vectors' input: byte i is i mod 251.
func input(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestVectors hashes each vector's input in one write, in writes of several sizes
// that do and do not line up with chunks and SIMD groups, and with a Sum in between.
func TestVectors(t *testing.T) { forEachPath(t, testVectors) }

func testVectors(t *testing.T) {
	for _, v := range vectors {
		in := input(v.n)
		for _, w := range []int{1, 63, 1000, 1024, 4096, 16383, 16384, 16385, 1 << 20} {
			h := New()
			for off := 0; off < len(in); off += w {
				h.Write(in[off:min(len(in), off+w)])
				if off == w { // a Sum half-way must not disturb what follows
					h.Sum(nil)
				}
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != v.hash {
				t.Errorf("%d bytes in writes of %d: got %s, want %s", v.n, w, got, v.hash)
			}
		}
	}
}

// TestAgainstReference compares with the guts module's own one-shot hash over random
// lengths around group and tree boundaries, written in random pieces.
func TestAgainstReference(t *testing.T) { forEachPath(t, testAgainstReference) }

func testAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20+3000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	lengths := []int{0, 1, 64, 65, 1024, 1025, group - 1, group, group + 1, 2 * group, 3*group + 5,
		batchGroups * group, batchGroups*group + 1, (batchGroups+1)*group - 1, 2 * batchGroups * group,
		16 * group, 17*group - 1, 32 * group, 64*group + 1000, len(data)}
	for range 20 {
		lengths = append(lengths, r.IntN(len(data)))
	}
	for _, n := range lengths {
		want := ref.Sum256(data[:n])
		h := New()
		for off := 0; off < n; {
			w := min(n-off, 1+r.IntN(3*group))
			h.Write(data[off : off+w])
			off += w
		}
		if got := h.Sum256(); got != want {
			t.Errorf("%d bytes: got %x, want %x", n, got, want)
		}
		h.Reset()
		h.Write(data[:n])
		if got := h.Sum256(); got != want {
			t.Errorf("%d bytes after Reset: got %x, want %x", n, got, want)
		}
	}
}

// forEachPath runs test with this CPU's kernels, if it has them, and with the guts
// module's code alone.
func forEachPath(t *testing.T, test func(*testing.T)) {
	t.Cleanup(func() { useKernel = haveKernel })
	for _, kernel := range []bool{true, false} {
		name := "guts"
		if kernel {
			name = "kernel"
		}
		t.Run(name, func(t *testing.T) {
			if kernel && !haveKernel {
				t.Skip("this CPU lacks AVX-512 (F and VL), which the kernels need")
			}
			useKernel = kernel
			test(t)
		})
	}
}

// TestKernels checks both kernels lane by lane against the guts module's scalar
// compression, with counters that carry into their high word.
func TestKernels(t *testing.T) {
	if !haveKernel {
		t.Skip("this CPU lacks AVX-512 (F and VL), which the kernels need")
	}
	r := rand.New(rand.NewPCG(3, 4))
	var buf [group]byte
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	at := uint64(1)<<32 - 5 // lanes 5 and up count past 2^32
	var ctr [2][16]uint32
	for j := range 16 {
		ctr[0][j], ctr[1][j] = uint32(at+uint64(j)), uint32((at+uint64(j))>>32)
	}
	var cvs [16][8]uint32
	compressChunks16(&cvs, &buf, &guts.IV, &ctr, &chunkFlags)
	for j := range 16 {
		want := guts.ChainingValue(guts.CompressChunk(buf[j*guts.ChunkSize:(j+1)*guts.ChunkSize], &guts.IV, at+uint64(j), 0))
		if cvs[j] != want {
			t.Errorf("chunk %d: got %08x, want %08x", j, cvs[j], want)
		}
	}
	var in [32][8]uint32
	for i := range in {
		for w := range in[i] {
			in[i][w] = r.Uint32()
		}
	}
	var parents [16][8]uint32
	compressParents16(&parents, &in, &guts.IV, guts.FlagParent)
	for j := range 16 {
		if want := guts.ChainingValue(guts.ParentNode(in[2*j], in[2*j+1], &guts.IV, 0)); parents[j] != want {
			t.Errorf("parent %d: got %08x, want %08x", j, parents[j], want)
		}
	}
}

// TestKernelGenerated checks that kernel_amd64.s is what gen_kernel.go writes now.
func TestKernelGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator with the go command")
	}
	out := filepath.Join(t.TempDir(), "kernel.s")
	cmd := exec.Command("go", "run", "gen_kernel.go", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_kernel.go: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("kernel_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernel_amd64.s differs from what gen_kernel.go writes: run go generate ./netsvc/receipt/internal/blake3")
	}
}

// FuzzWrite hashes inputs of up to 1 MiB (n bytes repeating pattern, so that the
// corpus stays small), written in pieces of the sizes w1 and w2 in turn, with either
// path, and compares with the guts module's one-shot hash.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("abc"), uint32(3), uint16(1), uint16(2), false)
	f.Add([]byte{1, 2, 3, 4, 5}, uint32(3*group+100), uint16(group), uint16(1000), true)
	f.Add([]byte{7}, uint32((batchGroups+1)*group+1), uint16(group-1), uint16(group+1), true)
	f.Fuzz(func(t *testing.T, pattern []byte, n uint32, w1, w2 uint16, kernel bool) {
		defer func() { useKernel = haveKernel }()
		useKernel = kernel && haveKernel
		data := make([]byte, int(n%(1<<20)))
		if len(pattern) > 0 {
			for i := range data {
				data[i] = pattern[i%len(pattern)] + byte(i/len(pattern))
			}
		}
		want := ref.Sum256(data)
		h := New()
		for off, i := 0, 0; off < len(data); i++ {
			w := max(int(w1), 1)
			if i%2 == 1 {
				w = max(int(w2), 1)
			}
			h.Write(data[off:min(len(data), off+w)])
			off += w
		}
		if got := h.Sum256(); got != want {
			t.Fatalf("%d bytes in writes of %d and %d: got %x, want %x", len(data), w1, w2, got, want)
		}
	})
}

// TestNoAllocs checks that writing and summing allocate nothing.
func TestNoAllocs(t *testing.T) {
	h := New()
	p := make([]byte, 40000)
	if n := testing.AllocsPerRun(20, func() { h.Write(p); h.Sum256() }); n != 0 {
		t.Errorf("Write and Sum256 allocate %v times, want 0", n)
	}
}

// BenchmarkWrite is the hash rate for writes of several sizes; compare with
// crypto/sha256 in the receipt package's BenchmarkHash.
func BenchmarkWrite(b *testing.B) {
	data := make([]byte, 4<<20)
	for _, w := range []int{1 << 10, 4 << 10, 16 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("write=%dKiB", w>>10), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				h := New()
				for off := 0; off < len(data); off += w {
					h.Write(data[off : off+w])
				}
				h.Sum256()
			}
		})
	}
}
