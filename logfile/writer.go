// Package logfile keeps a depot's output in size-bounded, rotated files and reads them
// back. A Writer appends to one file (stdout.log) and, when it would grow past its bound,
// renames it to stdout.log.1 (shifting older ones to .2, .3, ...) and starts afresh, so
// the disk a depot can fill is bounded by MaxBytes × (MaxFiles + 1). Tail reads the
// rotated set in order and, when asked to follow, keeps streaming across rotations.
package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// Default bounds used when a caller passes zero.
const (
	DefaultMaxBytes = 1 << 20 // 1 MiB per file
	DefaultMaxFiles = 3       // rotated files kept beside the current one
)

// Writer is an io.Writer that appends to a file and rotates it when it reaches MaxBytes.
// It is safe for concurrent use.
type Writer struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	maxFiles int
	f        *os.File
	size     int64
}

// Open opens (or creates) path for appending. maxBytes bounds each file (0 means
// DefaultMaxBytes) and maxFiles is how many rotated files are kept (path.1 … path.N);
// 0 keeps none, so rotation simply starts the file afresh.
func Open(path string, maxBytes int64, maxFiles int) (*Writer, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("logfile %s: maxBytes must be >= 0, got %d", path, maxBytes)
	}
	if maxFiles < 0 {
		return nil, fmt.Errorf("logfile %s: maxFiles must be >= 0, got %d", path, maxFiles)
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	w := &Writer{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log file: %w", err)
	}
	w.f, w.size = f, st.Size()
	return w, nil
}

// Path returns the path of the current (newest) file.
func (w *Writer) Path() string { return w.path }

// Write appends p. A write that does not fit in the current file is cut after the last
// whole line that fits; the rest goes to a fresh file after rotation. A line longer than
// the room left starts a fresh file, and only a line longer than a whole file is split.
// So rotated files are full to within one line, and no file exceeds MaxBytes.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, fmt.Errorf("write %s: %w", w.path, fs.ErrClosed)
	}
	n := 0
	for len(p) > 0 {
		if w.size >= w.maxBytes {
			if err := w.rotate(); err != nil {
				return n, err
			}
		}
		room := w.maxBytes - w.size
		chunk := p
		if int64(len(chunk)) > room {
			if cut := bytes.LastIndexByte(chunk[:room], '\n') + 1; cut > 0 {
				chunk = chunk[:cut]
			} else if nl := bytes.IndexByte(p, '\n'); w.size > 0 && (nl < 0 || int64(nl) < w.maxBytes) {
				// The line fits a fresh file (or its end is not known yet): start one.
				if err := w.rotate(); err != nil {
					return n, err
				}
				continue
			} else {
				chunk = chunk[:room]
			}
		}
		m, err := w.f.Write(chunk)
		n += m
		w.size += int64(m)
		if err != nil {
			return n, fmt.Errorf("write %s: %w", w.path, err)
		}
		p = p[m:]
		if len(p) > 0 && w.size > 0 {
			if err := w.rotate(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// rotate shifts path.i to path.i+1 (dropping the oldest), renames path to path.1 and
// opens a new, empty path. Readers that hold the old file open keep reading it; Tail
// notices the rename and moves on to the new file.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("rotate %s: %w", w.path, err)
	}
	w.f = nil
	if w.maxFiles == 0 {
		if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", w.path, err)
		}
	} else {
		if err := os.Remove(Rotated(w.path, w.maxFiles)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", w.path, err)
		}
		for i := w.maxFiles - 1; i >= 1; i-- {
			if err := os.Rename(Rotated(w.path, i), Rotated(w.path, i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rotate %s: %w", w.path, err)
			}
		}
		if err := os.Rename(w.path, Rotated(w.path, 1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", w.path, err)
		}
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", w.path, err)
	}
	w.f, w.size = f, 0
	return nil
}

// Close closes the current file. Later writes fail with fs.ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", w.path, err)
	}
	return nil
}

// Rotated returns the name of the i-th rotated file of path (path.1 is the newest).
func Rotated(path string, i int) string {
	return path + "." + strconv.Itoa(i)
}
