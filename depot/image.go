package depot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Kind says which driver family runs an image.
type Kind string

const (
	// KindOCI is a container image: a root filesystem in layers and a config (oci driver).
	KindOCI Kind = "oci"
	// KindWasm is a WebAssembly module stored as an OCI artifact (wasm driver).
	KindWasm Kind = "wasm"
)

// Media types the store writes or gives a meaning to, beyond the usual OCI and Docker
// ones.
const (
	// MediaTypeWasmLayer is the media type of a WebAssembly module's one layer.
	MediaTypeWasmLayer = "application/wasm"
	// MediaTypeWasmConfig is the config of a WebAssembly artifact, as the CNCF
	// wasm-oci convention (and wasm-to-oci, runwasi) name it.
	MediaTypeWasmConfig = "application/vnd.wasm.config.v0+json"
)

// Bounds on what the store reads into memory from outside. Real manifests are a few KiB
// and configs tens of KiB; the bounds only stop a hostile source from exhausting memory.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
	MaxLayers       = 1000
)

// Image is one stored image: a single-platform manifest and what it references.
type Image struct {
	// Digest is the digest of the manifest: the image's identity.
	Digest Digest
	// MediaType is the manifest's media type (OCI image manifest or Docker schema 2).
	MediaType string
	Kind      Kind
	// ConfigDigest is the digest of the config blob (Docker's "image ID").
	ConfigDigest Digest
	// Config is what the image says to run.
	Config ImageConfig
	// Layers are in order, base first.
	Layers []Layer
	// OS, Arch and Variant are the image's platform as its config states it ("linux",
	// "arm64", "v8"); a wasm module is "wasip1"/"wasm".
	OS, Arch, Variant string
	// Created is when the image was built, as its config says (zero if unknown).
	Created time.Time
	// Size is the bytes of the manifest, config and layers as stored.
	Size int64
	// Annotations are the manifest's annotations.
	Annotations map[string]string
}

// Platform returns the image's platform.
func (i *Image) Platform() Platform { return Platform{OS: i.OS, Arch: i.Arch, Variant: i.Variant} }

// Layer is one layer blob of an image.
type Layer struct {
	Digest Digest
	// Size is the stored (usually compressed) size in bytes.
	Size      int64
	MediaType string
	// DiffID is the digest of the uncompressed tar, from the image config; LayerReader
	// checks it. Empty for a wasm module.
	DiffID Digest
}

// ImageConfig is what an image says to run, from its config.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	// ExposedPorts are "8080/tcp" and the like, sorted.
	ExposedPorts []string
	Labels       map[string]string
	StopSignal   string
}

// ImageSummary is one line of Images: what `qnet depot ls` shows.
type ImageSummary struct {
	Digest  Digest
	Names   []string
	Kind    Kind
	OS      string
	Arch    string
	Variant string
	Size    int64
	Created time.Time
	// Added is when the image came into this store, and Source from where ("pull
	// reg/x:1", "import web.tar", "build ./dir", "wasm ./m.wasm", "fetch").
	Added  time.Time
	Source string
	// Problem is set when the image's blobs cannot be read or parsed (see Check).
	Problem string
}

// Image returns the stored image whose manifest has digest d.
func (s *Store) Image(d Digest) (*Image, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := s.images[d]
	img := s.parsed[d]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("image %s: %w", d, ErrNotFound)
	}
	if img != nil {
		return img.clone(), nil
	}
	img, err := s.loadImage(d)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, still := s.images[d]; still {
		s.parsed[d] = img
	}
	s.mu.Unlock()
	return img.clone(), nil
}

// loadImage parses an image from its stored blobs.
func (s *Store) loadImage(d Digest) (*Image, error) {
	mb, err := s.readBlob(d, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", d, err)
	}
	m, err := parseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	cd, err := ParseDigest(m.Config.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", d, err)
	}
	cb, err := s.readBlob(cd, MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", d, err)
	}
	return buildImage(d, mb, m, cb)
}

// Images lists the stored images, newest first.
func (s *Store) Images() ([]ImageSummary, error) {
	s.mu.Lock()
	recs := make(map[Digest]record, len(s.images))
	for d, r := range s.images {
		recs[d] = r
	}
	names := s.namesByImageLocked()
	s.mu.Unlock()

	out := make([]ImageSummary, 0, len(recs))
	for d, r := range recs {
		sum := ImageSummary{Digest: d, Names: names[d], Added: r.Added, Source: r.Source}
		img, err := s.Image(d)
		if err != nil {
			s.mu.Lock()
			_, still := s.images[d]
			s.mu.Unlock()
			if !still {
				continue // removed while we listed
			}
			sum.Problem = err.Error()
		} else {
			sum.Kind, sum.OS, sum.Arch, sum.Variant = img.Kind, img.OS, img.Arch, img.Variant
			sum.Size, sum.Created = img.Size, img.Created
		}
		out = append(out, sum)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Added.Equal(out[j].Added) {
			return out[i].Added.After(out[j].Added)
		}
		return out[i].Digest < out[j].Digest
	})
	return out, nil
}

func (s *Store) namesByImageLocked() map[Digest][]string {
	byImage := map[Digest][]string{}
	for n, d := range s.names {
		byImage[d] = append(byImage[d], n)
	}
	for _, ns := range byImage {
		sort.Strings(ns)
	}
	return byImage
}

// record adds image img to the index and gives it names. Its blobs are all stored.
func (s *Store) record(img *Image, source string, names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[img.Digest]; !ok {
		r := record{Added: s.now().UTC(), Source: source}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("image %s: %w", img.Digest, err)
		}
		if err := s.writeFileAtomic(filepath.Join(s.imageDir(), img.Digest.Hex()+".json"), b); err != nil {
			return fmt.Errorf("image %s: recording it: %w", img.Digest, err)
		}
		s.images[img.Digest] = r
	}
	s.parsed[img.Digest] = img.clone()
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		s.names[n] = img.Digest
	}
	return s.saveNamesLocked()
}

func (s *Store) unrecordLocked(d Digest) error {
	if err := os.Remove(filepath.Join(s.imageDir(), d.Hex()+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image %s: %w", d, err)
	}
	delete(s.images, d)
	delete(s.parsed, d)
	return nil
}

func (i *Image) clone() *Image {
	c := *i
	c.Layers = slices.Clone(i.Layers)
	c.Config.Entrypoint = slices.Clone(i.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(i.Config.Cmd)
	c.Config.Env = slices.Clone(i.Config.Env)
	c.Config.ExposedPorts = slices.Clone(i.Config.ExposedPorts)
	c.Config.Labels = cloneMap(i.Config.Labels)
	c.Annotations = cloneMap(i.Annotations)
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// blobs returns every blob the image references: manifest, config, layers.
func (i *Image) blobs() []Digest {
	out := []Digest{i.Digest, i.ConfigDigest}
	for _, l := range i.Layers {
		out = append(out, l.Digest)
	}
	return out
}

var layerMediaTypes = map[types.MediaType]bool{
	types.OCILayer:                       true,
	types.OCILayerZStd:                   true,
	types.OCIUncompressedLayer:           true,
	types.OCIRestrictedLayer:             true,
	types.OCIUncompressedRestrictedLayer: true,
	types.DockerLayer:                    true,
	types.DockerUncompressedLayer:        true,
}

// parseManifest decodes and checks an image manifest from outside.
func parseManifest(b []byte) (*v1.Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the %d a manifest may be: %w", len(b), MaxManifestSize, ErrInvalid)
	}
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("manifest is not JSON: %v: %w", err, ErrInvalid)
	}
	mt := types.MediaType(probe.MediaType)
	switch {
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed || probe.FSLayers != nil || probe.SchemaVersion == 1:
		return nil, fmt.Errorf("manifest is Docker schema 1, which is not supported: re-push the image with a current Docker or tool: %w", ErrInvalid)
	case mt.IsIndex() || (mt == "" && probe.Manifests != nil):
		return nil, fmt.Errorf("manifest is an image index (several platforms), not an image manifest: %w", ErrInvalid)
	case mt != "" && mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2:
		return nil, fmt.Errorf("manifest media type %q is not an image manifest: want %s or %s: %w", mt, types.OCIManifestSchema1, types.DockerManifestSchema2, ErrInvalid)
	case probe.SchemaVersion != 2:
		return nil, fmt.Errorf("manifest schemaVersion is %d: want 2: %w", probe.SchemaVersion, ErrInvalid)
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %v: %w", err, ErrInvalid)
	}
	if _, err := ParseDigest(m.Config.Digest.String()); err != nil {
		return nil, fmt.Errorf("manifest config: %v: %w", err, ErrInvalid)
	}
	if m.Config.Size <= 0 || m.Config.Size > MaxConfigSize {
		return nil, fmt.Errorf("manifest config size is %d: want 1 to %d bytes: %w", m.Config.Size, MaxConfigSize, ErrInvalid)
	}
	if len(m.Layers) > MaxLayers {
		return nil, fmt.Errorf("manifest has %d layers, more than the %d an image may have: %w", len(m.Layers), MaxLayers, ErrInvalid)
	}
	wasm := 0
	for i, l := range m.Layers {
		if _, err := ParseDigest(l.Digest.String()); err != nil {
			return nil, fmt.Errorf("manifest layers[%d]: %v: %w", i, err, ErrInvalid)
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("manifest layers[%d] size is %d: %w", i, l.Size, ErrInvalid)
		}
		switch {
		case l.MediaType == types.DockerForeignLayer || len(l.URLs) > 0:
			return nil, fmt.Errorf("manifest layers[%d] (%s) is a foreign layer (a Windows base layer fetched from its URLs): not supported: %w", i, l.Digest, ErrInvalid)
		case l.MediaType == MediaTypeWasmLayer:
			wasm++
		case !layerMediaTypes[l.MediaType]:
			return nil, fmt.Errorf("manifest layers[%d] (%s) has media type %q: want an OCI or Docker layer (tar, tar+gzip, tar+zstd) or %s: %w", i, l.Digest, l.MediaType, MediaTypeWasmLayer, ErrInvalid)
		}
	}
	if wasm > 0 && wasm != len(m.Layers) {
		return nil, fmt.Errorf("manifest mixes %d WebAssembly layers with %d filesystem layers: %w", wasm, len(m.Layers)-wasm, ErrInvalid)
	}
	if wasm > 0 && wasm != 1 {
		return nil, fmt.Errorf("manifest has %d WebAssembly layers: want exactly one module: %w", wasm, ErrInvalid)
	}
	switch ct := m.Config.MediaType; {
	case wasm > 0 && ct != MediaTypeWasmConfig && ct != types.OCIConfigJSON && ct != types.OCIEmptyJSON:
		return nil, fmt.Errorf("manifest of a WebAssembly module has config media type %q: want %s: %w", ct, MediaTypeWasmConfig, ErrInvalid)
	case wasm == 0 && ct != types.OCIConfigJSON && ct != types.DockerConfigJSON:
		return nil, fmt.Errorf("manifest config media type %q is not an image config (is it a signature, an SBOM, a chart?): want %s or %s: %w", ct, types.OCIConfigJSON, types.DockerConfigJSON, ErrInvalid)
	}
	return &m, nil
}

// wasmConfig is the config of a WebAssembly artifact (application/vnd.wasm.config.v0+json).
type wasmConfig struct {
	Created      time.Time `json:"created,omitzero"`
	Author       string    `json:"author,omitempty"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	LayerDigests []string  `json:"layerDigests,omitempty"`
}

// buildImage makes an Image of a manifest (already checked by parseManifest) and its
// config, checking the config.
func buildImage(d Digest, manifest []byte, m *v1.Manifest, config []byte) (*Image, error) {
	img := &Image{
		Digest:       d,
		MediaType:    string(m.MediaType),
		ConfigDigest: Digest(m.Config.Digest.String()),
		Size:         int64(len(manifest)) + int64(len(config)),
		Annotations:  cloneMap(m.Annotations),
		Kind:         KindOCI,
	}
	if img.MediaType == "" {
		img.MediaType = string(types.OCIManifestSchema1)
	}
	for _, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{Digest: Digest(l.Digest.String()), Size: l.Size, MediaType: string(l.MediaType)})
		img.Size += l.Size
	}
	if len(m.Layers) > 0 && m.Layers[0].MediaType == MediaTypeWasmLayer {
		img.Kind = KindWasm
		var wc wasmConfig
		if len(bytes.TrimSpace(config)) > 0 && m.Config.MediaType != types.OCIEmptyJSON {
			if err := json.Unmarshal(config, &wc); err != nil {
				return nil, fmt.Errorf("config %s: not a WebAssembly config: %v: %w", img.ConfigDigest, err, ErrInvalid)
			}
		}
		img.OS, img.Arch, img.Created = wc.OS, wc.Architecture, wc.Created
		if img.OS == "" {
			img.OS = "wasip1"
		}
		if img.Arch == "" {
			img.Arch = "wasm"
		}
		return img, nil
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		return nil, fmt.Errorf("config %s: %v: %w", img.ConfigDigest, err, ErrInvalid)
	}
	if cf.OS == "" || cf.Architecture == "" {
		return nil, fmt.Errorf("config %s names no platform (os %q, architecture %q): %w", img.ConfigDigest, cf.OS, cf.Architecture, ErrInvalid)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config %s lists %d layer diff_ids but the manifest has %d layers: %w", img.ConfigDigest, len(cf.RootFS.DiffIDs), len(m.Layers), ErrInvalid)
	}
	for i, h := range cf.RootFS.DiffIDs {
		dd, err := ParseDigest(h.String())
		if err != nil {
			return nil, fmt.Errorf("config %s rootfs.diff_ids[%d]: %v: %w", img.ConfigDigest, i, err, ErrInvalid)
		}
		img.Layers[i].DiffID = dd
	}
	img.OS, img.Arch, img.Variant, img.Created = cf.OS, cf.Architecture, cf.Variant, cf.Created.Time
	c := cf.Config
	img.Config = ImageConfig{
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		Labels:     c.Labels,
		StopSignal: c.StopSignal,
	}
	for p := range c.ExposedPorts {
		img.Config.ExposedPorts = append(img.Config.ExposedPorts, p)
	}
	sort.Strings(img.Config.ExposedPorts)
	return img, nil
}
