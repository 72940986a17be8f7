package depot

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// checkWeb checks an imported webImage: platform, config, layers and their content.
func checkWeb(t *testing.T, s *Store, img *Image) {
	t.Helper()
	if img.OS != "linux" || img.Arch != runtime.GOARCH || img.Kind != KindOCI {
		t.Errorf("image is %s/%s kind %s, want linux/%s oci", img.OS, img.Arch, img.Kind, runtime.GOARCH)
	}
	want := ImageConfig{
		Entrypoint:   []string{"/bin/web"},
		Cmd:          []string{"--port", "8080"},
		Env:          []string{"PATH=/bin", "MODE=test"},
		WorkingDir:   "/srv",
		ExposedPorts: []string{"53/udp", "8080/tcp"},
		Labels:       map[string]string{"team": "edge"},
	}
	if !reflect.DeepEqual(img.Config, want) {
		t.Errorf("config = %+v\nwant     %+v", img.Config, want)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(img.Layers))
	}
	wantFiles := []map[string]string{{"bin/web": "#!web"}, {"srv/index.html": "hello"}}
	var size int64
	for i, l := range img.Layers {
		if !s.Has(l.Digest) || l.DiffID == "" {
			t.Errorf("layer %d %+v: stored %v", i, l, s.Has(l.Digest))
		}
		if got := readLayer(t, s, l); !reflect.DeepEqual(got, wantFiles[i]) {
			t.Errorf("layer %d holds %v, want %v", i, got, wantFiles[i])
		}
		size += l.Size
	}
	if img.Size <= size {
		t.Errorf("image size %d is not more than its layers' %d", img.Size, size)
	}
	got, err := s.Image(img.Digest)
	if err != nil || !reflect.DeepEqual(got, img) {
		t.Errorf("Image(%s) = %+v, %v\nwant %+v", img.Digest, got, err, img)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	assertNoTmp(t, s)
}

func TestImportOCILayout(t *testing.T) {
	src := webImage(t)
	dir := writeLayout(t, []v1.Image{src}, []string{"web:1.2"})
	for name, path := range map[string]string{
		"dir":    dir,
		"tar":    tarDir(t, dir, false),
		"tar.gz": tarDir(t, dir, true),
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			img, err := s.Import(context.Background(), path, "")
			if err != nil {
				t.Fatal(err)
			}
			if img.Digest != digestOfImage(t, src) {
				t.Errorf("digest %s, want the layout's %s (the manifest kept as it was)", img.Digest, digestOfImage(t, src))
			}
			checkWeb(t, s, img)
			if img.MediaType != string(types.OCIManifestSchema1) || img.Layers[0].MediaType != string(types.OCILayer) {
				t.Errorf("media types %s / %s changed", img.MediaType, img.Layers[0].MediaType)
			}
			if d, err := s.Resolve("web:1.2"); err != nil || d != img.Digest {
				t.Errorf("Resolve(web:1.2) = %s, %v", d, err)
			}
			sums, _ := s.Images()
			if len(sums) != 1 || !reflect.DeepEqual(sums[0].Names, []string{"web:1.2"}) || !strings.HasPrefix(sums[0].Source, "import ") || sums[0].Kind != KindOCI {
				t.Errorf("Images() = %+v", sums)
			}
		})
	}
}

func TestImportLayerMediaTypes(t *testing.T) {
	// Docker and OCI, gzip, zstd and uncompressed layers, each read back as plain tar.
	for _, mt := range []types.MediaType{types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer} {
		t.Run(string(mt), func(t *testing.T) {
			l := layerOf(t, mt, file{name: "etc/motd", body: "hi " + string(mt)})
			src := imageOf(t, DefaultPlatform(), !strings.Contains(string(mt), "docker"), l)
			s := newStore(t)
			img, err := s.Import(context.Background(), writeLayout(t, []v1.Image{src}, nil), "m:1")
			if err != nil {
				t.Fatal(err)
			}
			if img.Layers[0].MediaType != string(mt) {
				t.Errorf("media type %s, want %s kept", img.Layers[0].MediaType, mt)
			}
			if got := readLayer(t, s, img.Layers[0]); got["etc/motd"] != "hi "+string(mt) {
				t.Errorf("layer holds %v", got)
			}
		})
	}
}

func TestImportDockerSave(t *testing.T) {
	src := imageOf(t, DefaultPlatform(), false,
		layerOf(t, types.DockerLayer, file{name: "bin/web", body: "#!web", mode: 0o755}),
		layerOf(t, types.DockerLayer, file{name: "srv/index.html", body: "hello"}))
	path := dockerSave(t, map[string]v1.Image{"web:1.2": src})
	s := newStore(t)
	img, err := s.Import(context.Background(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	checkWeb(t, s, img)
	// Layers are stored as the uncompressed tars the config's diff_ids name.
	cf, _ := src.ConfigFile()
	for i, l := range img.Layers {
		if l.Digest != Digest(cf.RootFS.DiffIDs[i].String()) || l.DiffID != l.Digest || l.MediaType != string(types.OCIUncompressedLayer) {
			t.Errorf("layer %d = %+v, want the uncompressed tar %s", i, l, cf.RootFS.DiffIDs[i])
		}
	}
	if cd, _ := src.ConfigName(); img.ConfigDigest != Digest(cd.String()) {
		t.Errorf("config digest %s, want %s (Docker's image ID)", img.ConfigDigest, cd)
	}
	if d, err := s.Resolve("web:1.2"); err != nil || d != img.Digest {
		t.Errorf("Resolve(web:1.2) = %s, %v", d, err)
	}
	// Importing the same file again gives the same image.
	again, err := s.Import(context.Background(), path, "other:1")
	if err != nil || again.Digest != img.Digest {
		t.Fatalf("re-import = %v, %v", again, err)
	}
	if got := s.Names(img.Digest); !reflect.DeepEqual(got, []string{"other:1", "web:1.2"}) {
		t.Errorf("names %v", got)
	}
}

// classicSave writes a docker save tarball as Docker before 25 wrote it: uncompressed
// layer.tar files in directories, a config named by its digest.
func classicSave(t testing.TB, diffIDs []string, layers [][]byte, arch string) string {
	t.Helper()
	cfg := map[string]any{
		"architecture": arch, "os": "linux",
		"config": map[string]any{"Cmd": []string{"/hello"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	cb, _ := json.Marshal(cfg)
	cname := FromBytes(cb).Hex() + ".json"
	var entries []file
	var paths []string
	for i, l := range layers {
		p := strings.Repeat(string(rune('a'+i)), 64) + "/layer.tar"
		paths = append(paths, p)
		entries = append(entries, file{name: p, body: string(l)})
	}
	mf, _ := json.Marshal([]map[string]any{{"Config": cname, "RepoTags": []string{"hello:old"}, "Layers": paths}})
	entries = append(entries, file{name: cname, body: string(cb)}, file{name: "manifest.json", body: string(mf)})
	return writeTar(t, entries...)
}

func TestImportClassicDockerSave(t *testing.T) {
	layer := tarBytes(t, file{name: "hello", body: "static binary", mode: 0o755})
	s := newStore(t)
	img, err := s.Import(context.Background(), classicSave(t, []string{FromBytes(layer).String()}, [][]byte{layer}, runtime.GOARCH), "")
	if err != nil {
		t.Fatal(err)
	}
	if img.Layers[0].Digest != FromBytes(layer) || img.Layers[0].Size != int64(len(layer)) {
		t.Errorf("layer %+v, want the layer.tar as it is", img.Layers[0])
	}
	if got := readLayer(t, s, img.Layers[0]); got["hello"] != "static binary" {
		t.Errorf("layer holds %v", got)
	}
	if d, _ := s.Resolve("hello:old"); d != img.Digest {
		t.Errorf("RepoTags name not kept")
	}

	// A layer whose diff_id lies is refused, and nothing of it is stored.
	s = newStore(t)
	lie := FromBytes([]byte("something else"))
	_, err = s.Import(context.Background(), classicSave(t, []string{lie.String()}, [][]byte{layer}, runtime.GOARCH), "")
	wantErr(t, err, ErrDigestMismatch, lie.String(), FromBytes(layer).String())
	assertEmpty(t, s)
}

func TestImportSeveralImages(t *testing.T) {
	a := imageOf(t, DefaultPlatform(), false, layerOf(t, types.DockerLayer, file{name: "a", body: "a"}))
	b := imageOf(t, DefaultPlatform(), false, layerOf(t, types.DockerLayer, file{name: "b", body: "b"}))
	path := dockerSave(t, map[string]v1.Image{"a:1": a, "registry.example:5000/team/b:2": b})
	ctx := context.Background()

	s := newStore(t)
	_, err := s.Import(ctx, path, "c:3")
	wantErr(t, err, ErrNotFound, `none is named "c:3"`, "a:1", "registry.example:5000/team/b:2")
	assertEmpty(t, s)

	img, err := s.Import(ctx, path, "registry.example:5000/team/b:2")
	if err != nil {
		t.Fatal(err)
	}
	if got := readLayer(t, s, img.Layers[0]); got["b"] != "b" {
		t.Errorf("Import by name returned the wrong image: %v", got)
	}
	if _, err := s.Resolve("a:1"); err != nil {
		t.Errorf("the other image was not imported: %v", err)
	}

	all, err := newStore(t).ImportAll(ctx, path)
	if err != nil || len(all) != 2 {
		t.Fatalf("ImportAll = %d images, %v", len(all), err)
	}

	// In a layout, a bare ref.name (a tag) selects too.
	dir := writeLayout(t, []v1.Image{a, b}, []string{"1", "2"})
	img, err = newStore(t).Import(ctx, dir, "b:2")
	if err != nil || img.Digest != digestOfImage(t, b) {
		t.Errorf("Import by tag from a layout = %v, %v", img, err)
	}
}

// otherArch is an architecture that is not this node's.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

func TestImportPlatforms(t *testing.T) {
	ctx := context.Background()
	here := imageOf(t, DefaultPlatform(), true, layerOf(t, types.OCILayer, file{name: "here", body: "1"}))
	there := imageOf(t, Platform{OS: "linux", Arch: otherArch()}, true, layerOf(t, types.OCILayer, file{name: "there", body: "2"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: here, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
		mutate.IndexAddendum{Add: there, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch()}}},
	)
	dir := filepath.Join(t.TempDir(), "multi")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "multi:1"})); err != nil {
		t.Fatal(err)
	}

	img, err := newStore(t).Import(ctx, dir, "")
	if err != nil || img.Digest != digestOfImage(t, here) {
		t.Fatalf("Import of an index = %v, %v; want this node's image", img, err)
	}
	img, err = newStore(t).Import(ctx, dir, "", WithPlatform(Platform{OS: "linux", Arch: otherArch()}))
	if err != nil || img.Digest != digestOfImage(t, there) || img.Arch != otherArch() {
		t.Fatalf("Import WithPlatform = %v, %v", img, err)
	}
	s := newStore(t)
	_, err = s.Import(ctx, dir, "", WithPlatform(Platform{OS: "linux", Arch: "s390x"}))
	wantErr(t, err, ErrPlatform, "no image for linux/s390x", "linux/"+runtime.GOARCH, "linux/"+otherArch())
	assertEmpty(t, s)

	// A single image for another platform: recorded as it is, refused when a platform is asked.
	single := writeLayout(t, []v1.Image{there}, nil)
	img, err = newStore(t).Import(ctx, single, "")
	if err != nil || img.Arch != otherArch() {
		t.Fatalf("Import = %v, %v", img, err)
	}
	s = newStore(t)
	_, err = s.Import(ctx, single, "", WithPlatform(DefaultPlatform()))
	wantErr(t, err, ErrPlatform, "is for linux/"+otherArch(), "not "+DefaultPlatform().String())
	assertEmpty(t, s)
	s = newStore(t)
	classic := classicSave(t, nil, nil, otherArch())
	_, err = s.Import(ctx, classic, "", WithPlatform(DefaultPlatform()))
	wantErr(t, err, ErrPlatform, "is for linux/"+otherArch())
	assertEmpty(t, s)
}

func TestImportRefusesWhatIsNotAnImage(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	save := dockerSave(t, map[string]v1.Image{"web:1": webImage(t)})
	saved, _ := os.ReadFile(save)
	emptyDir := filepath.Join(tmp, "emptydir")
	os.Mkdir(emptyDir, 0o755)
	tests := []struct {
		name  string
		path  string
		parts []string
	}{
		{"empty file", write("empty", nil), []string{"neither an OCI image layout nor a docker save tarball", "empty"}},
		{"garbage", write("garbage", bytes.Repeat([]byte("garbage!"), 200)), []string{"neither an OCI image layout nor a docker save tarball", "not a tar archive"}},
		{"gzip garbage", write("gz", []byte{0x1f, 0x8b, 8, 0, 1, 2, 3}), []string{"neither an OCI image layout nor a docker save tarball"}},
		{"other tar", writeTar(t, file{name: "README", body: "hi"}), []string{"neither index.json", "nor manifest.json"}},
		{"truncated docker save", write("trunc.tar", saved[:len(saved)/2]), []string{"truncated"}},
		{"bad manifest.json", writeTar(t, file{name: "manifest.json", body: "{"}), []string{"neither an OCI image layout nor a docker save tarball", "manifest.json"}},
		{"bad index.json", writeTar(t, file{name: "index.json", body: `{"manifests": 3}`}), []string{"neither an OCI image layout nor a docker save tarball", "index.json"}},
		{"index without its blobs", writeTar(t, file{name: "index.json", body: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + FromBytes(nil).String() + `","size":2}]}`}), []string{"no blob", "incomplete"}},
		{"directory without index.json", emptyDir, []string{"neither an OCI image layout nor a docker save tarball", "no index.json"}},
		{"missing", filepath.Join(tmp, "nope.tar"), []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.Import(ctx, tt.path, "")
			wantErr(t, err, nil, tt.parts...)
			assertEmpty(t, s)
		})
	}
}

func TestImportRefusesLyingLayout(t *testing.T) {
	src := webImage(t)
	dir := writeLayout(t, []v1.Image{src}, nil)
	layers, _ := src.Layers()
	ld, _ := layers[1].Digest()
	p := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	_, err := s.Import(context.Background(), tarDir(t, dir, false), "web:1")
	wantErr(t, err, ErrDigestMismatch, ld.String(), FromBytes(b).String())
	if s.Has(Digest(ld.String())) || s.Has(FromBytes(b)) {
		t.Error("the lying layer is stored")
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("an image was recorded: %+v", imgs)
	}
	if _, err := s.Resolve("web:1"); err == nil {
		t.Error("the name was given")
	}
	assertNoTmp(t, s)
}

func TestImportTarNeverWritesOutside(t *testing.T) {
	// Names that try to climb out of a directory are only names in a tar index.
	outside := filepath.Join(t.TempDir(), "escaped")
	tarPath := writeTar(t,
		file{name: "../../../../" + outside, body: "x"},
		file{name: "/" + outside, body: "x"},
		file{name: "index.json", body: `{"schemaVersion":2,"manifests":[]}`},
	)
	s := newStore(t)
	_, err := s.Import(context.Background(), tarPath, "")
	wantErr(t, err, ErrInvalid, "lists no image")
	if _, err := os.Stat(outside); err == nil {
		t.Fatal("import wrote outside the store")
	}
	var hdrs []string
	f, _ := os.Open(tarPath)
	defer f.Close()
	tr := tar.NewReader(f)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		hdrs = append(hdrs, cleanTarName(h.Name))
	}
	for _, h := range hdrs {
		if strings.HasPrefix(h, "..") || strings.HasPrefix(h, "/") {
			t.Errorf("cleanTarName kept %q outside", h)
		}
	}
}
