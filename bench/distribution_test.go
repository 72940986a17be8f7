package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/qnettest"
)

// countingHandler counts the bytes an origin serves.
type countingHandler struct {
	h http.Handler
	n atomic.Int64
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.h.ServeHTTP(countingWriter{w, &c.n}, r)
}

// BenchmarkImageToFourNodes brings a 200 MB image to 4 nodes two ways and reports, for
// each, the time until all 4 hold it and the bytes its origin served, as a multiple of
// the image's size: from peers through the mesh (the image on a fifth node), and with
// each node pulling it from one registry. Target: the origin serves at most 1.5× the
// image for 4 nodes through peers (4× from a registry).
func BenchmarkImageToFourNodes(b *testing.B) {
	const size = 200 << 20
	src := b.TempDir()
	f, err := os.Create(filepath.Join(src, "data"))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for range size >> 20 {
		rand.Read(buf)
		f.Write(buf)
	}
	f.Close()
	ctx := context.Background()
	for b.Loop() {
		nodes := qnettest.StartNetwork(b, 5, qnettest.Options{})
		qnettest.WaitFor(b, 30*time.Second, "gossip to see every node", func() bool {
			for _, n := range nodes {
				if len(n.Gossip().Members()) != 5 {
					return false
				}
			}
			return true
		})
		origin, fetchers := nodes[0], nodes[1:]
		img, err := origin.Depots().Build(ctx, src, "big:1", depot.BuildOptions{Entrypoint: []string{"/bin/true"}})
		if err != nil {
			b.Fatal(err)
		}
		imgSize := float64(img.Size)

		// Peers.
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, len(fetchers))
		for _, n := range fetchers {
			wg.Go(func() {
				if _, err := n.Depots().Fetch(ctx, img.Digest, n.Swarm()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		peerTime := time.Since(start)
		peerServed := float64(origin.Swarm().Served())

		// Registry: the same image pushed to one registry, pulled by each node.
		reg := &countingHandler{h: registry.New()}
		srv := httptest.NewServer(reg)
		lay := filepath.Join(b.TempDir(), "layout.tar")
		out, err := os.Create(lay)
		if err != nil {
			b.Fatal(err)
		}
		if err := origin.Depots().Export(ctx, img.Digest, "big:1", out); err != nil {
			b.Fatal(err)
		}
		out.Close()
		ref := strings.TrimPrefix(srv.URL, "http://") + "/big:1"
		if err := pushLayoutTar(lay, ref); err != nil {
			b.Fatal(err)
		}
		reg.n.Store(0)
		start = time.Now()
		errs = make(chan error, len(fetchers))
		for i, n := range fetchers {
			wg.Go(func() {
				store, err := depot.Open(filepath.Join(b.TempDir(), fmt.Sprintf("pull%d", i)))
				if err == nil {
					_, err = store.Pull(ctx, ref, depot.WithInsecure())
				}
				if err != nil {
					errs <- err
				}
				_ = n
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		regTime := time.Since(start)
		regServed := float64(reg.n.Load())
		srv.Close()

		b.ReportMetric(peerTime.Seconds(), "peers-s")
		b.ReportMetric(peerServed/imgSize, "peers-origin-x")
		b.ReportMetric(regTime.Seconds(), "registry-s")
		b.ReportMetric(regServed/imgSize, "registry-origin-x")
		b.ReportMetric(imgSize/(1<<20), "image-MiB")
	}
}

// pushLayoutTar pushes the image of an OCI layout tar to a registry reference.
func pushLayoutTar(tarPath, ref string) error {
	dir, err := os.MkdirTemp("", "layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := untarTo(tarPath, dir); err != nil {
		return err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img)
}
