package depot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestExportImportRoundTrip: an image exported from one store and imported into
// another keeps its digest, names and content.
func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello"), 0o644)
	img, err := src.Build(ctx, dir, "site:1", BuildOptions{Entrypoint: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "site.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Export(ctx, img.Digest, "site:1", f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst := newStore(t)
	back, err := dst.Import(ctx, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest != img.Digest {
		t.Fatalf("digest %s after the round trip, was %s", back.Digest, img.Digest)
	}
	if d, err := dst.Resolve("site:1"); err != nil || d != img.Digest {
		t.Fatalf("name not carried: %v %v", d, err)
	}
	for _, l := range back.Layers {
		if err := dst.Verify(l.Digest); err != nil {
			t.Fatal(err)
		}
	}
}
