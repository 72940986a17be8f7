package shim

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/tetratelabs/wazero"
)

// wasmSection encodes one section.
func wasmSection(id byte, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
}

// segment is a data segment for testModule: an active one of memory 0 at offset,
// unless raw holds its whole encoding.
type segment struct {
	offset int32
	data   string
	raw    []byte
}

// testModule is a module with one exported memory of pages pages and the given data
// segments, with a data count section when dataCount is set.
func testModule(pages int, dataCount bool, segs ...segment) []byte {
	return moduleWithData(pages, dataCount, len(segs), dataBody(segs...))
}

// moduleWithData is a module with one exported memory of pages pages and a data
// section with body; a data count section says count when dataCount is set.
func moduleWithData(pages int, dataCount bool, count int, body []byte) []byte {
	bin := append([]byte(nil), wasmMagic...)
	bin = append(bin, coreVersion...)
	bin = append(bin, wasmSection(5, binary.AppendUvarint([]byte{1, 0}, uint64(pages)))...)
	bin = append(bin, wasmSection(7, append([]byte{1, 6}, append([]byte("memory"), 2, 0)...))...)
	if dataCount {
		bin = append(bin, wasmSection(sectionDataCount, binary.AppendUvarint(nil, uint64(count)))...)
	}
	return append(bin, wasmSection(sectionData, body)...)
}

// dataBody is the body of a data section holding segs.
func dataBody(segs ...segment) []byte {
	body := binary.AppendUvarint(nil, uint64(len(segs)))
	for _, s := range segs {
		if s.raw != nil {
			body = append(body, s.raw...)
			continue
		}
		body = append(body, 0, opI32Const)
		body = appendSleb32(body, s.offset)
		body = append(body, opEnd)
		body = binary.AppendUvarint(body, uint64(len(s.data)))
		body = append(body, s.data...)
	}
	return body
}

// initialMemory instantiates bin and returns its memory as the module starts, or the
// error of compiling or instantiating it.
func initialMemory(t testing.TB, bin []byte) ([]byte, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		return nil, err
	}
	mem, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		t.Fatal("memory not readable")
	}
	return bytes.Clone(mem), nil
}

// dataSegmentCount returns the number of segments in bin's data section.
func dataSegmentCount(t testing.TB, bin []byte) int {
	for i := 8; i < len(bin); {
		size, n := binary.Uvarint(bin[i+1:])
		if bin[i] == sectionData {
			count, _ := binary.Uvarint(bin[i+1+n:])
			return int(count)
		}
		i += 1 + n + int(size)
	}
	t.Fatal("no data section")
	return 0
}

func TestMergeDataSegments(t *testing.T) {
	// Out of order as the Go toolchain writes them, with short gaps, a long gap, and
	// one at an offset past 2 GiB in a memory too small for it (encoded as a negative
	// i32), which must still fail the instantiation after the merge.
	segs := []segment{
		{offset: 9000, data: "world"},
		{offset: 100, data: "hello"},
		{offset: 110, data: ", "},
		{offset: 8000, data: "far"},
		{offset: 108, data: "xy"},
		{offset: 100 + 2*maxMergeGap + 5000, data: "beyond the longest gap"},
	}
	bin := testModule(1, false, segs...)
	merged := mergeDataSegments(bin)
	if got := dataSegmentCount(t, merged); got != 3 {
		t.Errorf("merged module has %d segments, want 3 (100-111, 8000-9004, the far one)", got)
	}
	want, err := initialMemory(t, bin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := initialMemory(t, merged)
	if err != nil {
		t.Fatalf("merged module: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the merged module starts with another memory than the original")
	}
	if string(got[100:112]) != "hello\x00\x00\x00xy, " {
		t.Errorf("memory at 100: %q", got[100:112])
	}

	out := testModule(1, false, segment{offset: 100, data: "a"}, segment{offset: 110, data: "b"}, segment{offset: -8, data: "cd"})
	if got := dataSegmentCount(t, mergeDataSegments(out)); got != 2 {
		t.Errorf("with an out-of-bounds segment: %d segments, want 2", got)
	}
	if _, err := initialMemory(t, mergeDataSegments(out)); err == nil {
		t.Error("a segment out of the memory's bounds instantiates after the merge")
	}

	// What the rewrite is not sure about is left byte for byte.
	passive := append([]byte{1}, binary.AppendUvarint(nil, 3)...)
	passive = append(passive, "abc"...)
	globalOffset := []byte{0, 0x23, 0, opEnd, 1, 'z'} // global.get 0
	for name, bin := range map[string][]byte{
		"one segment":  testModule(1, false, segment{offset: 1, data: "a"}),
		"overlapping":  testModule(1, false, segment{offset: 1, data: "abc"}, segment{offset: 2, data: "x"}),
		"data count":   testModule(1, true, segment{offset: 1, data: "a"}, segment{offset: 3, data: "b"}),
		"passive":      testModule(1, false, segment{offset: 1, data: "a"}, segment{raw: passive}, segment{offset: 3, data: "b"}),
		"global.get":   testModule(1, false, segment{offset: 1, data: "a"}, segment{raw: globalOffset}),
		"all far":      testModule(2, false, segment{offset: 0, data: "a"}, segment{offset: maxMergeGap + 2, data: "b"}),
		"not wasm":     []byte("#!/bin/sh\necho hi\n"),
		"truncated":    testModule(1, false, segment{offset: 1, data: "a"}, segment{offset: 3, data: "b"})[:30],
		"long offset":  testModule(1, false, segment{offset: 1, data: "a"}, segment{raw: []byte{0, opI32Const, 0x83, 0x80, 0x00, opEnd, 1, 'z'}}),
		"empty module": append(append([]byte(nil), wasmMagic...), coreVersion...),
	} {
		if got := mergeDataSegments(bin); !bytes.Equal(got, bin) {
			t.Errorf("%s: rewritten, want it left as it is", name)
		}
	}
}

func TestSleb32(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 117410, 1<<31 - 1, -1 << 31} {
		enc := appendSleb32(nil, v)
		got, n := sleb32(enc)
		if got != v || n != len(enc) {
			t.Errorf("sleb32(appendSleb32(%d) = %x) = %d, %d", v, enc, got, n)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {0xff, 0xff, 0xff, 0xff, 0x4f}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x00}} {
		if _, n := sleb32(bad); n > 0 {
			t.Errorf("sleb32(%x) decoded", bad)
		}
	}
}

// FuzzMergeDataSegments checks, for any data section (in a module with a memory of
// up to 4 pages; the rest of a module is copied as it is), that the rewrite does not
// panic and that a module it rewrote starts with the same memory as the original, or
// fails to compile or instantiate exactly when the original does.
func FuzzMergeDataSegments(f *testing.F) {
	f.Add(uint8(1), dataBody(segment{offset: 10, data: "ab"}, segment{offset: 1, data: "c"}, segment{offset: 20, data: "d"}))
	f.Add(uint8(1), dataBody(segment{offset: 1, data: "abc"}, segment{offset: 2, data: "x"}))
	f.Add(uint8(1), dataBody(segment{offset: 65530, data: "abcd"}, segment{offset: 65535, data: "xy"}))
	f.Add(uint8(0), dataBody(segment{offset: 0, data: "a"}, segment{offset: 2, data: "b"}))
	f.Add(uint8(2), []byte{2, 0, opI32Const, 0x83, 0x80, 0x00, opEnd, 1, 'z', 0, opI32Const, 9, opEnd, 1, 'y'})
	f.Fuzz(func(t *testing.T, pages uint8, body []byte) {
		bin := moduleWithData(int(pages%5), false, 0, body)
		merged := mergeDataSegments(bin)
		if bytes.Equal(merged, bin) {
			return
		}
		want, werr := initialMemory(t, bin)
		got, gerr := initialMemory(t, merged)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("original: %v; merged: %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatal("the merged module starts with another memory than the original")
		}
	})
}
