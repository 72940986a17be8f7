package depot

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseDigest(t *testing.T) {
	good := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in, err string
	}{
		{good, ""},
		{"", "empty"},
		{strings.Repeat("ab", 32), "no algorithm"},
		{"sha512:" + strings.Repeat("ab", 64), `algorithm "sha512" is not supported`},
		{"sha256:abc", "has 3 hex digits"},
		{"sha256:" + strings.Repeat("AB", 32), "not a lowercase hex digit"},
		{"sha256:" + strings.Repeat("g", 64), "not a lowercase hex digit"},
		{"sha256:../../" + strings.Repeat("a", 58), "not a lowercase hex digit"},
	}
	for _, tt := range tests {
		d, err := ParseDigest(tt.in)
		if tt.err == "" {
			if err != nil || string(d) != tt.in {
				t.Errorf("ParseDigest(%q) = %q, %v; want it back", tt.in, d, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseDigest(%q) error = %v, want one mentioning %q", tt.in, err, tt.err)
		}
	}
	if d := FromBytes([]byte("x")); d.Short() != d.Hex()[:12] || !d.valid() {
		t.Errorf("FromBytes gave %q", d)
	}
}

func TestPutAndRead(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	body := []byte("a layer of bytes")
	d := FromBytes(body)
	if s.Has(d) {
		t.Fatal("empty store has a blob")
	}
	if err := s.Put(ctx, bytes.NewReader(body), d, int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if !s.Has(d) {
		t.Fatal("Has is false after Put")
	}
	if n, err := s.Size(d); err != nil || n != int64(len(body)) {
		t.Errorf("Size = %d, %v; want %d", n, err, len(body))
	}
	rc, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Errorf("Open gave %q", got)
	}
	p, err := s.Path(d)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("blob file %s: %v, mode %v; want read-only", p, err, fi.Mode())
	}
	if err := s.Verify(d); err != nil {
		t.Errorf("Verify: %v", err)
	}
	// Unknown size works too, and a second Put of a present blob reads nothing.
	other := []byte("another")
	if err := s.Put(ctx, bytes.NewReader(other), FromBytes(other), -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, failingReader{}, d, int64(len(body))); err != nil {
		t.Errorf("Put of a present blob read its reader: %v", err)
	}
	missing := FromBytes([]byte("missing"))
	for name, err := range map[string]error{
		"Size": func() error { _, err := s.Size(missing); return err }(),
		"Open": func() error { _, err := s.Open(missing); return err }(),
		"Path": func() error { _, err := s.Path(missing); return err }(),
	} {
		wantErr(t, err, ErrNotFound, missing.String())
		_ = name
	}
	assertNoTmp(t, s)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestPutRefusesLies(t *testing.T) {
	ctx := context.Background()
	body := []byte("the real content of a layer")
	d := FromBytes(body)
	lie := append([]byte(nil), body...)
	lie[3] ^= 1
	tests := []struct {
		name   string
		r      io.Reader
		size   int64
		target error
		parts  []string
	}{
		{"digest lies", bytes.NewReader(lie), int64(len(lie)), ErrDigestMismatch, []string{d.String(), FromBytes(lie).String(), "nothing stored"}},
		{"digest lies, size unknown", bytes.NewReader(lie), -1, ErrDigestMismatch, []string{d.String(), FromBytes(lie).String()}},
		{"truncated", bytes.NewReader(body[:10]), int64(len(body)), ErrSizeMismatch, []string{d.String(), "truncated", "10 of 27 bytes"}},
		{"too long", io.MultiReader(bytes.NewReader(body), strings.NewReader("more")), int64(len(body)), ErrSizeMismatch, []string{"longer than its announced size"}},
		{"read fails", io.MultiReader(bytes.NewReader(body[:5]), failingReader{}), int64(len(body)), io.ErrUnexpectedEOF, []string{"after 5 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			wantErr(t, s.Put(ctx, tt.r, d, tt.size), tt.target, tt.parts...)
			if s.Has(d) {
				t.Error("the refused blob is in the store")
			}
			assertEmpty(t, s)
		})
	}
	s := newStore(t)
	wantErr(t, s.Put(ctx, bytes.NewReader(body), "sha256:nope", 3), nil, "hex digits")
	wantErr(t, s.Put(ctx, bytes.NewReader(body), d, -2), nil, "size -2")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	wantErr(t, s.Put(cctx, bytes.NewReader(body), d, int64(len(body))), context.Canceled)
	assertEmpty(t, s)
}

// countingReader counts the readers that were read to their end.
type countingReader struct {
	r    io.Reader
	done *atomic.Int32
	gate chan struct{}
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.gate != nil {
		<-c.gate // hold the first writer so the others find it in flight
		c.gate = nil
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.done.Add(1)
	}
	return n, err
}

func TestPutConcurrentWritesOnce(t *testing.T) {
	s := newStore(t)
	body := bytes.Repeat([]byte("0123456789"), 100_000)
	d := FromBytes(body)
	var done atomic.Int32
	gate := make(chan struct{})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(context.Background(), &countingReader{r: bytes.NewReader(body), done: &done, gate: gate}, d, int64(len(body)))
		}()
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := done.Load(); got != 1 {
		t.Errorf("%d writers read the blob to its end, want exactly 1", got)
	}
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
	if b := blobs(t, s); len(b) != 1 {
		t.Errorf("blobs %v, want one", b)
	}
	assertNoTmp(t, s)
}

func TestVerifyFindsCorruption(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	img, err := s.ImportWasm(ctx, writeWasm(t, []byte("\x00asm\x01\x00\x00\x00")), "rot:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check of a sound store: %v", err)
	}
	p, _ := s.Path(img.Layers[0].Digest)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("\x00asm\x01\x00\x00\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Verify(img.Layers[0].Digest), ErrDigestMismatch, "is corrupt", img.Layers[0].Digest.String())
	wantErr(t, s.Check(ctx), ErrDigestMismatch, img.Layers[0].Digest.String())
	os.Remove(p)
	wantErr(t, s.Check(ctx), ErrNotFound, "layer "+img.Layers[0].Digest.String())
}

func TestReopenKeepsImagesAndNames(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	img, err := s.ImportWasm(ctx, writeWasm(t, []byte("\x00asm\x01\x00\x00\x00")), "mod:1")
	if err != nil {
		t.Fatal(err)
	}
	// A crashed write leaves a temporary file; Open removes it.
	if err := os.WriteFile(s.tmpDir()+"/blob-123", []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s2.Resolve("mod:1"); err != nil || d != img.Digest {
		t.Errorf("Resolve after reopen = %s, %v; want %s", d, err, img.Digest)
	}
	got, err := s2.Image(img.Digest)
	if err != nil || got.Kind != KindWasm {
		t.Errorf("Image after reopen = %+v, %v", got, err)
	}
	assertNoTmp(t, s2)

	if err := os.WriteFile(s.namesPath(), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(s.Dir())
	wantErr(t, err, nil, "names.json", "not a names file")
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") gave no error")
	}
}
