package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

type record struct {
	Phase string `json:"phase"`
	PID   int    `json:"pid"`
}

func TestWriteRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	var got record
	if err := Read(path, &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file = %v, want fs.ErrNotExist", err)
	}
	want := record{Phase: "running", PID: 11}
	// Many writers at once: every read sees one whole file, and no temporary is left.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := Write(path, want); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := Read(path, &got); err != nil || got != want {
		t.Fatalf("Read = %+v, %v; want %+v", got, err, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only state.json", len(entries))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of a written file: %v, %v; want 0600", fi, err)
	}
	os.WriteFile(path, []byte("{broken"), 0o600)
	if err := Read(path, &got); err == nil {
		t.Error("Read accepted broken JSON")
	}
	if err := Write(path, func() {}); err == nil {
		t.Error("Write encoded a func")
	}
	if err := Write(filepath.Join(dir, "missing", "x.json"), want); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write into a missing directory = %v, want fs.ErrNotExist", err)
	}
}

// TestWriteUmask: a record is readable by its owner alone, and by its owner whatever
// the umask.
func TestWriteUmask(t *testing.T) {
	old := syscall.Umask(0o277)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "exit.json")
	if err := Write(path, record{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode under umask 0277: %v, %v; want 0600", fi, err)
	}
}

func TestTouchExists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "stop-requested")
	if Exists(p) {
		t.Fatal("Exists before Touch")
	}
	for range 2 { // touching twice is fine
		if err := Touch(p); err != nil || !Exists(p) {
			t.Fatalf("Touch: %v", err)
		}
	}
	if err := Touch(filepath.Join(dir, "missing", "x")); err == nil {
		t.Error("Touch in a missing directory succeeded")
	}
}
