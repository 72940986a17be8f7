package depot

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func writeWasm(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A module with one exported function, as a compiler writes it.
var tinyModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
	0x03, 0x02, 0x01, 0x00, // function section
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: empty body
}

func TestImportWasm(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	path := writeWasm(t, tinyModule)
	img, err := s.ImportWasm(ctx, path, "hello-wasm:1")
	if err != nil {
		t.Fatal(err)
	}
	if img.Kind != KindWasm || img.OS != "wasip1" || img.Arch != "wasm" || len(img.Layers) != 1 {
		t.Fatalf("image %+v", img)
	}
	l := img.Layers[0]
	if l.MediaType != MediaTypeWasmLayer || l.Digest != FromBytes(tinyModule) || l.Size != int64(len(tinyModule)) {
		t.Errorf("layer %+v", l)
	}
	p, err := s.Path(l.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(tinyModule) {
		t.Error("the stored module differs from the file")
	}
	if _, err := s.LayerReader(l); err == nil {
		t.Error("LayerReader of a wasm layer gave no error")
	}
	sums, _ := s.Images()
	if len(sums) != 1 || sums[0].Kind != KindWasm {
		t.Errorf("Images() = %+v", sums)
	}
	// Importing the same module again gives the same image (a reproducible artifact).
	again, err := s.ImportWasm(ctx, path, "")
	if err != nil || again.Digest != img.Digest {
		t.Errorf("re-import = %v, %v", again, err)
	}

	// A wasm artifact pulled from a registry runs anywhere: no platform refusal.
	reg := newRegistry(t)
	ref := reg.host + "/mods/hello:1"
	other := newStore(t)
	pushStored(t, s, img.Digest, ref)
	pulled, err := other.Pull(ctx, ref)
	if err != nil || pulled.Digest != img.Digest || pulled.Kind != KindWasm {
		t.Fatalf("pull of a wasm artifact = %+v, %v", pulled, err)
	}
}

func TestImportWasmRefuses(t *testing.T) {
	tests := []struct {
		name  string
		b     []byte
		parts []string
	}{
		{"empty", nil, []string{"too short"}},
		{"short", []byte("\x00asm"), []string{"too short"}},
		{"not wasm", []byte("#!/bin/sh\necho\n"), []string{"not a WebAssembly module", "00 61 73 6d"}},
		{"component", []byte("\x00asm\x0d\x00\x01\x00rest"), []string{"component", "core module"}},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), []string{"version 02 00 00 00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.ImportWasm(context.Background(), writeWasm(t, tt.b), "")
			wantErr(t, err, ErrInvalid, tt.parts...)
			assertEmpty(t, s)
		})
	}
	s := newStore(t)
	_, err := s.ImportWasm(context.Background(), t.TempDir(), "")
	wantErr(t, err, ErrInvalid, "not a regular file")
}

// pushStored pushes a stored image to a registry as it is stored, blob by blob.
func pushStored(t *testing.T, s *Store, d Digest, ref string) {
	t.Helper()
	img, err := s.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	read := func(d Digest) []byte {
		rc, err := s.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	blobs := []v1.Layer{static.NewLayer(read(img.ConfigDigest), types.MediaType("application/octet-stream"))}
	for _, l := range img.Layers {
		blobs = append(blobs, static.NewLayer(read(l.Digest), types.MediaType(l.MediaType)))
	}
	for _, b := range blobs {
		if err := remote.WriteLayer(r.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Put(r, rawManifest{read(d), types.MediaType(img.MediaType)}); err != nil {
		t.Fatal(err)
	}
}

type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }
