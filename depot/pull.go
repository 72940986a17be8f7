package depot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PullOption changes how Pull (and, where it applies, Import and Fetch) gets an image.
type PullOption func(*pullOptions)

type pullOptions struct {
	platform    Platform
	hasPlatform bool
	insecure    bool
	auth        authn.Authenticator
	keychain    authn.Keychain
	transport   http.RoundTripper
}

func makePullOptions(opts []PullOption) pullOptions {
	var o pullOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithPlatform asks for the image of platform p. Pull defaults to DefaultPlatform;
// Import and Fetch check the platform only when given this option. An image for
// another platform is refused with ErrPlatform; a WebAssembly module runs anywhere and
// is never refused for its platform.
func WithPlatform(p Platform) PullOption {
	return func(o *pullOptions) { o.platform, o.hasPlatform = p, true }
}

// WithInsecure lets Pull reach a registry over plain HTTP (a registry on the local
// network, a test registry). Without it only HTTPS is used, except for localhost as
// registries conventionally allow.
func WithInsecure() PullOption { return func(o *pullOptions) { o.insecure = true } }

// WithAuth makes Pull authenticate with a (user and password, token, …).
func WithAuth(a authn.Authenticator) PullOption { return func(o *pullOptions) { o.auth = a } }

// WithKeychain makes Pull look up credentials for the registry in k, such as
// authn.DefaultKeychain (Docker's config.json and its credential helpers). Without it or
// WithAuth, Pull is anonymous.
func WithKeychain(k authn.Keychain) PullOption { return func(o *pullOptions) { o.keychain = k } }

// WithTransport makes Pull send its HTTP requests through rt (a proxy, custom TLS roots).
func WithTransport(rt http.RoundTripper) PullOption {
	return func(o *pullOptions) { o.transport = rt }
}

// Pull fetches the image ref ("registry.example/team/web:1.2", "alpine",
// "ghcr.io/x/y@sha256:…") from its OCI registry into the store, names it ref (with
// ":latest" added if it has no tag; a reference by digest gives no name) and returns
// it. An index is resolved to the platform asked for (DefaultPlatform unless
// WithPlatform). Every blob is checked against its digest and size as it is written;
// blobs already in the store are not fetched again.
func (s *Store) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	o := makePullOptions(opts)
	want := DefaultPlatform()
	if o.hasPlatform {
		want = o.platform
	}
	var nameOpts []name.Option
	if o.insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("pull %q: not an image reference: %v: want [registry/]repository[:tag] or [registry/]repository@sha256:…", ref, err)
	}
	var names []string
	if _, byTag := r.(name.Tag); byTag {
		n, err := normalizeName(ref)
		if err != nil {
			return nil, fmt.Errorf("pull %q: %w", ref, err)
		}
		names = []string{n}
	}

	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithPlatform(v1.Platform{OS: want.OS, Architecture: want.Arch, Variant: want.Variant}),
		remote.WithUserAgent("qnet"),
	}
	if o.transport != nil {
		ropts = append(ropts, remote.WithTransport(o.transport))
	}
	switch {
	case o.auth != nil:
		ropts = append(ropts, remote.WithAuth(o.auth))
	case o.keychain != nil:
		ropts = append(ropts, remote.WithAuthFromKeychain(o.keychain))
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}

	s.gc.RLock()
	defer s.gc.RUnlock()

	desc, err := puller.Get(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if len(desc.Manifest) > MaxManifestSize {
		return nil, fmt.Errorf("pull %s: manifest is %d bytes, more than %d: %w", ref, len(desc.Manifest), MaxManifestSize, ErrInvalid)
	}
	if d, ok := r.(name.Digest); ok && FromBytes(desc.Manifest) != Digest(d.DigestStr()) {
		return nil, fmt.Errorf("pull %s: %w", ref, mismatch(Digest(d.DigestStr()), FromBytes(desc.Manifest), int64(len(desc.Manifest))))
	}
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return nil, fmt.Errorf("pull %s: image index: %v: %w", ref, err, ErrInvalid)
		}
		child, err := chooseManifest(idx, want, true)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		desc, err = puller.Get(ctx, r.Context().Digest(child.Digest.String()))
		if err != nil {
			return nil, fmt.Errorf("pull %s: %s manifest %s: %w", ref, want, child.Digest, err)
		}
		if FromBytes(desc.Manifest) != Digest(child.Digest.String()) {
			return nil, fmt.Errorf("pull %s: %w", ref, mismatch(Digest(child.Digest.String()), FromBytes(desc.Manifest), int64(len(desc.Manifest))))
		}
	}
	if desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed {
		return nil, fmt.Errorf("pull %s: manifest is Docker schema 1, which is not supported: %w", ref, ErrInvalid)
	}
	repo := r.Context()
	fetch := func(ctx context.Context, d Digest, size int64) (io.ReadCloser, error) {
		l, err := puller.Layer(ctx, repo.Digest(d.String()))
		if err != nil {
			return nil, err
		}
		return l.Compressed()
	}
	img, err := s.ingest(ctx, ingestJob{
		digest:   FromBytes(desc.Manifest),
		manifest: desc.Manifest,
		fetch:    fetch,
		platform: want,
		check:    true,
		source:   "pull " + ref,
		names:    names,
	})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}
