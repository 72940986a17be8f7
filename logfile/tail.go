package logfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// PollInterval is how often a following Tail looks for new data and rotations. Polling
// keeps Tail portable (no inotify/kqueue) and costs one stat per interval per reader.
const PollInterval = 50 * time.Millisecond

// maxRotated bounds how far Tail looks for path.N, so a directory full of stray names
// cannot make it scan forever.
const maxRotated = 1000

// Tail writes the last lastN lines of the log at path (reading path.N … path.1, path in
// that order) to w. lastN < 0 writes everything kept; lastN == 0 writes nothing old. A
// final line without a newline counts as a line.
//
// With follow, Tail then keeps copying data as it is appended, moving on to the new file
// when the writer rotates (and reading any rotated file it had not yet seen), until ctx
// ends; it then returns nil. Without follow, a missing log is an error wrapping
// fs.ErrNotExist; with follow, Tail waits for it to appear.
func Tail(ctx context.Context, path string, lastN int, follow bool, w io.Writer) error {
	files, err := openSet(path, nil)
	if err != nil {
		return fmt.Errorf("tail %s: %w", path, err)
	}
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	if len(files) == 0 && !follow {
		return fmt.Errorf("tail %s: %w", path, fs.ErrNotExist)
	}
	fi, off, err := findStart(files, lastN)
	if err != nil {
		return fmt.Errorf("tail %s: %w", path, err)
	}
	for i := fi; i < len(files); i++ {
		start := int64(0)
		if i == fi {
			start = off
		}
		if _, err := files[i].Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("tail %s: %w", path, err)
		}
		if _, err := io.Copy(w, files[i]); err != nil {
			return fmt.Errorf("tail %s: %w", path, err)
		}
	}
	if !follow {
		return nil
	}
	var cur *os.File
	if len(files) > 0 {
		// The newest file becomes the followed one; the deferred close skips it.
		cur = files[len(files)-1]
		files[len(files)-1] = nil
	}
	return followFrom(ctx, path, cur, w)
}

// openSet opens the rotated set of path newest first (path, path.1, path.2, …), stopping
// at the end of the set or at a file that is stop, and returns the files oldest first.
// Opening newest first means a rotation that happens meanwhile can only make a file show
// up twice (dropped by identity), never make one be skipped. A rotation renames from the
// oldest down, leaving one index empty for a moment, so the scan ends only at two missing
// indexes in a row; and when stop is not met (the scan raced a rotation, or stop has
// been rotated out of the set), the scan is tried again a few times.
func openSet(path string, stop *os.File) ([]*os.File, error) {
	const tries = 5
	for try := 1; ; try++ {
		files, found, err := scanSet(path, stop)
		if err != nil || found || stop == nil || try == tries {
			return files, err
		}
		for _, f := range files {
			f.Close()
		}
	}
}

// scanSet is one pass of openSet; found reports whether stop was met.
func scanSet(path string, stop *os.File) (files []*os.File, found bool, err error) {
	var stopInfo os.FileInfo
	if stop != nil {
		st, err := stop.Stat()
		if err != nil {
			return nil, false, err
		}
		stopInfo = st
	}
	var infos []os.FileInfo
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
		files = nil
	}
	missing := 0
	for i := 0; i <= maxRotated; i++ {
		name := path
		if i > 0 {
			name = Rotated(path, i)
		}
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			missing++
			if i > 0 && missing >= 2 {
				break
			}
			continue
		}
		missing = 0
		if err != nil {
			closeAll()
			return nil, false, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			closeAll()
			return nil, false, err
		}
		if stopInfo != nil && os.SameFile(st, stopInfo) {
			f.Close()
			found = true
			break
		}
		dup := false
		for _, seen := range infos {
			if os.SameFile(seen, st) {
				dup = true
				break
			}
		}
		if dup {
			f.Close()
			continue
		}
		files = append(files, f)
		infos = append(infos, st)
	}
	for i, j := 0, len(files)-1; i < j; i, j = i+1, j-1 {
		files[i], files[j] = files[j], files[i]
	}
	return files, found, nil
}

// findStart returns the file index and offset where the last lastN lines of files
// (oldest first) begin.
func findStart(files []*os.File, lastN int) (int, int64, error) {
	if lastN < 0 || len(files) == 0 {
		return 0, 0, nil
	}
	sizes := make([]int64, len(files))
	for i, f := range files {
		st, err := f.Stat()
		if err != nil {
			return 0, 0, err
		}
		sizes[i] = st.Size()
	}
	last := len(files) - 1
	if lastN == 0 {
		return last, sizes[last], nil
	}
	buf := make([]byte, 32<<10)
	found := 0
	first := true // the very last byte: a newline there ends the last line, not a line before it
	for fi := last; fi >= 0; fi-- {
		pos := sizes[fi]
		for pos > 0 {
			n := int64(len(buf))
			if n > pos {
				n = pos
			}
			pos -= n
			if _, err := files[fi].ReadAt(buf[:n], pos); err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, err
			}
			for j := n - 1; j >= 0; j-- {
				if first {
					first = false
					if buf[j] == '\n' {
						continue
					}
				}
				if buf[j] != '\n' {
					continue
				}
				found++
				if found == lastN {
					return fi, pos + j + 1, nil
				}
			}
		}
	}
	return 0, 0, nil
}

// followFrom copies new data from cur (nil when the log does not exist yet) and from the
// files that replace it on rotation, until ctx ends.
func followFrom(ctx context.Context, path string, cur *os.File, w io.Writer) error {
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		if cur != nil {
			if _, err := io.Copy(w, cur); err != nil {
				return fmt.Errorf("follow %s: %w", path, err)
			}
		}
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Not created yet, or mid-rotation: look again next tick.
		case err != nil:
			return fmt.Errorf("follow %s: %w", path, err)
		default:
			rotated := cur == nil
			if cur != nil {
				curInfo, err := cur.Stat()
				if err != nil {
					return fmt.Errorf("follow %s: %w", path, err)
				}
				if os.SameFile(st, curInfo) {
					pos, err := cur.Seek(0, io.SeekCurrent)
					if err != nil {
						return fmt.Errorf("follow %s: %w", path, err)
					}
					if st.Size() < pos { // truncated in place: start over
						if _, err := cur.Seek(0, io.SeekStart); err != nil {
							return fmt.Errorf("follow %s: %w", path, err)
						}
					}
				} else {
					rotated = true
				}
			}
			if rotated {
				next, err := openSet(path, cur)
				if err != nil {
					return fmt.Errorf("follow %s: %w", path, err)
				}
				if len(next) == 0 {
					// path vanished again before it could be opened; keep the old
					// file so nothing is read twice, and look again next tick.
					break
				}
				if cur != nil {
					// Whatever was written before the rename is still in the old file.
					_, err = io.Copy(w, cur)
					cur.Close()
					cur = nil
				}
				for i, f := range next {
					if err == nil && i < len(next)-1 {
						_, err = io.Copy(w, f)
					}
					if i < len(next)-1 {
						f.Close()
					} else {
						cur = f
					}
				}
				if err != nil {
					return fmt.Errorf("follow %s: %w", path, err)
				}
				continue // copy the new current file at once
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
