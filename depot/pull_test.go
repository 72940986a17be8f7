package depot

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func TestPull(t *testing.T) {
	reg := newRegistry(t)
	src := webImage(t)
	ref := reg.host + "/team/web:1.2"
	push(t, ref, src)
	ctx := context.Background()
	s := newStore(t)
	img, err := s.Pull(ctx, ref, WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != digestOfImage(t, src) {
		t.Errorf("digest %s, want the registry's %s", img.Digest, digestOfImage(t, src))
	}
	checkWeb(t, s, img)
	if d, err := s.Resolve(ref); err != nil || d != img.Digest {
		t.Errorf("Resolve(%s) = %s, %v", ref, d, err)
	}
	sums, _ := s.Images()
	if len(sums) != 1 || sums[0].Source != "pull "+ref {
		t.Errorf("Images() = %+v", sums)
	}

	// A second pull fetches no blob again; a pull by digest gives no new name.
	before := reg.totalGets()
	again, err := s.Pull(ctx, reg.host+"/team/web@"+img.Digest.String())
	if err != nil || again.Digest != img.Digest {
		t.Fatalf("pull by digest = %v, %v", again, err)
	}
	if got := reg.totalGets(); got != before {
		t.Errorf("second pull fetched %d blobs again", got-before)
	}
	if names := s.Names(img.Digest); len(names) != 1 {
		t.Errorf("names %v, want only %s", names, ref)
	}

	_, err = s.Pull(ctx, reg.host+"/team/missing:1")
	wantErr(t, err, nil, "pull "+reg.host+"/team/missing:1", "UNKNOWN")
	_, err = s.Pull(ctx, "Not A Ref")
	wantErr(t, err, nil, "not an image reference")
}

func TestPullIndexChoosesPlatform(t *testing.T) {
	reg := newRegistry(t)
	here := imageOf(t, DefaultPlatform(), true, layerOf(t, types.OCILayer, file{name: "here", body: "1"}))
	there := imageOf(t, Platform{OS: "linux", Arch: otherArch()}, true, layerOf(t, types.OCILayer, file{name: "there", body: "2"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: here, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
		mutate.IndexAddendum{Add: there, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch()}}},
	)
	ref := reg.host + "/multi:1"
	r, _ := name.ParseReference(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	img, err := newStore(t).Pull(ctx, ref)
	if err != nil || img.Digest != digestOfImage(t, here) {
		t.Fatalf("Pull = %v, %v; want this node's image", img, err)
	}
	img, err = newStore(t).Pull(ctx, ref, WithPlatform(Platform{OS: "linux", Arch: otherArch()}))
	if err != nil || img.Digest != digestOfImage(t, there) {
		t.Fatalf("Pull WithPlatform = %v, %v", img, err)
	}
	s := newStore(t)
	_, err = s.Pull(ctx, ref, WithPlatform(Platform{OS: "linux", Arch: "riscv64"}))
	wantErr(t, err, ErrPlatform, "no image for linux/riscv64")
	assertEmpty(t, s)
}

func TestPullRefusesOtherPlatform(t *testing.T) {
	reg := newRegistry(t)
	there := imageOf(t, Platform{OS: "linux", Arch: otherArch()}, true, layerOf(t, types.OCILayer, file{name: "there", body: "2"}))
	ref := reg.host + "/there:1"
	push(t, ref, there)
	s := newStore(t)
	_, err := s.Pull(context.Background(), ref)
	wantErr(t, err, ErrPlatform, "is for linux/"+otherArch(), "not "+DefaultPlatform().String())
	assertEmpty(t, s)
	layers, _ := there.Layers()
	ld, _ := layers[0].Digest()
	if n := reg.blobGets(ld.String()); n != 0 {
		t.Errorf("the layer was downloaded %d times before the platform was checked", n)
	}
}

func TestPullRefusesLyingRegistry(t *testing.T) {
	reg := newRegistry(t)
	src := webImage(t)
	ref := reg.host + "/web:1"
	push(t, ref, src)
	layers, _ := src.Layers()
	ld, _ := layers[1].Digest()
	reg.mu.Lock()
	reg.lie[ld.String()] = true
	reg.mu.Unlock()

	s := newStore(t)
	_, err := s.Pull(context.Background(), ref)
	wantErr(t, err, ErrDigestMismatch, ld.String(), "hash to sha256:")
	if s.Has(Digest(ld.String())) {
		t.Error("the lying layer is stored")
	}
	if imgs, _ := s.Images(); len(imgs) != 0 {
		t.Errorf("an image was recorded: %+v", imgs)
	}
	assertNoTmp(t, s)

	// The same image from an honest registry then completes.
	reg.mu.Lock()
	reg.lie[ld.String()] = false
	reg.mu.Unlock()
	if _, err := s.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
}

func TestPullSkipsBlobsItHas(t *testing.T) {
	reg := newRegistry(t)
	base := layerOf(t, types.OCILayer, file{name: "base", body: "shared"})
	a := imageOf(t, DefaultPlatform(), true, base, layerOf(t, types.OCILayer, file{name: "a", body: "a"}))
	b := imageOf(t, DefaultPlatform(), true, base, layerOf(t, types.OCILayer, file{name: "b", body: "b"}))
	push(t, reg.host+"/a:1", a)
	push(t, reg.host+"/b:1", b)
	s := newStore(t)
	if _, err := s.Pull(context.Background(), reg.host+"/a:1"); err != nil {
		t.Fatal(err)
	}
	bd, _ := base.Digest()
	if _, err := s.Pull(context.Background(), reg.host+"/b:1"); err != nil {
		t.Fatal(err)
	}
	if n := reg.blobGets(bd.String()); n != 1 {
		t.Errorf("the shared base layer was downloaded %d times, want once", n)
	}
}

func TestPullConcurrentFetchesEachBlobOnce(t *testing.T) {
	reg := newRegistry(t)
	src := webImage(t)
	ref := reg.host + "/web:1"
	push(t, ref, src)
	s := newStore(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Pull(context.Background(), ref)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	layers, _ := src.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if got := reg.blobGets(d.String()); got != 1 {
			t.Errorf("layer %s downloaded %d times, want once", d, got)
		}
	}
	if imgs, _ := s.Images(); len(imgs) != 1 {
		t.Errorf("%d images, want 1", len(imgs))
	}
	assertNoTmp(t, s)
}
