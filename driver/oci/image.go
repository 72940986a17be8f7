package oci

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver/oci/unpack"
)

// Images is where the driver finds images and their layers: the node's depot store
// (*depot.Store), or in tests anything that can list an image's layers and give each
// as an uncompressed tar stream.
type Images interface {
	// Image returns the stored image whose manifest has digest d; an unknown digest is
	// an error wrapping depot.ErrNotFound.
	Image(d depot.Digest) (*depot.Image, error)
	// LayerReader returns the layer's uncompressed tar stream. A store that checks the
	// stream against the layer's DiffID reports a mismatch as an error from Read (at
	// the latest at EOF) or Close: the driver reads every stream to its end and checks
	// both.
	LayerReader(l depot.Layer) (io.ReadCloser, error)
}

var _ Images = (*depot.Store)(nil)

// imageCache unpacks each image once into a root filesystem that depots share as the
// read-only lower layer of their overlays:
//
//	<dir>/<hex>/rootfs   the image's layers applied in order
//
// A directory <dir>/<hex> exists only once it is complete: an image is unpacked under
// a temporary name in <dir> and renamed into place.
type imageCache struct {
	dir    string
	images Images
	log    *slog.Logger

	mu       sync.Mutex
	inflight map[depot.Digest]*flight
}

type flight struct {
	done chan struct{}
	err  error
}

func newImageCache(dir string, images Images, log *slog.Logger) (*imageCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	// Leftovers of unpacks a crash interrupted.
	if tmps, err := filepath.Glob(filepath.Join(dir, ".tmp-*")); err == nil {
		for _, t := range tmps {
			os.RemoveAll(t)
		}
	}
	return &imageCache{dir: dir, images: images, log: log, inflight: map[depot.Digest]*flight{}}, nil
}

func (c *imageCache) path(d depot.Digest) string {
	return filepath.Join(c.dir, d.Hex())
}

// rootfs returns the unpacked root filesystem of img, unpacking it first if no depot
// used it before. Concurrent calls for one image unpack it once.
func (c *imageCache) rootfs(ctx context.Context, img *depot.Image) (string, error) {
	dir := c.path(img.Digest)
	rootfs := filepath.Join(dir, "rootfs")
	for {
		if _, err := os.Stat(dir); err == nil {
			return rootfs, nil
		}
		c.mu.Lock()
		f, ok := c.inflight[img.Digest]
		if !ok {
			f = &flight{done: make(chan struct{})}
			c.inflight[img.Digest] = f
			c.mu.Unlock()
			f.err = c.unpack(ctx, img, dir)
			c.mu.Lock()
			delete(c.inflight, img.Digest)
			c.mu.Unlock()
			close(f.done)
			if f.err != nil {
				return "", f.err
			}
			return rootfs, nil
		}
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil && ctx.Err() == nil && !errors.Is(f.err, context.Canceled) {
				return "", f.err
			}
			// The other caller's unpack is done, or it gave up for its own reasons:
			// look again (and unpack it ourselves if it is still missing).
		case <-ctx.Done():
			return "", fmt.Errorf("unpack image %s: %w", img.Digest, ctx.Err())
		}
	}
}

func (c *imageCache) unpack(ctx context.Context, img *depot.Image, dir string) error {
	t0 := time.Now()
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(c.dir, ".tmp-"+hex.EncodeToString(rnd[:]))
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return fmt.Errorf("unpack image %s: %w", img.Digest, err)
	}
	// The root directory of the container: world-readable, like "/".
	os.Chmod(tmp, 0o755)
	os.Chmod(rootfs, 0o755)
	var total unpack.Stats
	for i, l := range img.Layers {
		st, err := c.applyLayer(ctx, rootfs, l)
		if err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("unpack image %s: layer %d (%s): %w", img.Digest, i, l.Digest, err)
		}
		total.Files += st.Files
		total.Bytes += st.Bytes
		total.SkippedDevices += st.SkippedDevices
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr == nil {
			return nil // another process unpacked it meanwhile
		}
		return fmt.Errorf("unpack image %s: %w", img.Digest, err)
	}
	c.log.Info("image unpacked", "image", img.Digest, "layers", len(img.Layers), "files", total.Files,
		"bytes", total.Bytes, "skippedDevices", total.SkippedDevices, "took", time.Since(t0))
	return nil
}

func (c *imageCache) applyLayer(ctx context.Context, rootfs string, l depot.Layer) (unpack.Stats, error) {
	r, err := c.images.LayerReader(l)
	if err != nil {
		return unpack.Stats{}, err
	}
	st, err := unpack.Apply(ctx, rootfs, r, unpack.DefaultOptions())
	if err == nil {
		// The tar stream ends before the layer's bytes do (padding after the end
		// marker): read them all, so that the digest is checked over all of them.
		_, err = io.Copy(io.Discard, r)
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// remove deletes an image's unpacked root filesystem.
func (c *imageCache) remove(digest depot.Digest) error {
	err := os.RemoveAll(c.path(digest))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove unpacked image %s: %w", digest, err)
	}
	return nil
}
