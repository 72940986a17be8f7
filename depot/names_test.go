package depot

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestNames(t *testing.T) {
	good := []string{"web", "web:1.2", "team/web:v1", "registry.example:5000/team/web:1.2", "localhost/x_y.z-w:Tag_1", "a__b"}
	bad := []string{"", "Web", "web:", "web:-1", "web@sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("a", 64), "-web", "web/", "a b", strings.Repeat("a", 256)}
	for _, n := range good {
		if err := checkName(n); err != nil {
			t.Errorf("checkName(%q): %v", n, err)
		}
	}
	for _, n := range bad {
		if err := checkName(n); err == nil {
			t.Errorf("checkName(%q) accepted it", n)
		}
	}
	for in, want := range map[string]string{"web": "web:latest", "web:1": "web:1", "localhost:5000/web": "localhost:5000/web:latest"} {
		if got, _ := normalizeName(in); got != want {
			t.Errorf("normalizeName(%q) = %q, want %q", in, got, want)
		}
	}
	if familiar("docker.io/library/alpine:3") != "alpine:3" || familiar("docker.io/team/x:1") != "team/x:1" || familiar("ghcr.io/a/b:1") != "ghcr.io/a/b:1" {
		t.Error("familiar names wrong")
	}
}

// twoImages imports two images that share their base layer.
func twoImages(t *testing.T, s *Store) (a, b *Image, shared Digest) {
	t.Helper()
	base := layerOf(t, types.OCILayer, file{name: "base", body: "shared base"})
	ia := imageOf(t, DefaultPlatform(), true, base, layerOf(t, types.OCILayer, file{name: "a", body: "a"}))
	ib := imageOf(t, DefaultPlatform(), true, base, layerOf(t, types.OCILayer, file{name: "b", body: "b"}))
	imgs, err := s.ImportAll(context.Background(), writeLayout(t, []v1.Image{ia, ib}, []string{"app/a:1", "app/b:1"}))
	if err != nil {
		t.Fatal(err)
	}
	if imgs[0].Layers[0].Digest != imgs[1].Layers[0].Digest {
		t.Fatal("the images do not share their base")
	}
	return imgs[0], imgs[1], imgs[0].Layers[0].Digest
}

func TestResolveAndTag(t *testing.T) {
	s := newStore(t)
	a, b, _ := twoImages(t, s)
	cases := map[string]Digest{
		"app/a:1":                      a.Digest,
		"docker.io/app/a:1":            a.Digest,
		"index.docker.io/app/b:1":      b.Digest,
		a.Digest.String():              a.Digest,
		"app/b@" + b.Digest.String():   b.Digest,
		a.Digest.Hex()[:12]:            a.Digest,
		"sha256:" + b.Digest.Hex()[:8]: b.Digest,
	}
	for ref, want := range cases {
		if got, err := s.Resolve(ref); err != nil || got != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", ref, got, err, want)
		}
	}
	for _, ref := range []string{"app/c:1", "app/a", "sha256:" + strings.Repeat("0", 64), "", "abc"} {
		if _, err := s.Resolve(ref); err == nil {
			t.Errorf("Resolve(%q) found something", ref)
		}
	}
	_, err := s.Resolve("nope:1")
	wantErr(t, err, ErrNotFound, `"nope:1"`, "import, pull or build")

	if err := s.Tag("app/a", a.Digest); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Resolve("app/a"); d != a.Digest {
		t.Error("tag without a tag did not become :latest")
	}
	// Moving a name.
	if err := s.Tag("app/a:1", b.Digest); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Resolve("app/a:1"); d != b.Digest {
		t.Error("Tag did not move the name")
	}
	wantErr(t, s.Tag("x:1", FromBytes(nil)), ErrNotFound)
	wantErr(t, s.Tag("Bad", a.Digest), nil, "not valid")
	if err := s.Untag("app/a:1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Untag("app/a:1"), ErrNotFound)
	if _, err := s.Image(b.Digest); err != nil {
		t.Errorf("Untag removed the image: %v", err)
	}
	if got := s.Names(a.Digest); !reflect.DeepEqual(got, []string{"app/a:latest"}) {
		t.Errorf("names of a = %v", got)
	}
}

func TestRemoveKeepsSharedBlobs(t *testing.T) {
	s := newStore(t)
	a, b, shared := twoImages(t, s)
	if err := s.Tag("alias:1", a.Digest); err != nil {
		t.Fatal(err)
	}
	// Removing one name of two keeps the image.
	if err := s.Remove("app/a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(a.Digest); err != nil {
		t.Fatalf("image gone with one of its two names: %v", err)
	}
	// Removing the last name removes the image and its own blobs, not the shared one.
	if err := s.Remove("alias:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(a.Digest); err == nil {
		t.Fatal("image still there")
	}
	for _, d := range []Digest{a.Digest, a.ConfigDigest, a.Layers[1].Digest} {
		if s.Has(d) {
			t.Errorf("blob %s of the removed image is still there", d)
		}
	}
	if !s.Has(shared) {
		t.Fatal("the shared base layer was removed")
	}
	if got := readLayer(t, s, b.Layers[0]); got["base"] != "shared base" {
		t.Error("the other image's base is damaged")
	}
	if err := s.Check(context.Background()); err != nil {
		t.Error(err)
	}
	// By digest, with names: all go.
	if err := s.Remove(b.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("app/b:1"); err == nil {
		t.Error("name of a removed image resolves")
	}
	assertEmpty(t, s)
	wantErr(t, s.Remove("app/b:1"), ErrNotFound)
}

func TestGC(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, b, shared := twoImages(t, s)
	for _, n := range []string{"app/a:1", "app/b:1"} {
		if err := s.Untag(n); err != nil {
			t.Fatal(err)
		}
	}
	orphan := []byte("a blob no image references")
	if err := s.Put(ctx, strings.NewReader(string(orphan)), FromBytes(orphan), -1); err != nil {
		t.Fatal(err)
	}
	// b is kept by the caller (a depot runs it); a is neither named nor kept.
	removed, freed, err := s.GC(ctx, []Digest{b.Digest})
	if err != nil {
		t.Fatal(err)
	}
	if removed != 4 { // a's manifest, config and own layer, and the orphan
		t.Errorf("GC removed %d blobs, want 4", removed)
	}
	wantFreed := int64(len(orphan)) + a.Size - a.Layers[0].Size
	if freed != wantFreed {
		t.Errorf("GC freed %d bytes, want %d", freed, wantFreed)
	}
	if _, err := s.Image(a.Digest); err == nil {
		t.Error("unkept image survived")
	}
	if !s.Has(shared) || !s.Has(b.Layers[1].Digest) || s.Has(FromBytes(orphan)) {
		t.Error("GC removed the wrong blobs")
	}
	// Named images survive a GC that keeps nothing.
	if err := s.Tag("keep:1", b.Digest); err != nil {
		t.Fatal(err)
	}
	if removed, _, err := s.GC(ctx, nil); err != nil || removed != 0 {
		t.Errorf("GC of a named image removed %d, %v", removed, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
}

// lyingPeer serves another store's blobs, with one blob's bytes altered.
type lyingPeer struct {
	s   *Store
	lie Digest
}

func (p lyingPeer) OpenBlob(ctx context.Context, d Digest) (io.ReadCloser, error) {
	rc, err := p.s.OpenBlob(ctx, d)
	if err != nil || d != p.lie {
		return rc, err
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	b[0] ^= 1
	return io.NopCloser(strings.NewReader(string(b))), nil
}

func TestFetchFromPeer(t *testing.T) {
	ctx := context.Background()
	peer := newStore(t)
	src, err := peer.Import(ctx, writeLayout(t, []v1.Image{webImage(t)}, nil), "web:1")
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	img, err := s.Fetch(ctx, src.Digest, peer)
	if err != nil {
		t.Fatal(err)
	}
	checkWeb(t, s, img)
	if !reflect.DeepEqual(img, src) {
		t.Errorf("fetched %+v\nwant %+v", img, src)
	}

	for _, lie := range []Digest{src.Layers[1].Digest, src.ConfigDigest, src.Digest} {
		s := newStore(t)
		_, err := s.Fetch(ctx, src.Digest, lyingPeer{peer, lie})
		wantErr(t, err, ErrDigestMismatch, lie.String())
		if s.Has(lie) {
			t.Errorf("lying blob %s stored", lie)
		}
		if imgs, _ := s.Images(); len(imgs) != 0 {
			t.Errorf("image recorded from a lying peer")
		}
	}
	s = newStore(t)
	_, err = s.Fetch(ctx, src.Digest, peer, WithPlatform(Platform{OS: "linux", Arch: otherArch()}))
	wantErr(t, err, ErrPlatform)
	_, err = s.Fetch(ctx, FromBytes([]byte("none")), peer)
	wantErr(t, err, ErrNotFound)
	assertEmpty(t, s)
}

func TestLayerReaderChecksDiffID(t *testing.T) {
	s := newStore(t)
	img, err := s.Import(context.Background(), writeLayout(t, []v1.Image{webImage(t)}, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	l := img.Layers[0]
	l.DiffID = FromBytes([]byte("not this layer"))
	// A reader that reads to the end gets the mismatch from Read...
	rc, err := s.LayerReader(l)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	wantErr(t, err, ErrDigestMismatch, l.DiffID.String(), img.Layers[0].DiffID.String())
	rc.Close()
	// ...and one that stops at the tar's end marker gets it from Close.
	rc, err = s.LayerReader(l)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	io.ReadFull(rc, buf)
	wantErr(t, rc.Close(), ErrDigestMismatch, l.DiffID.String())
}
