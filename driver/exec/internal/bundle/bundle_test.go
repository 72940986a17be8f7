package bundle

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"qnet.dev/qnet/driver"
)

func TestWriteReadJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, StateFile)
	var got State
	if err := ReadJSON(path, &got); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadJSON of a missing file = %v, want fs.ErrNotExist", err)
	}
	want := State{Phase: Running, ShimPID: 10, ShimStart: 99, PID: 11, PIDStart: 100, Cgroup: true,
		Limits: driver.LimitReport{CPUEnforced: true, Mechanism: "cgroup v1", Reason: "no memory limit requested"}}
	// Many writers at once: every read sees one whole file, and no temporary is left.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := WriteJSON(path, want); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := ReadJSON(path, &got); err != nil || got != want {
		t.Fatalf("ReadJSON = %+v, %v; want %+v", got, err, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only %s", len(entries), StateFile)
	}
	os.WriteFile(path, []byte("{broken"), 0o600)
	if err := ReadJSON(path, &got); err == nil {
		t.Error("ReadJSON accepted broken JSON")
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	l := Launch{Spec: driver.Spec{ID: "a", Command: "x", Env: []string{"SECRET=1"}}}
	if r := l.Redacted(); r.Spec.Env != nil || r.Spec.ID != "a" {
		t.Errorf("Redacted = %+v", r)
	}
	if l.Spec.Env == nil {
		t.Error("Redacted changed its receiver's spec")
	}
}
