//go:build linux

package oci

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qnet.dev/qnet/depot"
)

// TestUmociImage runs an image that QNet did not write: umoci builds an OCI image
// layout in layers (a file, a whiteout, an opaque directory, a user), the depot store
// imports it as it would any layout, and the driver runs it.
func TestUmociImage(t *testing.T) {
	t.Parallel()
	needRunc(t)
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Skip("umoci is not installed (apt-get install umoci); it builds the image of this test")
	}
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	img := lay + ":t"
	umoci := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, "src", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	umoci("init", "--layout", lay)
	umoci("new", "--image", img)
	umoci("insert", "--image", img, app(t), "/app")
	umoci("insert", "--image", img, write("passwd", "root:x:0:0::/root:/bin/sh\nweb:x:4242:4343::/srv:/bin/sh\n"), "/etc/passwd")
	umoci("insert", "--image", img, write("gone", "gone"), "/gone")
	write("data1/a", "a")
	umoci("insert", "--image", img, filepath.Join(dir, "src", "data1"), "/data")
	umoci("insert", "--image", img, "--whiteout", "/gone")
	write("data2/c", "c")
	umoci("insert", "--image", img, "--opaque", filepath.Join(dir, "src", "data2"), "/data")
	umoci("config", "--image", img, "--config.entrypoint", "/app", "--config.cmd", "id",
		"--config.env", "FROM=umoci", "--config.user", "web", "--config.workingdir", "/srv")

	store, err := depot.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	image, err := store.Import(context.Background(), lay, "umoci:t")
	if err != nil {
		t.Fatal(err)
	}
	if len(image.Layers) != 6 {
		t.Errorf("umoci's image has %d layers, want 6", len(image.Layers))
	}
	d := newDriver(t, store)
	h, err := d.Start(context.Background(), imageSpec("umoci", image.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 0 {
		t.Fatalf("status %+v, stderr %q", st, logOf(d, "umoci", true))
	}
	out := logOf(d, "umoci", false)
	for _, want := range []string{
		"uid=4242 gid=4343 groups=[] cwd=/srv hostname=umoci",
		"env:FROM=umoci",
		"stat /gone: stat /gone: no such file or directory",     // whiteout
		"stat /data/a: stat /data/a: no such file or directory", // opaque directory
		"stat /data/c: -rw-r--r-- 1",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
