package shim

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
)

// Instantiating a module copies its active data segments into its memory, evaluating
// each segment's offset expression on the way. The Go toolchain cuts a module's data
// into one segment per run of non-zero bytes: about 94,000 segments for a 9 MB HTTP
// server, which wazero takes 3-4 ms to apply, most of a primed start. mergeDataSegments
// rewrites such a module, before it is compiled, so that runs of segments close to each
// other become one segment with the zeros between them written out. The memory a module
// starts with is the same byte for byte; nothing else in the module changes, and the
// module file of the depot (content-addressed, verified) is not touched: the rewrite is
// made in memory, like the compilation that follows it.

// maxMergeGap is the longest run of zeros written out to join two segments: longer
// gaps are left as they are, so a module with data far apart does not grow by the
// distance.
const maxMergeGap = 4 << 10

// The WebAssembly binary encoding bits the rewrite needs.
const (
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

var errNotMergeable = errors.New("data segments left as they are")

// mergeDataSegments returns bin with its active data segments merged where they are
// at most maxMergeGap apart, or bin itself when there is nothing to merge or the
// module is not one the rewrite is sure about: anything it cannot parse (the compiler
// reports that), a data count section (which means memory.init or data.drop may name
// segments by index), passive segments, segments for another memory, offsets that are
// not constants, and segments that overlap (then the order they are applied in
// matters, and zeros written out could overwrite data).
func mergeDataSegments(bin []byte) []byte {
	out, err := mergeData(bin)
	if err != nil {
		return bin
	}
	return out
}

func mergeData(bin []byte) ([]byte, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:4], wasmMagic) || !bytes.Equal(bin[4:8], coreVersion) {
		return nil, errNotMergeable
	}
	dataStart, dataEnd := -1, -1 // the data section's contents
	headerStart := -1            // its id byte
	for i := 8; i < len(bin); {
		id := bin[i]
		size, n := binary.Uvarint(bin[i+1:])
		if n <= 0 || n > 5 || size > uint64(len(bin)-(i+1+n)) {
			return nil, errNotMergeable
		}
		body := i + 1 + n
		switch id {
		case sectionDataCount:
			return nil, errNotMergeable
		case sectionData:
			if dataStart >= 0 {
				return nil, errNotMergeable
			}
			headerStart, dataStart, dataEnd = i, body, body+int(size)
		}
		i = body + int(size)
	}
	if dataStart < 0 {
		return nil, errNotMergeable
	}
	segs, err := parseDataSegments(bin[dataStart:dataEnd])
	if err != nil || len(segs) < 2 {
		return nil, errNotMergeable
	}
	merged := mergeSegments(segs)
	if len(merged) == len(segs) {
		return nil, errNotMergeable
	}
	var sec []byte
	sec = binary.AppendUvarint(sec, uint64(len(merged)))
	for _, s := range merged {
		sec = append(sec, 0, opI32Const)
		sec = appendSleb32(sec, int32(s.offset))
		sec = append(sec, opEnd)
		sec = binary.AppendUvarint(sec, uint64(len(s.data)))
		sec = append(sec, s.data...)
	}
	out := make([]byte, 0, len(bin)-(dataEnd-headerStart)+len(sec)+6)
	out = append(out, bin[:headerStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(sec)))
	out = append(out, sec...)
	out = append(out, bin[dataEnd:]...)
	return out, nil
}

// dataSegment is an active segment of memory 0 at a constant offset.
type dataSegment struct {
	offset uint32
	data   []byte
}

// parseDataSegments decodes a data section's contents, refusing every segment form
// but an active one of memory 0 at an i32.const offset, and segments that overlap. It
// returns them sorted by offset: the Go toolchain writes them in the order of its own
// sections, not of their addresses, and segments that do not overlap each write bytes
// no other one writes, so the order they are applied in does not matter.
func parseDataSegments(sec []byte) ([]dataSegment, error) {
	count, n := u32(sec)
	if n <= 0 || count > uint64(len(sec)) {
		return nil, errNotMergeable
	}
	p := n
	segs := make([]dataSegment, 0, count)
	for range count {
		if p+2 > len(sec) || sec[p] != 0 || sec[p+1] != opI32Const {
			return nil, errNotMergeable // flags 1 (passive) or 2 (explicit memory), or no i32.const
		}
		p += 2
		off, n := sleb32(sec[p:])
		if n <= 0 || p+n >= len(sec) || sec[p+n] != opEnd || !bytes.Equal(sec[p:p+n], appendSleb32(nil, off)) {
			// Only the shortest encoding: one the compiler would refuse must not turn
			// into one it takes.
			return nil, errNotMergeable
		}
		p += n + 1
		size, n := u32(sec[p:])
		if n <= 0 || size > uint64(len(sec)-p-n) {
			return nil, errNotMergeable
		}
		p += n
		segs = append(segs, dataSegment{offset: uint32(off), data: sec[p : p+int(size)]})
		p += int(size)
	}
	if p != len(sec) {
		return nil, errNotMergeable
	}
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	for i := 1; i < len(segs); i++ {
		if uint64(segs[i-1].offset)+uint64(len(segs[i-1].data)) > uint64(segs[i].offset) {
			return nil, errNotMergeable
		}
	}
	return segs, nil
}

// mergeSegments joins segments (sorted, not overlapping) that are at most
// maxMergeGap apart.
func mergeSegments(segs []dataSegment) []dataSegment {
	var (
		out   []dataSegment
		owned bool // the last segment's data is a buffer of its own, not the module's
		zeros [maxMergeGap]byte
	)
	for _, s := range segs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			end := uint64(last.offset) + uint64(len(last.data))
			if gap := uint64(s.offset) - end; gap <= maxMergeGap {
				if !owned {
					last.data, owned = bytes.Clone(last.data), true
				}
				last.data = append(append(last.data, zeros[:gap]...), s.data...)
				continue
			}
		}
		out, owned = append(out, s), false
	}
	return out
}

// u32 decodes an unsigned LEB128 number in its shortest encoding of at most 5 bytes,
// as WebAssembly's u32 (0 and -1 when it is not one).
func u32(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n > 5 || v > 1<<32-1 || n != len(binary.AppendUvarint(nil, v)) {
		return 0, -1
	}
	return v, n
}

// sleb32 decodes a signed LEB128 number of at most 32 bits, as i32.const carries it.
func sleb32(b []byte) (int32, int) {
	var v int64
	var shift uint
	for i := 0; i < 5 && i < len(b); i++ {
		c := b[i]
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, -1
			}
			return int32(v), i + 1
		}
	}
	return 0, -1
}

// appendSleb32 appends v in signed LEB128.
func appendSleb32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
