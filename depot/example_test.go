package depot_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"qnet.dev/qnet/depot"
)

// A node's store takes a WebAssembly module in, and the wasm driver finds the module's
// file by the image's name.
func Example() {
	dir, err := os.MkdirTemp("", "depots")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	module := filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		log.Fatal(err)
	}

	s, err := depot.Open(filepath.Join(dir, "store"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.ImportWasm(context.Background(), module, "hello"); err != nil {
		log.Fatal(err)
	}
	d, err := s.Resolve("hello:latest")
	if err != nil {
		log.Fatal(err)
	}
	img, err := s.Image(d)
	if err != nil {
		log.Fatal(err)
	}
	path, err := s.Path(img.Layers[0].Digest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Kind, img.Platform(), img.Layers[0].MediaType, filepath.Base(filepath.Dir(path)))
	// Output: wasm wasip1/wasm application/wasm sha256
}
