package depot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Annotations that carry an image's name in an OCI image layout.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// maxTarEntries bounds the entries scanned in an imported tarball.
const maxTarEntries = 1 << 20

// Import imports the image in the OCI image layout (a directory, or a tar of one, as
// `docker save` of Docker 25+ and `buildx --output type=oci` write) or the classic
// `docker save` tarball at path; a tarball may be gzip- or zstd-compressed. Names the
// file gives its images (RepoTags, io.containerd.image.name,
// org.opencontainers.image.ref.name) are kept.
//
// A file of several images is imported whole. With name "", Import returns the first
// image; otherwise the one the file names name (or, if the file holds one image, that
// one), and gives it name. A multi-platform index is resolved to one platform: the one
// of WithPlatform, else this node's, else its only one. With WithPlatform, an image for
// another platform is refused.
func (s *Store) Import(ctx context.Context, path, name string, opts ...PullOption) (*Image, error) {
	imgs, chosen, err := s.importPath(ctx, path, name, opts)
	if err != nil {
		return nil, err
	}
	return imgs[chosen], nil
}

// ImportAll imports every image in the file or directory at path (see Import) and
// returns them in the file's order.
func (s *Store) ImportAll(ctx context.Context, path string, opts ...PullOption) ([]*Image, error) {
	imgs, _, err := s.importPath(ctx, path, "", opts)
	return imgs, err
}

// candidate is one image found in an archive, not yet imported.
type candidate struct {
	label   string   // where in the file, for messages
	names   []string // names the file gives it, normalized
	refName string   // a bare org.opencontainers.image.ref.name ("1.2"), matched against a tag
	load    func(ctx context.Context, extra []string) (*Image, error)
}

func (s *Store) importPath(ctx context.Context, p, nm string, opts []PullOption) (imgs []*Image, chosen int, err error) {
	o := makePullOptions(opts)
	var want string
	if nm != "" {
		if want, err = normalizeName(nm); err != nil {
			return nil, 0, fmt.Errorf("import %s: %w", p, err)
		}
	}
	s.gc.RLock()
	defer s.gc.RUnlock()

	// Parsers of outside input must not bring the node down, whatever the bytes.
	defer func() {
		if r := recover(); r != nil {
			imgs, err = nil, fmt.Errorf("import %s: malformed input (%v): %w", p, r, ErrInvalid)
		}
	}()
	cands, cleanup, err := s.readArchive(ctx, p, o)
	defer cleanup()
	if err != nil {
		return nil, 0, fmt.Errorf("import %s: %w", p, err)
	}
	chosen, err = pick(cands, want)
	if err != nil {
		return nil, 0, fmt.Errorf("import %s: %w", p, err)
	}
	for i, c := range cands {
		var extra []string
		if i == chosen && want != "" {
			extra = []string{want}
		}
		img, err := c.load(ctx, extra)
		if err != nil {
			return nil, 0, fmt.Errorf("import %s: %s: %w", p, c.label, err)
		}
		imgs = append(imgs, img)
	}
	return imgs, chosen, nil
}

// pick chooses the candidate want names; "" or a file of one image choose the first.
func pick(cands []candidate, want string) (int, error) {
	if want == "" || len(cands) == 1 {
		return 0, nil
	}
	c := canonical(want)
	for i, cand := range cands {
		for _, n := range cand.names {
			if n == want || (c != "" && canonical(n) == c) {
				return i, nil
			}
		}
	}
	tag := want[strings.LastIndex(want, ":")+1:]
	match := -1
	for i, cand := range cands {
		if cand.refName != "" && cand.refName == tag {
			if match >= 0 {
				match = -2
				break
			}
			match = i
		}
	}
	if match >= 0 {
		return match, nil
	}
	var all []string
	for _, cand := range cands {
		if len(cand.names) > 0 {
			all = append(all, cand.names...)
		} else if cand.refName != "" {
			all = append(all, cand.refName)
		}
	}
	if len(all) == 0 {
		all = []string{"none named"}
	}
	return 0, fmt.Errorf("it holds %d images (%s) and none is named %q: give one of those names, or none to import them all: %w", len(cands), strings.Join(all, ", "), want, ErrNotFound)
}

func notImage(p string, why string, args ...any) error {
	return fmt.Errorf("%s is neither an OCI image layout nor a docker save tarball: %s: %w", p, fmt.Sprintf(why, args...), ErrInvalid)
}

// readArchive finds the images in the directory or tarball at p. cleanup releases what
// it opened and is never nil.
func (s *Store) readArchive(ctx context.Context, p string, o pullOptions) (cands []candidate, cleanup func(), err error) {
	var closers []func()
	cleanup = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, cleanup, err
	}
	if fi.IsDir() {
		cands, err := s.dirLayout(ctx, p, o)
		return cands, cleanup, err
	}
	if !fi.Mode().IsRegular() {
		return nil, cleanup, notImage(p, "not a regular file or a directory")
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, cleanup, err
	}
	closers = append(closers, func() { f.Close() })
	tarPath := p
	tf, decompressed, err := s.decompress(ctx, f, p)
	if err != nil {
		return nil, cleanup, err
	}
	if decompressed {
		closers = append(closers, func() { tf.Close(); os.Remove(tf.Name()) })
		tarPath = tf.Name()
	}
	entries, err := scanTar(tf)
	if err != nil {
		return nil, cleanup, notImage(p, "%v", err)
	}
	switch {
	case entries["index.json"].regular():
		cands, err := s.tarLayout(ctx, p, tf, entries, o)
		return cands, cleanup, err
	case entries["manifest.json"].regular():
		cands, err := s.dockerSave(p, tarPath, entries, o)
		return cands, cleanup, err
	}
	return nil, cleanup, notImage(p, "the tar holds neither index.json (an OCI image layout) nor manifest.json (docker save)")
}

// decompress returns f itself if it is not compressed, else a temporary file (in the
// store) of its decompressed bytes, for the random access the tar readers need.
func (s *Store) decompress(ctx context.Context, f *os.File, p string) (*os.File, bool, error) {
	magic := make([]byte, 4)
	n, err := io.ReadFull(f, magic)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	magic = magic[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, false, err
	}
	var r io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			return nil, false, notImage(p, "gzip: %v", err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bufio.NewReader(f), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, false, notImage(p, "zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		return f, false, nil
	}
	tmp, err := os.CreateTemp(s.tmpDir(), "import-")
	if err != nil {
		return nil, false, err
	}
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, notImage(p, "decompressing: %v (is it truncated?)", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, false, err
	}
	return tmp, true, nil
}

// tarEntry is where a file's bytes are in a tarball.
type tarEntry struct {
	offset, size int64
	typ          byte
	ok           bool
}

func (e tarEntry) regular() bool { return e.ok && e.typ == tar.TypeReg }

// scanTar indexes the files of a tarball by their cleaned names, without reading their
// bytes: the tar reader seeks over them, and each file is later read at its offset.
func scanTar(f *os.File) (map[string]tarEntry, error) {
	tr := tar.NewReader(f)
	entries := map[string]tarEntry{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return nil, errors.New("not a tar archive (empty)")
			}
			return entries, nil
		}
		if err != nil {
			if n == 0 {
				return nil, fmt.Errorf("not a tar archive: %v", err)
			}
			return nil, fmt.Errorf("tar archive is truncated or corrupt after %d entries: %v", n, err)
		}
		if n >= maxTarEntries {
			return nil, fmt.Errorf("tar archive has more than %d entries", maxTarEntries)
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		typ := hdr.Typeflag
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				typ = tar.TypeGNUSparse // stored bytes are not the file's: never read them
			}
		}
		entries[cleanTarName(hdr.Name)] = tarEntry{offset: off, size: hdr.Size, typ: typ, ok: true}
	}
}

func cleanTarName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// blobEntryName is where an OCI image layout keeps blob d.
func blobEntryName(d Digest) string { return "blobs/sha256/" + d.Hex() }

// layoutSource is an OCI image layout, in a directory or in a tarball.
type layoutSource struct {
	where string // the path, for messages
	index []byte
	open  func(d Digest) (io.ReadCloser, error)
}

func (s *Store) dirLayout(ctx context.Context, p string, o pullOptions) ([]candidate, error) {
	fi, err := os.Stat(filepath.Join(p, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notImage(p, "the directory has no index.json")
	}
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxManifestSize {
		return nil, fmt.Errorf("index.json is %d bytes, more than %d: %w", fi.Size(), MaxManifestSize, ErrInvalid)
	}
	lp, err := layout.FromPath(p)
	if err != nil {
		return nil, notImage(p, "%v", err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, notImage(p, "%v", err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, notImage(p, "index.json: %v", err)
	}
	return s.layoutCandidates(ctx, layoutSource{
		where: p,
		index: raw,
		open: func(d Digest) (io.ReadCloser, error) {
			rc, err := lp.Blob(v1.Hash{Algorithm: "sha256", Hex: d.Hex()})
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("the layout has no blob %s (is it incomplete?): %w", d, ErrInvalid)
			}
			return rc, err
		},
	}, o)
}

func (s *Store) tarLayout(ctx context.Context, p string, f *os.File, entries map[string]tarEntry, o pullOptions) ([]candidate, error) {
	ie := entries["index.json"]
	if ie.size > MaxManifestSize {
		return nil, fmt.Errorf("index.json is %d bytes, more than %d: %w", ie.size, MaxManifestSize, ErrInvalid)
	}
	index := make([]byte, ie.size)
	if _, err := f.ReadAt(index, ie.offset); err != nil {
		return nil, notImage(p, "reading index.json: %v (is it truncated?)", err)
	}
	return s.layoutCandidates(ctx, layoutSource{
		where: p,
		index: index,
		open: func(d Digest) (io.ReadCloser, error) {
			e := entries[blobEntryName(d)]
			if !e.regular() {
				return nil, fmt.Errorf("the layout has no blob %s (is it incomplete?): %w", d, ErrInvalid)
			}
			return io.NopCloser(io.NewSectionReader(f, e.offset, e.size)), nil
		},
	}, o)
}

// layoutCandidates lists the images of an OCI image layout's index.json, resolving each
// multi-platform index to one platform.
func (s *Store) layoutCandidates(ctx context.Context, src layoutSource, o pullOptions) ([]candidate, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(src.index))
	if err != nil {
		return nil, notImage(src.where, "index.json: %v", err)
	}
	want := DefaultPlatform()
	if o.hasPlatform {
		want = o.platform
	}
	fetch := func(_ context.Context, d Digest, _ int64) (io.ReadCloser, error) { return src.open(d) }
	var cands []candidate
	for i, desc := range idx.Manifests {
		label := fmt.Sprintf("index.json manifests[%d]", i)
		d, err := ParseDigest(desc.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", label, err, ErrInvalid)
		}
		size := desc.Size
		switch {
		case desc.MediaType.IsIndex():
			b, err := s.small(ctx, d, size, MaxManifestSize, fetch)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			nested, err := v1.ParseIndexManifest(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%s: image index %s: %v: %w", label, d, err, ErrInvalid)
			}
			child, err := chooseManifest(nested, want, o.hasPlatform)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			d, size = Digest(child.Digest.String()), child.Size
		case desc.MediaType.IsImage() || desc.MediaType == "":
		default:
			continue // an artifact beside the images (a signature, an SBOM)
		}
		c := candidate{label: label}
		c.names, c.refName = namesFromAnnotations(desc.Annotations)
		md, msize := d, size
		c.load = func(ctx context.Context, extra []string) (*Image, error) {
			mb, err := s.small(ctx, md, msize, MaxManifestSize, fetch)
			if err != nil {
				return nil, fmt.Errorf("manifest: %w", err)
			}
			return s.ingest(ctx, ingestJob{
				digest:   md,
				manifest: mb,
				fetch:    fetch,
				platform: want,
				check:    o.hasPlatform,
				source:   "import " + src.where,
				names:    slices.Concat(c.names, extra),
			})
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return nil, notImage(src.where, "index.json lists no image")
	}
	return cands, nil
}

// namesFromAnnotations returns the names an index entry gives its image, and a bare
// ref.name (only a tag) to match a tag against.
func namesFromAnnotations(a map[string]string) (names []string, refName string) {
	if n, ok := a[annotationContainerdName]; ok {
		if nn, err := normalizeName(familiar(n)); err == nil {
			names = append(names, nn)
		}
	}
	if r, ok := a[annotationRefName]; ok {
		if strings.ContainsAny(r, ":/") {
			if nn, err := normalizeName(familiar(r)); err == nil && len(names) == 0 {
				names = append(names, nn)
			}
		} else {
			refName = r
		}
	}
	return names, refName
}

// familiar shortens a Docker Hub name as Docker shows it: "docker.io/library/alpine:3"
// is "alpine:3".
func familiar(n string) string {
	for _, p := range []string{"docker.io/", "index.docker.io/"} {
		if rest, ok := strings.CutPrefix(n, p); ok {
			n = rest
			if r, ok := strings.CutPrefix(n, "library/"); ok && !strings.Contains(r, "/") {
				n = r
			}
			break
		}
	}
	return n
}

// dockerSave lists the images of a classic `docker save` tarball (manifest.json,
// configs, layer tars), read with go-containerregistry's tarball package. Its layers are
// stored as the uncompressed tars the config's diff_ids name, and each image gets an
// OCI manifest, as Docker 25+ itself writes them: the diff_ids are what a docker save
// promises, so each layer is checked against its diff_id as it is written.
func (s *Store) dockerSave(p, tarPath string, entries map[string]tarEntry, o pullOptions) ([]candidate, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(tarPath) }
	if e := entries["manifest.json"]; e.size > MaxManifestSize {
		return nil, fmt.Errorf("manifest.json is %d bytes, more than %d: %w", e.size, MaxManifestSize, ErrInvalid)
	}
	mf, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, notImage(p, "manifest.json: %v", err)
	}
	if len(mf) == 0 {
		return nil, notImage(p, "manifest.json lists no image")
	}
	var cands []candidate
	for i, desc := range mf {
		label := fmt.Sprintf("manifest.json[%d]", i)
		if e := entries[cleanTarName(desc.Config)]; e.ok && e.size > MaxConfigSize {
			return nil, fmt.Errorf("%s: config %s is %d bytes, more than %d: %w", label, desc.Config, e.size, MaxConfigSize, ErrInvalid)
		}
		c := candidate{label: label}
		var tag *name.Tag
		for _, rt := range desc.RepoTags {
			nn, err := normalizeName(rt)
			if err != nil {
				return nil, fmt.Errorf("%s: RepoTags: %v: %w", label, err, ErrInvalid)
			}
			c.names = append(c.names, nn)
		}
		if len(desc.RepoTags) > 0 {
			t, err := name.NewTag(desc.RepoTags[0])
			if err != nil {
				return nil, fmt.Errorf("%s: RepoTags: %v: %w", label, err, ErrInvalid)
			}
			tag = &t
		} else if len(mf) > 1 {
			return nil, fmt.Errorf("%s has no RepoTags: in a tarball of several images each needs one to be told apart: %w", label, ErrInvalid)
		}
		c.load = func(ctx context.Context, extra []string) (*Image, error) {
			return s.loadDockerImage(ctx, p, opener, tag, o, slices.Concat(c.names, extra))
		}
		cands = append(cands, c)
	}
	return cands, nil
}

func (s *Store) loadDockerImage(ctx context.Context, p string, opener tarball.Opener, tag *name.Tag, o pullOptions, names []string) (*Image, error) {
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return nil, notImage(p, "%v", err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %v: %w", err, ErrInvalid)
	}
	if len(config) > MaxConfigSize {
		return nil, fmt.Errorf("config is %d bytes, more than %d: %w", len(config), MaxConfigSize, ErrInvalid)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		return nil, fmt.Errorf("config: %v: %w", err, ErrInvalid)
	}
	got := Platform{OS: cf.OS, Arch: cf.Architecture, Variant: cf.Variant}
	if o.hasPlatform && !o.platform.Matches(got) {
		return nil, fmt.Errorf("image is for %s, not %s: %w", got, o.platform, ErrPlatform)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config: v1.Descriptor{
			MediaType: types.OCIConfigJSON,
			Size:      int64(len(config)),
			Digest:    v1.Hash{Algorithm: "sha256", Hex: FromBytes(config).Hex()},
		},
	}
	if len(cf.RootFS.DiffIDs) > MaxLayers {
		return nil, fmt.Errorf("config lists %d layers, more than %d: %w", len(cf.RootFS.DiffIDs), MaxLayers, ErrInvalid)
	}
	for i, h := range cf.RootFS.DiffIDs {
		d, err := ParseDigest(h.String())
		if err != nil {
			return nil, fmt.Errorf("config rootfs.diff_ids[%d]: %v: %w", i, err, ErrInvalid)
		}
		err = s.ensure(ctx, d, -1, -1, func(context.Context) (io.ReadCloser, error) {
			l, err := img.LayerByDiffID(h)
			if err != nil {
				return nil, fmt.Errorf("layer %d: %v: %w", i, err, ErrInvalid)
			}
			return l.Uncompressed()
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d (diff_id %s): %w", i, d, err)
		}
		size, err := s.Size(d)
		if err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: size, Digest: h})
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return s.ingest(ctx, ingestJob{
		digest:   FromBytes(mb),
		manifest: mb,
		fetch: func(_ context.Context, d Digest, _ int64) (io.ReadCloser, error) {
			if d != FromBytes(config) { // the layers were stored above
				return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
			}
			return io.NopCloser(bytes.NewReader(config)), nil
		},
		platform: o.platform,
		check:    o.hasPlatform,
		source:   "import " + p,
		names:    names,
	})
}
