package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // poll step of a deadline wait, not a wait for an event
	}
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %04d\n", i) // 10 bytes each
	}
	return b.String()
}

func readSet(t *testing.T, path string, maxFiles int) string {
	t.Helper()
	var b strings.Builder
	for i := maxFiles + 1; i >= 0; i-- {
		name := path
		if i > 0 {
			name = Rotated(path, i)
		}
		data, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

func TestWriterRotatesAndBoundsSize(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	w, err := Open(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	all := lines(0, 100) // 1000 bytes
	for i := 0; i < 100; i++ {
		if _, err := w.Write([]byte(all[i*10 : i*10+10])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, Rotated(path, 1), Rotated(path, 2)} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatalf("expected %s: %v", name, err)
		}
		if st.Size() > 100 {
			t.Errorf("%s has %d bytes, bound is 100", name, st.Size())
		}
	}
	if _, err := os.Stat(Rotated(path, 3)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s should not exist (maxFiles=2): %v", Rotated(path, 3), err)
	}
	got := readSet(t, path, 2)
	if !strings.HasSuffix(all, got) || len(got) != 300 {
		t.Errorf("kept %d bytes %q; want the last 300 bytes written", len(got), got)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("write after close: got %v, want fs.ErrClosed", err)
	}
}

// TestWriterKeepsLines checks that writes are cut at line ends, so a rotated file holds
// whole lines and is full to within one line.
func TestWriterKeepsLines(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	w, err := Open(path, 35, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte(lines(0, 5)[:15])) // a line and a half
	w.Write([]byte(lines(0, 5)[15:])) // the rest
	for i, want := range map[int]string{1: lines(0, 3), 0: lines(3, 5)} {
		name := path
		if i > 0 {
			name = Rotated(path, i)
		}
		if data, _ := os.ReadFile(name); string(data) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(name), data, want)
		}
	}
}

func TestWriterSplitsLargeWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stderr.log")
	w, err := Open(path, 64, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	big := strings.Repeat("abcdefgh", 50) // 400 bytes in one write
	if n, err := w.Write([]byte(big)); err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := readSet(t, path, 10); got != big {
		t.Errorf("content mismatch: got %d bytes", len(got))
	}
	for i := 0; i <= 10; i++ {
		name := path
		if i > 0 {
			name = Rotated(path, i)
		}
		if st, err := os.Stat(name); err == nil && st.Size() > 64 {
			t.Errorf("%s has %d bytes, bound is 64", name, st.Size())
		}
	}
}

func TestWriterReopenAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	w, err := Open(path, 30, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(lines(0, 2)))
	w.Close()
	w, err = Open(path, 30, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(lines(2, 4))) // 20 + 20 > 30: one line fills the old file, one starts a new one
	w.Close()
	if got := readSet(t, path, 1); got != lines(0, 4) {
		t.Errorf("got %q", got)
	}
	if data, _ := os.ReadFile(path); string(data) != lines(3, 4) {
		t.Errorf("current file = %q, want the last line only", data)
	}
}

func TestOpenRejectsNegativeBounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "a"), -1, 1); err == nil || !strings.Contains(err.Error(), "maxBytes") {
		t.Errorf("negative maxBytes: got %v", err)
	}
	if _, err := Open(filepath.Join(dir, "b"), 10, -1); err == nil || !strings.Contains(err.Error(), "maxFiles") {
		t.Errorf("negative maxFiles: got %v", err)
	}
}

func TestTailLastLines(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	w, err := Open(path, 35, 5) // lines straddle file boundaries
	if err != nil {
		t.Fatal(err)
	}
	all := lines(0, 12)
	w.Write([]byte(all))
	w.Close()
	tests := []struct {
		n    int
		want string
	}{
		{-1, all},
		{0, ""},
		{1, lines(11, 12)},
		{5, lines(7, 12)},
		{12, all},
		{100, all},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := Tail(context.Background(), path, tc.n, false, &b); err != nil {
			t.Fatalf("Tail(%d): %v", tc.n, err)
		}
		if b.String() != tc.want {
			t.Errorf("Tail(%d) = %q, want %q", tc.n, b.String(), tc.want)
		}
	}
}

func TestTailUnterminatedLastLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	os.WriteFile(path, []byte("a\nb\nc"), 0o600)
	var b bytes.Buffer
	if err := Tail(context.Background(), path, 2, false, &b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "b\nc" {
		t.Errorf("got %q, want %q", b.String(), "b\nc")
	}
}

func TestTailMissing(t *testing.T) {
	t.Parallel()
	err := Tail(context.Background(), filepath.Join(t.TempDir(), "nope.log"), 10, false, &bytes.Buffer{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

// TestFollowAcrossRotations writes many rotations, some faster than the follower polls,
// and expects every line exactly once and in order.
func TestFollowAcrossRotations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	w, err := Open(path, 50, 1000) // enough files kept that nothing is dropped
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte(lines(0, 3)))

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, path, -1, true, &out) }()

	waitFor(t, "existing lines", func() bool { return out.String() == lines(0, 3) })
	// A burst: many rotations between two polls.
	w.Write([]byte(lines(3, 200)))
	waitFor(t, "burst", func() bool { return len(out.String()) >= len(lines(0, 200)) })
	// One line at a time, each seen before the next is written.
	for i := 200; i < 230; i++ {
		w.Write([]byte(lines(i, i+1)))
		want := lines(0, i+1)
		waitFor(t, fmt.Sprintf("line %d", i), func() bool { return len(out.String()) >= len(want) })
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Tail returned %v", err)
	}
	if got := out.String(); got != lines(0, 230) {
		t.Fatalf("followed output differs from what was written:\n got %d bytes\nwant %d bytes", len(got), len(lines(0, 230)))
	}
}

func TestFollowWaitsForFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, path, 10, true, &out) }()
	w, err := Open(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("hello\n"))
	waitFor(t, "hello", func() bool { return out.String() == "hello\n" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFollowFromNowSkipsOld(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stdout.log")
	w, err := Open(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("old\n"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- Tail(ctx, path, 0, true, &out) }()
	// Wait until the follower has opened the file and sits at its end: after that, the
	// new line must be all it prints. Writing before it opens would race, so we write
	// marker lines until one shows up, then check that "old" never did.
	for i := 0; ; i++ {
		w.Write([]byte(fmt.Sprintf("new %d\n", i)))
		var seen bool
		deadline := time.Now().Add(5 * PollInterval)
		for time.Now().Before(deadline) && !seen {
			seen = strings.Contains(out.String(), "new")
			time.Sleep(time.Millisecond)
		}
		if seen || i > 100 {
			break
		}
	}
	cancel()
	<-done
	if got := out.String(); strings.Contains(got, "old") || !strings.HasPrefix(got, "new ") {
		t.Errorf("follow from now printed %q", got)
	}
}
