//go:build ignore

// gen_kernel writes kernel_amd64.s, the AVX-512 compression of 16 BLAKE3 inputs at
// once, one per 32-bit lane of a ZMM register:
//
//	compressChunks16   16 whole chunks (16 blocks each) to their chaining values
//	compressParents16  16 parent nodes (pairs of chaining values) to theirs
//
// Each block of the 16 inputs is loaded with plain loads and transposed in registers
// (unpack of dwords, of qwords, then two shuffles of 128-bit lanes), so that register
// w holds message word w of all 16 inputs. lukechampine.com/blake3/guts loads the same
// words with VPGATHERDD, which on AMD Zen CPUs costs more than the rounds themselves
// (see the package comment). The rounds are BLAKE3's: seven, with the message
// permutation between them and the four G functions of each half-round interleaved.
// Each G adds its message word to a before adding b, so that the add waiting on b's
// last rotation is the only one on the chain: the rounds are bound by that chain's
// latency, and this took the kernel from 9.7 to 11 GB/s.
//
//	go generate ./netsvc/receipt/internal/blake3
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
)

// perm is BLAKE3's message permutation, applied between rounds.
var perm = [16]int{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}

// gen holds the text written so far and which vector registers are free.
type gen struct {
	b    bytes.Buffer
	free []int // vector registers Z0..Z31 not in use, used as a stack
}

func (g *gen) op(format string, args ...any) { fmt.Fprintf(&g.b, "\t"+format+"\n", args...) }

func (g *gen) alloc() int {
	if len(g.free) == 0 {
		log.Fatal("out of vector registers")
	}
	r := g.free[len(g.free)-1]
	g.free = g.free[:len(g.free)-1]
	return r
}

func (g *gen) release(rs ...int) { g.free = append(g.free, rs...) }

// transpose treats rows[j] as row j of a 16×16 matrix of dwords and returns the
// registers that hold its columns: column w holds dword w of every row, in row order.
// The rows' registers are released.
func (g *gen) transpose(rows [16]int) (cols [16]int) {
	// Dwords: a[k] holds, in each 128-bit lane L, dwords 4L and 4L+1 of rows 2k and
	// 2k+1 interleaved; b[k] dwords 4L+2 and 4L+3.
	var a, b [8]int
	for k := range 8 {
		x, y := rows[2*k], rows[2*k+1]
		a[k], b[k] = g.alloc(), g.alloc()
		g.op("VPUNPCKLDQ Z%d, Z%d, Z%d", y, x, a[k])
		g.op("VPUNPCKHDQ Z%d, Z%d, Z%d", y, x, b[k])
		g.release(x, y)
	}
	// Qwords: c[s][m] holds, in lane L, dword 4L+s of rows 4m to 4m+3.
	var c [4][4]int
	for m := range 4 {
		for i, src := range [2][8]int{a, b} {
			x, y := src[2*m], src[2*m+1]
			c[2*i][m], c[2*i+1][m] = g.alloc(), g.alloc()
			g.op("VPUNPCKLQDQ Z%d, Z%d, Z%d", y, x, c[2*i][m])
			g.op("VPUNPCKHQDQ Z%d, Z%d, Z%d", y, x, c[2*i+1][m])
			g.release(x, y)
		}
	}
	// 128-bit lanes, twice: VSHUFI32X4 $imm, y, x, dst takes dst's low two lanes
	// from x and its high two from y; 0x88 picks lanes 0 and 2 of each, 0xDD lanes
	// 1 and 3.
	shuf := func(x, y int, imm string) int {
		d := g.alloc()
		g.op("VSHUFI32X4 $%s, Z%d, Z%d, Z%d", imm, y, x, d)
		return d
	}
	for s := range 4 {
		d0, e0 := shuf(c[s][0], c[s][1], "0x88"), shuf(c[s][0], c[s][1], "0xdd")
		g.release(c[s][0], c[s][1])
		d1, e1 := shuf(c[s][2], c[s][3], "0x88"), shuf(c[s][2], c[s][3], "0xdd")
		g.release(c[s][2], c[s][3])
		cols[s], cols[8+s] = shuf(d0, d1, "0x88"), shuf(d0, d1, "0xdd")
		g.release(d0, d1)
		cols[4+s], cols[12+s] = shuf(e0, e1, "0x88"), shuf(e0, e1, "0xdd")
		g.release(e0, e1)
	}
	return cols
}

// rounds runs BLAKE3's seven rounds on the state registers v with message registers m.
func (g *gen) rounds(v, m [16]int) {
	sched := [16]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	for r := range 7 {
		g.op("// Round %d", r+1)
		g.half(v, [4][4]int{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}}, m, sched[0:8])
		g.half(v, [4][4]int{{0, 5, 10, 15}, {1, 6, 11, 12}, {2, 7, 8, 13}, {3, 4, 9, 14}}, m, sched[8:16])
		var next [16]int
		for i := range next {
			next[i] = sched[perm[i]]
		}
		sched = next
	}
}

// half runs four G functions, on the columns or the diagonals of the state, step by
// step side by side so that the CPU has four independent chains to work on.
func (g *gen) half(v [16]int, abcd [4][4]int, m [16]int, words []int) {
	type step struct {
		op  string
		rot int
		dst int // index into a, b, c, d
		src int // index into a, b, c, d, or -1 and -2 for the G's two message words
	}
	steps := []step{
		{"VPADDD", 0, 0, -1}, {"VPADDD", 0, 0, 1}, {"VPXORD", 0, 3, 0}, {"VPRORD", 16, 3, 3},
		{"VPADDD", 0, 2, 3}, {"VPXORD", 0, 1, 2}, {"VPRORD", 12, 1, 1},
		{"VPADDD", 0, 0, -2}, {"VPADDD", 0, 0, 1}, {"VPXORD", 0, 3, 0}, {"VPRORD", 8, 3, 3},
		{"VPADDD", 0, 2, 3}, {"VPXORD", 0, 1, 2}, {"VPRORD", 7, 1, 1},
	}
	for _, st := range steps {
		for i, q := range abcd {
			dst := v[q[st.dst]]
			switch {
			case st.op == "VPRORD":
				g.op("VPRORD $%d, Z%d, Z%d", st.rot, dst, dst)
			case st.src < 0:
				g.op("%s Z%d, Z%d, Z%d", st.op, m[words[2*i-1-st.src]], dst, dst)
			default:
				g.op("%s Z%d, Z%d, Z%d", st.op, v[q[st.src]], dst, dst)
			}
		}
	}
}

// kernel writes one function. blocks is the number of 64-byte blocks per input and
// stride the distance in bytes between two inputs; chunks take their per-lane
// counters and per-block flags from memory, parents have counter 0 and one flags word.
func (g *gen) kernel(name, args string, frame, stride, blocks int, chunks bool) {
	fmt.Fprintf(&g.b, "// func %s(%s)\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", name, args, name, frame)
	g.op("MOVQ out+0(FP), DI")
	g.op("MOVQ in+8(FP), SI")
	g.op("MOVQ key+16(FP), AX")
	if chunks {
		g.op("MOVQ ctr+24(FP), R8")
		g.op("MOVQ flags+32(FP), R9")
	}
	// Z0..Z7 carry the chaining values from block to block; the rest are free at the
	// start of each block.
	var v [16]int
	for i := range 8 {
		v[i] = i
		g.op("VPBROADCASTD %d(AX), Z%d", 4*i, i)
	}
	if blocks > 1 {
		g.op("XORQ DX, DX")
		fmt.Fprintf(&g.b, "loop:\n")
	}
	g.free = g.free[:0]
	for r := 31; r >= 8; r-- {
		g.free = append(g.free, r)
	}
	var rows [16]int
	for j := range rows {
		rows[j] = g.alloc()
		g.op("VMOVDQU32 %d(SI), Z%d", j*stride, rows[j])
	}
	m := g.transpose(rows)
	for i := 8; i < 16; i++ {
		v[i] = g.alloc()
	}
	for i := range 4 {
		g.op("VPBROADCASTD b3iv<>+%d(SB), Z%d", 4*i, v[8+i])
	}
	if chunks {
		g.op("VMOVDQU32 (R8), Z%d", v[12])
		g.op("VMOVDQU32 64(R8), Z%d", v[13])
		g.op("VPBROADCASTD b3len<>(SB), Z%d", v[14])
		g.op("VPBROADCASTD (R9)(DX*4), Z%d", v[15])
	} else {
		g.op("VPXORD Z%d, Z%d, Z%d", v[12], v[12], v[12])
		g.op("VPXORD Z%d, Z%d, Z%d", v[13], v[13], v[13])
		g.op("VPBROADCASTD b3len<>(SB), Z%d", v[14])
		g.op("MOVL flags+24(FP), BX")
		g.op("VPBROADCASTD BX, Z%d", v[15])
	}
	g.rounds(v, m)
	g.op("// Chaining values")
	for i := range 8 {
		g.op("VPXORD Z%d, Z%d, Z%d", v[8+i], i, i)
	}
	if blocks > 1 {
		g.op("ADDQ $64, SI")
		g.op("INCQ DX")
		g.op("CMPQ DX, $%d", blocks)
		g.op("JNE loop")
	}
	// The chaining values, word w of every input in Zw, go back to one input per
	// row by the same transpose; the upper 8 rows are whatever the free registers
	// hold, and only the low 256 bits of each result are stored.
	g.op("// Store chaining values")
	g.free = g.free[:0]
	for r := 31; r >= 8; r-- {
		g.free = append(g.free, r)
	}
	for i := range 8 {
		rows[i] = i
		rows[8+i] = g.alloc()
	}
	cols := g.transpose(rows)
	for j, r := range cols {
		g.op("VMOVDQU32 Y%d, %d(DI)", r, 32*j)
	}
	g.op("VZEROUPPER")
	g.op("RET")
	fmt.Fprintln(&g.b)
}

func main() {
	out := flag.String("o", "kernel_amd64.s", "the file to write")
	flag.Parse()
	var g gen
	g.b.WriteString("// Code generated by gen_kernel.go. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	g.b.WriteString("DATA b3iv<>+0(SB)/4, $0x6a09e667\nDATA b3iv<>+4(SB)/4, $0xbb67ae85\nDATA b3iv<>+8(SB)/4, $0x3c6ef372\nDATA b3iv<>+12(SB)/4, $0xa54ff53a\nGLOBL b3iv<>(SB), RODATA|NOPTR, $16\n\n")
	g.b.WriteString("DATA b3len<>+0(SB)/4, $64\nGLOBL b3len<>(SB), RODATA|NOPTR, $4\n\n")
	g.kernel("compressChunks16", "out *[16][8]uint32, in *[16384]byte, key *[8]uint32, ctr *[2][16]uint32, flags *[16]uint32", 40, 1024, 16, true)
	g.kernel("compressParents16", "out *[16][8]uint32, in *[32][8]uint32, key *[8]uint32, flags uint32", 28, 64, 1, false)
	if err := os.WriteFile(*out, g.b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
