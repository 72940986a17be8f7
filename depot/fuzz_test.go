package depot

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("0", 64), "sha256:", "sha512:ab", ":", "sha256:" + strings.Repeat("G", 64), "sha256:../" + strings.Repeat("a", 61)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if string(d) != s || len(d.Hex()) != 64 || strings.ContainsAny(d.Hex(), "/.") {
			t.Fatalf("ParseDigest(%q) accepted %q", s, d)
		}
	})
}

func FuzzName(f *testing.F) {
	for _, s := range []string{"web", "web:1.2", "localhost:5000/a/b:c", "sha256:abc", "a@b", "-", "A:b", "web:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := normalizeName(s)
		if err != nil {
			return
		}
		if n2, err := normalizeName(n); err != nil || n2 != n {
			t.Fatalf("normalizeName(%q) = %q, then %q, %v", s, n, n2, err)
		}
		if !hasTag(n) || strings.ContainsAny(n, " \x00\n@") {
			t.Fatalf("normalizeName(%q) = %q", s, n)
		}
	})
}

// FuzzImage feeds arbitrary manifests and configs to the parsers every outside image
// goes through.
func FuzzImage(f *testing.F) {
	src := webImage(f)
	m, _ := src.RawManifest()
	c, _ := src.RawConfigFile()
	f.Add(m, c)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), []byte("{}"))
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.wasm.config.v0+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":2},"layers":[{"mediaType":"application/wasm","digest":"sha256:`+strings.Repeat("b", 64)+`","size":8}]}`), []byte("{}"))
	f.Add([]byte("null"), []byte("null"))
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		mf, err := parseManifest(manifest)
		if err != nil {
			return
		}
		img, err := buildImage(FromBytes(manifest), manifest, mf, config)
		if err != nil {
			return
		}
		for _, d := range img.blobs() {
			if !d.valid() {
				t.Fatalf("image names blob %q", d)
			}
		}
		if img.Kind == KindOCI {
			for _, l := range img.Layers {
				if !l.DiffID.valid() {
					t.Fatalf("layer without a diff_id: %+v", l)
				}
			}
		}
	})
}

// FuzzImport imports arbitrary bytes as a file: it must never panic, never leave a
// temporary file, never write beside the store, and store only blobs that hash to
// their names.
func FuzzImport(f *testing.F) {
	save, _ := os.ReadFile(dockerSave(f, map[string]v1.Image{"web:1": webImage(f)}))
	layoutDir := writeLayout(f, []v1.Image{webImage(f)}, []string{"web:1"})
	lay, _ := os.ReadFile(tarDir(f, layoutDir, false))
	layGz, _ := os.ReadFile(tarDir(f, layoutDir, true))
	layer := tarBytes(f, file{name: "x", body: "y"})
	classic, _ := os.ReadFile(classicSave(f, []string{FromBytes(layer).String()}, [][]byte{layer}, runtime.GOARCH))
	for _, b := range [][]byte{save, lay, layGz, classic, save[:len(save)/3], nil, []byte("\x1f\x8b"), []byte("(\xb5/\xfd")} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parent := t.TempDir()
		in := filepath.Join(parent, "in.tar")
		if err := os.WriteFile(in, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(filepath.Join(parent, "store"))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		imgs, err := s.ImportAll(ctx, in)
		if err != nil && strings.Contains(err.Error(), "malformed input (") {
			t.Fatalf("a parser panicked: %v", err)
		}
		if err == nil {
			for _, img := range imgs {
				if _, err := s.Image(img.Digest); err != nil {
					t.Fatalf("imported image %s: %v", img.Digest, err)
				}
			}
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("store after import: %v", err)
		}
		es, _ := os.ReadDir(parent)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		if strings.Join(names, ",") != "in.tar,store" {
			t.Fatalf("import wrote beside the store: %v", names)
		}
		if tmp, _ := os.ReadDir(s.tmpDir()); len(tmp) != 0 {
			t.Fatalf("temporary files left: %v", tmp)
		}
	})
}

// FuzzLayerReader reads arbitrary bytes as a stored layer.
func FuzzLayerReader(f *testing.F) {
	layer := tarBytes(f, file{name: "x", body: "y"})
	f.Add(layer)
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"))
	f.Add([]byte("(\xb5/\xfd\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newStore(t)
		d := FromBytes(b)
		if err := s.Put(context.Background(), bytes.NewReader(b), d, int64(len(b))); err != nil {
			t.Fatal(err)
		}
		rc, err := s.LayerReader(Layer{Digest: d, DiffID: FromBytes(layer)})
		if err != nil {
			return
		}
		io.Copy(io.Discard, io.LimitReader(rc, 64<<20))
		rc.Close()
	})
}
