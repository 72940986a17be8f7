package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"
)

// fetchFunc opens a blob of an image being brought in, from wherever it comes from (a
// registry, an image layout, a peer). size is the size the manifest gives.
type fetchFunc func(ctx context.Context, d Digest, size int64) (io.ReadCloser, error)

// ingestJob is one image to bring into the store.
type ingestJob struct {
	digest   Digest // the manifest's digest, as the source names it
	manifest []byte
	fetch    fetchFunc
	platform Platform // checked against the config when check is set
	check    bool
	source   string
	names    []string // normalized
}

// parallelFetches bounds the layers of one image fetched at once.
const parallelFetches = 3

// ingest brings an image into the store: the manifest is checked against its digest,
// the config is read into memory and checked (platform included) before any layer is
// fetched, the layers are fetched and stored (each checked as it is written), and the
// config and manifest are stored last, so an image is recorded only when everything it
// references is there. Valid blobs fetched before a failure stay until GC, so a retry
// does not fetch them again. The caller holds s.gc shared.
func (s *Store) ingest(ctx context.Context, job ingestJob) (*Image, error) {
	if got := FromBytes(job.manifest); got != job.digest {
		return nil, fmt.Errorf("manifest %s: %w", job.digest, mismatch(job.digest, got, int64(len(job.manifest))))
	}
	m, err := parseManifest(job.manifest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", job.digest, err)
	}
	cd := Digest(m.Config.Digest.String())
	config, err := s.small(ctx, cd, m.Config.Size, MaxConfigSize, job.fetch)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", job.digest, err)
	}
	img, err := buildImage(job.digest, job.manifest, m, config)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", job.digest, err)
	}
	if job.check && img.Kind == KindOCI && !job.platform.Matches(img.Platform()) {
		return nil, fmt.Errorf("image %s is for %s, not %s: %w", job.digest, img.Platform(), job.platform, ErrPlatform)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelFetches)
	seen := map[Digest]bool{}
	for _, l := range img.Layers {
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		g.Go(func() error {
			err := s.ensure(gctx, l.Digest, l.Size, -1, func(ctx context.Context) (io.ReadCloser, error) {
				return job.fetch(ctx, l.Digest, l.Size)
			})
			if err != nil {
				return fmt.Errorf("image %s: layer: %w", job.digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if img.Kind == KindWasm {
		if err := s.checkWasmLayer(img.Layers[0].Digest); err != nil {
			return nil, fmt.Errorf("image %s: layer %s: %w", job.digest, img.Layers[0].Digest, err)
		}
	}
	if err := s.putBytes(ctx, config, cd); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", job.digest, err)
	}
	if err := s.putBytes(ctx, job.manifest, job.digest); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", job.digest, err)
	}
	if err := s.record(img, job.source, job.names); err != nil {
		return nil, err
	}
	return img.clone(), nil
}

// small returns a small blob (a manifest, a config): from the store if it is there,
// else read from fetch into memory, bounded by limit and checked against d and size
// (-1: unknown). Nothing is stored.
func (s *Store) small(ctx context.Context, d Digest, size, limit int64, fetch fetchFunc) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d the store accepts for it: %w", d, size, limit, ErrSizeMismatch)
	}
	if s.Has(d) {
		return s.readBlob(d, limit)
	}
	rc, err := fetch(ctx, d, size)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	defer rc.Close()
	return readChecked(ctx, rc, d, size, limit)
}

// readChecked reads a whole small blob into memory and checks its size and digest.
func readChecked(ctx context.Context, r io.Reader, d Digest, size, limit int64) ([]byte, error) {
	max := limit
	if size >= 0 {
		max = size
	}
	var buf bytes.Buffer
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(ctxReader{ctx, r}, max+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("blob %s: %w", d, ctx.Err())
		}
		if got := digestOf(h); size >= 0 && n == size && got != d {
			return nil, mismatch(d, got, n)
		}
		return nil, fmt.Errorf("blob %s: reading after %d bytes: %w", d, n, err)
	}
	switch {
	case size >= 0 && n > size:
		return nil, fmt.Errorf("blob %s is longer than its announced size of %d bytes: %w", d, size, ErrSizeMismatch)
	case size >= 0 && n < size:
		return nil, fmt.Errorf("blob %s is truncated: %d of %d bytes: %w", d, n, size, ErrSizeMismatch)
	case n > max:
		return nil, fmt.Errorf("blob %s is larger than %d bytes, the most the store accepts for it: %w", d, max, ErrSizeMismatch)
	}
	if got := digestOf(h); got != d {
		return nil, mismatch(d, got, n)
	}
	return buf.Bytes(), nil
}

// checkWasmLayer checks the header of a stored WebAssembly layer.
func (s *Store) checkWasmLayer(d Digest) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	return CheckWasmHeader(head[:n])
}
