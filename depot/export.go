package depot

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Export writes the image d as a tar of an OCI image layout (oci-layout, index.json and
// its blobs), which Import reads back: how an image built or kept on one machine is
// carried to a node.
func (s *Store) Export(ctx context.Context, d Digest, name string, w io.Writer) error {
	img, err := s.Image(d)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0)
	add := func(path string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	size, err := s.Size(d)
	if err != nil {
		return err
	}
	desc := map[string]any{"mediaType": img.MediaType, "digest": string(d), "size": size}
	if name != "" {
		desc["annotations"] = map[string]string{"org.opencontainers.image.ref.name": name}
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{desc}})
	if err := add("index.json", index); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, b := range img.blobs() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		path, err := s.Path(b)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: blobEntryName(b), Mode: 0o444, Size: st.Size(), ModTime: mtime, Typeflag: tar.TypeReg})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("export blob %s: %w", b.Short(), err)
		}
	}
	return tw.Close()
}
