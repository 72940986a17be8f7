package shim

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// TestFileDir checks that a fileDir holds exactly its files, under their names in it,
// read from the node at each open and without write bits.
func TestFileDir(t *testing.T) {
	t.Parallel()
	node := t.TempDir()
	for name, data := range map[string]string{"nginx": "worker_processes 1;", "tls-key": "key", "other": "not mounted"} {
		if err := os.WriteFile(filepath.Join(node, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := fileDir{"nginx.conf": filepath.Join(node, "nginx"), "tls.key": filepath.Join(node, "tls-key")}
	if err := fstest.TestFS(d, "nginx.conf", "tls.key"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.ReadFile(d, "other"); err == nil {
		t.Error("a file of the node that is not mounted can be read")
	}
	if _, err := d.Open("../other"); err == nil {
		t.Error("../other opened")
	}
	fi, err := fs.Stat(d, "nginx.conf")
	if err != nil || fi.Name() != "nginx.conf" || fi.Mode().Perm() != 0o444 {
		t.Errorf("stat nginx.conf = %v %v, want it named so and read-only", fi, err)
	}
	// A file replaced on the node (a secret's new version renamed into place) is seen.
	tmp := filepath.Join(node, ".new")
	if err := os.WriteFile(tmp, []byte("new key"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(node, "tls-key")); err != nil {
		t.Fatal(err)
	}
	if data, err := fs.ReadFile(d, "tls.key"); err != nil || string(data) != "new key" {
		t.Errorf("tls.key after replacement = %q, %v", data, err)
	}
}
