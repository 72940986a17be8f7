package shim

import (
	"bytes"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	m := newMemoryLimit(4*pageSize + 100) // rounded down to 4 pages
	if m.limit != 4*pageSize {
		t.Fatalf("limit %d, want %d", m.limit, 4*pageSize)
	}
	lm := m.Allocate(pageSize, 100*pageSize)
	buf := lm.Reallocate(pageSize)
	if len(buf) != pageSize {
		t.Fatalf("initial memory %d bytes", len(buf))
	}
	copy(buf, "kept")
	for pages := uint64(2); pages <= 4; pages++ {
		buf = lm.Reallocate(pages * pageSize)
		if uint64(len(buf)) != pages*pageSize || !bytes.HasPrefix(buf, []byte("kept")) {
			t.Fatalf("grow to %d pages: %d bytes, prefix %q", pages, len(buf), buf[:4])
		}
		if n := bytes.Count(buf[pageSize:], []byte{0}); n != len(buf)-pageSize {
			t.Fatalf("grown memory is not zero")
		}
	}
	if refused, _ := m.refusedGrowth(); refused != 0 {
		t.Errorf("refused %d before the limit", refused)
	}
	if got := lm.Reallocate(5 * pageSize); got != nil {
		t.Errorf("growing past the limit gave %d bytes", len(got))
	}
	if refused, atStart := m.refusedGrowth(); refused != 5*pageSize || atStart != 0 {
		t.Errorf("refused %d, at start %d", refused, atStart)
	}
	if got := m.describe(); got != "memory limit of 256 KiB reached (growing the module's memory to 320 KiB was refused)" {
		t.Errorf("describe = %q", got)
	}

	// The initial size cannot be refused (wazero cannot take it): it is noted instead.
	m = newMemoryLimit(pageSize)
	lm = m.Allocate(2*pageSize, 2*pageSize)
	if buf := lm.Reallocate(2 * pageSize); len(buf) != 2*pageSize {
		t.Fatalf("initial memory over the limit: %d bytes", len(buf))
	}
	if _, atStart := m.refusedGrowth(); atStart != 2*pageSize {
		t.Errorf("at start %d, want %d", atStart, 2*pageSize)
	}

	// No limit: only the module's own maximum.
	m = newMemoryLimit(0)
	lm = m.Allocate(pageSize, 8*pageSize)
	lm.Reallocate(pageSize)
	if buf := lm.Reallocate(8 * pageSize); len(buf) != 8*pageSize {
		t.Errorf("unlimited grow: %d bytes", len(buf))
	}
	lm.Free()
}

func TestSize(t *testing.T) {
	t.Parallel()
	for b, want := range map[uint64]string{100: "100 bytes", 65536: "64 KiB", 48 << 20: "48 MiB", 1 << 30: "1 GiB", 6553600: "6400 KiB"} {
		if got := size(b); got != want {
			t.Errorf("size(%d) = %q, want %q", b, got, want)
		}
	}
}
