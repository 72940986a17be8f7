package depot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "depots"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// file is one file of a test layer.
type file struct {
	name, body string
	mode       int64
}

// tarBytes makes an uncompressed layer tar of files.
func tarBytes(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf makes a go-containerregistry layer of files, compressed as asked.
func layerOf(t testing.TB, mt types.MediaType, files ...file) v1.Layer {
	t.Helper()
	b := tarBytes(t, files...)
	opts := []tarball.LayerOption{tarball.WithMediaType(mt)}
	if mt == types.OCILayerZStd {
		opts = append(opts, tarball.WithCompression(compression.ZStd))
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf makes an image of layers for a platform, with an entrypoint; oci chooses
// OCI media types over Docker's.
func imageOf(t testing.TB, p Platform, oci bool, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := empty.Image
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Arch, p.Variant
	cf.Config.Entrypoint = []string{"/bin/web"}
	cf.Config.Cmd = []string{"--port", "8080"}
	cf.Config.Env = []string{"PATH=/bin", "MODE=test"}
	cf.Config.WorkingDir = "/srv"
	cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "53/udp": {}}
	cf.Config.Labels = map[string]string{"team": "edge"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// webImage is the usual test image: two OCI gzip layers for this node.
func webImage(t testing.TB) v1.Image {
	return imageOf(t, DefaultPlatform(), true,
		layerOf(t, types.OCILayer, file{name: "bin/web", body: "#!web", mode: 0o755}),
		layerOf(t, types.OCILayer, file{name: "srv/index.html", body: "hello"}))
}

func digestOfImage(t testing.TB, img v1.Image) Digest {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return Digest(h.String())
}

// writeLayout writes an OCI image layout of images (each with a ref.name annotation
// when names gives one) into a new directory.
func writeLayout(t testing.TB, images []v1.Image, names []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range images {
		var opts []layout.Option
		if i < len(names) && names[i] != "" {
			opts = append(opts, layout.WithAnnotations(map[string]string{annotationRefName: names[i]}))
		}
		if err := p.AppendImage(img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarDir writes the files under dir as a tar (gzip-compressed if gz) and returns its path.
func tarDir(t testing.TB, dir string, gz bool) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.tar")
	if gz {
		out += ".gz"
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		w = zw
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// dockerSave writes a docker save tarball (go-containerregistry's tarball.Write: layers
// compressed) of images by tag.
func dockerSave(t testing.TB, images map[string]v1.Image) string {
	t.Helper()
	refs := map[name.Tag]v1.Image{}
	for tag, img := range images {
		tg, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[tg] = img
	}
	out := filepath.Join(t.TempDir(), "save.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tarball.MultiWrite(refs, f); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeTar writes named entries into a tar file.
func writeTar(t testing.TB, entries ...file) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "x.tar")
	if err := os.WriteFile(out, tarBytes(t, entries...), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// blobs lists the blob digests in the store.
func blobs(t testing.TB, s *Store) []string {
	t.Helper()
	es, err := os.ReadDir(s.blobDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// assertEmpty checks the store holds no blob, no image and no temporary file.
func assertEmpty(t testing.TB, s *Store) {
	t.Helper()
	if b := blobs(t, s); len(b) != 0 {
		t.Errorf("store holds blobs %v, want none", b)
	}
	imgs, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 0 {
		t.Errorf("store holds images %v, want none", imgs)
	}
	assertNoTmp(t, s)
}

func assertNoTmp(t testing.TB, s *Store) {
	t.Helper()
	es, err := os.ReadDir(s.tmpDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		t.Errorf("temporary file %s left behind", e.Name())
	}
}

func wantErr(t testing.TB, err error, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one wrapping %v", target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q does not wrap %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// readLayer returns the files of a stored layer, read through LayerReader.
func readLayer(t testing.TB, s *Store, l Layer) map[string]string {
	t.Helper()
	rc, err := s.LayerReader(l)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(b)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("layer %s: close: %v", l.Digest, err)
	}
	return files
}

// testRegistry is an in-process OCI registry that counts the blob downloads it serves
// and can be told to lie about a blob.
type testRegistry struct {
	host string
	mu   sync.Mutex
	gets map[string]int // blob digest -> GETs served
	lie  map[string]bool
}

func newRegistry(t testing.TB) *testRegistry {
	t.Helper()
	r := &testRegistry{gets: map[string]int{}, lie: map[string]bool{}}
	mem := registry.NewInMemoryBlobHandler()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(lyingBlobs{mem, r}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			r.mu.Lock()
			r.gets[req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]]++
			r.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *testRegistry) blobGets(d string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets[d]
}

func (r *testRegistry) totalGets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.gets {
		n += c
	}
	return n
}

// lyingBlobs serves a blob the registry was told to lie about with one byte flipped.
type lyingBlobs struct {
	registry.BlobHandler
	r *testRegistry
}

func (l lyingBlobs) Get(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	rc, err := l.BlobHandler.Get(ctx, repo, h)
	if err != nil {
		return nil, err
	}
	l.r.mu.Lock()
	lie := l.r.lie[h.String()]
	l.r.mu.Unlock()
	if !lie {
		return rc, nil
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	b[len(b)/2] ^= 0xff
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (l lyingBlobs) Stat(ctx context.Context, repo string, h v1.Hash) (int64, error) {
	return l.BlobHandler.(registry.BlobStatHandler).Stat(ctx, repo, h)
}

func (l lyingBlobs) Put(ctx context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	return l.BlobHandler.(registry.BlobPutHandler).Put(ctx, repo, h, rc)
}
