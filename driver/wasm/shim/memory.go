package shim

import (
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// pageSize is the size of a WebAssembly memory page.
const pageSize = 64 << 10

// memoryLimit enforces a depot's memory limit on the module's linear memory and
// remembers when it refused to grow it.
//
// wazero's own RuntimeConfig.WithMemoryLimitPages refuses a memory.grow past the limit
// too, but silently: the module sees -1 and usually dies of it (Go prints "out of
// memory" and exits with code 2, Rust aborts with a trap), and nothing would tell the
// operator that the limit was the cause. Refusing here, in the allocator wazero asks for
// every growth, is the same refusal, and lets the exit say "memory limit reached". The
// allocator is also set per instantiation (through the context), not per runtime, so a
// supervisor started in advance can build its runtime before it knows the limit.
type memoryLimit struct {
	limit uint64 // bytes; 0 means no limit

	mu      sync.Mutex
	refused uint64 // size of the largest growth refused, in bytes
	atStart uint64 // initial size asked beyond the limit, in bytes
}

// newMemoryLimit returns a limit of bytes, rounded down to whole pages (0: none).
func newMemoryLimit(bytes int64) *memoryLimit {
	if bytes <= 0 {
		return &memoryLimit{}
	}
	return &memoryLimit{limit: uint64(bytes) / pageSize * pageSize}
}

// Allocate implements experimental.MemoryAllocator.
func (m *memoryLimit) Allocate(capacity, max uint64) experimental.LinearMemory {
	if m.limit > 0 && max > m.limit {
		max = m.limit
	}
	return &linearMemory{m: m, max: max}
}

// refusedGrowth returns the size of the largest refused growth (0 if none) and, when
// the module's initial memory was already over the limit, that size.
func (m *memoryLimit) refusedGrowth() (refused, atStart uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused, m.atStart
}

// describe says what happened, for an exit reason.
func (m *memoryLimit) describe() string {
	refused, _ := m.refusedGrowth()
	return fmt.Sprintf("memory limit of %s reached (growing the module's memory to %s was refused)", size(m.limit), size(refused))
}

// linearMemory is one module memory: a Go slice that grows in place while its capacity
// lasts and is otherwise copied into a larger one, as wazero's own memory does.
type linearMemory struct {
	m   *memoryLimit
	max uint64
	buf []byte
}

// Reallocate implements experimental.LinearMemory. A size past the limit is refused
// (nil), except for the initial size, which wazero cannot take a refusal for: it is
// allocated, and the supervisor fails the start once instantiation returns.
func (l *linearMemory) Reallocate(size uint64) []byte {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.limit > 0 && size > m.limit {
		if l.buf != nil {
			m.refused = max(m.refused, size)
			return nil
		}
		m.atStart = size
	}
	if size <= uint64(cap(l.buf)) {
		// Bytes past the old length were never written (memory never shrinks), so they
		// are still zero.
		l.buf = l.buf[:size]
	} else {
		// Grow geometrically within the maximum, so a module that grows page by page
		// does not copy its memory at every step.
		c := max(size, min(2*uint64(cap(l.buf)), max(l.max, size)))
		nb := make([]byte, size, c)
		copy(nb, l.buf)
		l.buf = nb
	}
	return l.buf
}

// Free implements experimental.LinearMemory.
func (l *linearMemory) Free() { l.buf = nil }

// size formats a byte count in binary units.
func size(b uint64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d bytes", b)
}
