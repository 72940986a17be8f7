package depot

import (
	"context"
	"fmt"
	"io"
)

// BlobSource gives blobs by digest: a peer over the mesh, or another Store (a Store is
// one). The store checks every byte it gets against the digest and the size the
// manifest gives, so a source need not be trusted; a lie comes back as an error
// wrapping ErrDigestMismatch or ErrSizeMismatch, which a caller may hold against the
// peer.
type BlobSource interface {
	OpenBlob(ctx context.Context, d Digest) (io.ReadCloser, error)
}

// Fetch brings the image whose manifest has digest d from src into the store (from a
// peer that has it) and returns it. The manifest must be a single-platform image
// manifest, as the store keeps them; with WithPlatform, an image for another platform
// is refused. Blobs already in the store are not fetched again; the image is not named
// (see Tag).
func (s *Store) Fetch(ctx context.Context, d Digest, src BlobSource, opts ...PullOption) (*Image, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	o := makePullOptions(opts)
	s.gc.RLock()
	defer s.gc.RUnlock()
	fetch := func(ctx context.Context, b Digest, _ int64) (io.ReadCloser, error) {
		return src.OpenBlob(ctx, b)
	}
	mb, err := s.small(ctx, d, -1, MaxManifestSize, fetch)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: manifest: %w", d, err)
	}
	img, err := s.ingest(ctx, ingestJob{
		digest:   d,
		manifest: mb,
		fetch:    fetch,
		platform: o.platform,
		check:    o.hasPlatform,
		source:   "fetch",
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", d, err)
	}
	return img, nil
}
