package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	wasmMagic         = []byte("\x00asm")
	wasmCoreVersion   = []byte{0x01, 0x00, 0x00, 0x00}
	wasmComponentVers = []byte{0x0d, 0x00, 0x01, 0x00}
)

// CheckWasmHeader checks that b begins as a WebAssembly core module does: the magic
// "\0asm" and version 1. It is the store's only check of a module; validating the
// whole module is the wasm driver's.
func CheckWasmHeader(b []byte) error {
	switch {
	case len(b) < 8:
		return fmt.Errorf("%d bytes is too short for a WebAssembly module (the header alone is 8): %w", len(b), ErrInvalid)
	case !bytes.Equal(b[:4], wasmMagic):
		return fmt.Errorf("not a WebAssembly module: it begins % x, not the magic 00 61 73 6d (\\0asm): %w", b[:4], ErrInvalid)
	case bytes.Equal(b[4:8], wasmComponentVers):
		return fmt.Errorf("a WebAssembly component (binary version 0x0d, layer 1), not a core module: only core modules (version 1) run here: %w", ErrInvalid)
	case !bytes.Equal(b[4:8], wasmCoreVersion):
		return fmt.Errorf("WebAssembly binary version % x is not supported: want 01 00 00 00 (version 1): %w", b[4:8], ErrInvalid)
	}
	return nil
}

// ImportWasm stores the WebAssembly module at path as an OCI artifact, named name if
// name is not "": a manifest whose config is application/vnd.wasm.config.v0+json
// (os wasip1, architecture wasm) and whose one layer, of media type application/wasm,
// is the module's bytes. The wasm driver gets the module's file with Path of the layer.
func (s *Store) ImportWasm(ctx context.Context, path, name string) (*Image, error) {
	var names []string
	if name != "" {
		n, err := normalizeName(name)
		if err != nil {
			return nil, fmt.Errorf("import wasm %s: %w", path, err)
		}
		names = []string{n}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import wasm: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("import wasm: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("import wasm %s: not a regular file: %w", path, ErrInvalid)
	}
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	if err := CheckWasmHeader(head[:n]); err != nil {
		return nil, fmt.Errorf("import wasm %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("import wasm: %w", err)
	}
	h := sha256.New()
	size, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return nil, fmt.Errorf("import wasm %s: %w", path, err)
	}
	ld := digestOf(h)
	created := fi.ModTime().UTC().Truncate(time.Second)
	config, err := json.Marshal(wasmConfig{
		Created:      created,
		Architecture: "wasm",
		OS:           "wasip1",
		LayerDigests: []string{ld.String()},
	})
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: MediaTypeWasmConfig, Size: int64(len(config)), Digest: hashOf(FromBytes(config))},
		Layers:        []v1.Descriptor{{MediaType: MediaTypeWasmLayer, Size: size, Digest: hashOf(ld)}},
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}

	s.gc.RLock()
	defer s.gc.RUnlock()
	img, err := s.ingest(ctx, ingestJob{
		digest:   FromBytes(mb),
		manifest: mb,
		fetch: func(_ context.Context, d Digest, _ int64) (io.ReadCloser, error) {
			switch d {
			case ld:
				return os.Open(path) // checked again as it is stored: a file changed meanwhile is refused
			case FromBytes(config):
				return io.NopCloser(bytes.NewReader(config)), nil
			}
			return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
		},
		source: "wasm " + path,
		names:  names,
	})
	if err != nil {
		return nil, fmt.Errorf("import wasm %s: %w", path, err)
	}
	return img, nil
}
