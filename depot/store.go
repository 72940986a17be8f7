package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Errors callers tell apart with errors.Is. The errors returned wrap them with the
// blob, image or name concerned.
var (
	// ErrNotFound: no blob, image or name by that reference in the store.
	ErrNotFound = errors.New("not found")
	// ErrDigestMismatch: bytes do not hash to the digest they were sent as. From a peer,
	// this is a lie (or a corrupt store) worth reporting; nothing was stored.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: a blob is shorter (truncated) or longer than its announced size,
	// or larger than the store accepts for its kind; nothing was stored.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrPlatform: the image is for another OS or architecture than asked.
	ErrPlatform = errors.New("platform mismatch")
	// ErrInvalid: the input is not an image the store can keep (a malformed manifest or
	// config, an unknown media type, a file that is neither an image layout nor a
	// docker save tarball, …).
	ErrInvalid = errors.New("invalid image")
)

// Store is the depot store in one directory. See the package documentation for its
// layout and its promises.
type Store struct {
	dir string

	// gc is held shared by everything that adds content (so a blob about to be
	// referenced by a new image is not collected under it) and exclusively by GC and
	// Remove, which delete.
	gc sync.RWMutex

	mu       sync.Mutex
	names    map[string]Digest  // name -> image
	images   map[Digest]record  // recorded images
	parsed   map[Digest]*Image  // parsed images; immutable once built
	inflight map[Digest]*flight // blobs being written now

	now func() time.Time
}

// record is what images/<hex>.json holds: what the manifest cannot say.
type record struct {
	Added  time.Time `json:"added"`
	Source string    `json:"source,omitempty"`
}

type namesFile struct {
	Names map[string]Digest `json:"names"`
}

// flight is one blob being written; others wanting the same blob wait on done.
type flight struct{ done chan struct{} }

// Open opens the store in dir, creating it if need be. Files left in tmp/ by a crash are
// removed: the store assumes one process owns dir.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("depot store directory is empty: want a path such as <data-dir>/depots")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("depot store %s: %w", dir, err)
	}
	s := &Store{
		dir:      abs,
		names:    map[string]Digest{},
		images:   map[Digest]record{},
		parsed:   map[Digest]*Image{},
		inflight: map[Digest]*flight{},
		now:      time.Now,
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("depot store: %w", err)
	}
	for _, d := range []string{s.blobDir(), s.imageDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("depot store: %w", err)
		}
	}
	if err := s.cleanTmp(); err != nil {
		return nil, err
	}
	if err := s.loadNames(); err != nil {
		return nil, err
	}
	if err := s.loadImages(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) blobDir() string  { return filepath.Join(s.dir, "blobs", "sha256") }
func (s *Store) imageDir() string { return filepath.Join(s.dir, "images") }
func (s *Store) tmpDir() string   { return filepath.Join(s.dir, "tmp") }
func (s *Store) namesPath() string {
	return filepath.Join(s.dir, "names.json")
}
func (s *Store) blobPath(d Digest) string { return filepath.Join(s.blobDir(), d.Hex()) }

func (s *Store) cleanTmp() error {
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return fmt.Errorf("depot store: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return fmt.Errorf("depot store: removing a leftover temporary file: %w", err)
		}
	}
	return nil
}

func (s *Store) loadNames() error {
	b, err := os.ReadFile(s.namesPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("depot store: %w", err)
	}
	var nf namesFile
	if err := json.Unmarshal(b, &nf); err != nil {
		return fmt.Errorf("depot store: %s is not a names file: %w", s.namesPath(), err)
	}
	for n, d := range nf.Names {
		if err := checkName(n); err != nil {
			return fmt.Errorf("depot store: %s: %w", s.namesPath(), err)
		}
		if _, err := ParseDigest(string(d)); err != nil {
			return fmt.Errorf("depot store: %s: name %q: %w", s.namesPath(), n, err)
		}
		s.names[n] = d
	}
	return nil
}

func (s *Store) loadImages() error {
	entries, err := os.ReadDir(s.imageDir())
	if err != nil {
		return fmt.Errorf("depot store: %w", err)
	}
	for _, e := range entries {
		hexPart, ok := strings.CutSuffix(e.Name(), ".json")
		d := Digest(digestPrefix + hexPart)
		if !ok || !d.valid() || !e.Type().IsRegular() {
			return fmt.Errorf("depot store: %s does not belong in %s (want <64 hex>.json files)", e.Name(), s.imageDir())
		}
		b, err := os.ReadFile(filepath.Join(s.imageDir(), e.Name()))
		if err != nil {
			return fmt.Errorf("depot store: %w", err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("depot store: image record %s: %w", e.Name(), err)
		}
		s.images[d] = r
	}
	// A name pointing at an image that is gone (a crash between the two writes of
	// Remove) is dropped rather than left dangling.
	for n, d := range s.names {
		if _, ok := s.images[d]; !ok {
			delete(s.names, n)
		}
	}
	return nil
}

// Has reports whether the blob d is in the store.
func (s *Store) Has(d Digest) bool {
	if !d.valid() {
		return false
	}
	fi, err := os.Stat(s.blobPath(d))
	return err == nil && fi.Mode().IsRegular()
}

// Size returns the size in bytes of the blob d.
func (s *Store) Size(d Digest) (int64, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Open returns the bytes of the blob d, to serve them to a peer. The peer checks them
// against d as it receives them.
func (s *Store) Open(d Digest) (io.ReadCloser, error) {
	if _, err := ParseDigest(string(d)); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return f, nil
}

// OpenBlob is Open with a context, so a Store is a BlobSource for another store.
func (s *Store) OpenBlob(ctx context.Context, d Digest) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Open(d)
}

// Path returns the file that holds the blob d, for drivers that need a path (a wasm
// runtime mapping a module, a tool reading a layer). The file must only be read: it is
// shared by every image that holds the blob.
func (s *Store) Path(d Digest) (string, error) {
	if _, err := s.Size(d); err != nil {
		return "", err
	}
	return s.blobPath(d), nil
}

// Put stores the blob read from r, which must be size bytes (-1: unknown) that hash to
// want. It is written to a temporary file, counted and hashed as it is written, and
// renamed into place only if both match: otherwise the error names the blob, and for a
// digest mismatch both digests, and nothing is stored. If the blob is already in the
// store, or another Put of it succeeds meanwhile, Put returns nil without reading r.
func (s *Store) Put(ctx context.Context, r io.Reader, want Digest, size int64) error {
	if _, err := ParseDigest(string(want)); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("blob %s: size %d: want the size in bytes, or -1 if unknown", want, size)
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	return s.ensure(ctx, want, size, -1, func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(r), nil
	})
}

// ensure makes sure blob d is in the store, calling open for its bytes only if it is
// missing and no one else is writing it. limit (when size is unknown, -1 for none)
// bounds what is read. The caller holds s.gc shared.
func (s *Store) ensure(ctx context.Context, d Digest, size, limit int64, open func(context.Context) (io.ReadCloser, error)) error {
	for {
		if s.Has(d) {
			return nil
		}
		s.mu.Lock()
		if f, ok := s.inflight[d]; ok {
			s.mu.Unlock()
			select {
			case <-f.done:
				continue // written, or failed: look again
			case <-ctx.Done():
				return fmt.Errorf("blob %s: %w", d, ctx.Err())
			}
		}
		f := &flight{done: make(chan struct{})}
		s.inflight[d] = f
		s.mu.Unlock()

		err := s.fill(ctx, d, size, limit, open)

		s.mu.Lock()
		delete(s.inflight, d)
		close(f.done)
		s.mu.Unlock()
		return err
	}
}

func (s *Store) fill(ctx context.Context, d Digest, size, limit int64, open func(context.Context) (io.ReadCloser, error)) error {
	if s.Has(d) { // written by another between our look and our claim
		return nil
	}
	rc, err := open(ctx)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	defer rc.Close()
	return s.write(ctx, rc, d, size, limit)
}

// write copies r into a temporary file and renames it to want's name if, and only if,
// the bytes are the announced size and hash to want.
func (s *Store) write(ctx context.Context, r io.Reader, want Digest, size, limit int64) (err error) {
	tmp, err := os.CreateTemp(s.tmpDir(), "blob-")
	if err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	max := limit
	if size >= 0 {
		max = size
	}
	src := io.Reader(ctxReader{ctx, r})
	if max >= 0 {
		src = io.LimitReader(src, max+1) // one byte more shows a blob that is too long
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("blob %s: %w", want, ctx.Err())
		}
		// A source that checks digests itself (a registry client) reports a mismatch on
		// its last read; when every announced byte arrived, name the mismatch in our words.
		if got := digestOf(h); size >= 0 && n == size && got != want {
			return mismatch(want, got, n)
		}
		return fmt.Errorf("blob %s: reading after %d bytes: %w", want, n, err)
	}
	switch {
	case size >= 0 && n > size:
		return fmt.Errorf("blob %s is longer than its announced size of %d bytes: %w", want, size, ErrSizeMismatch)
	case size >= 0 && n < size:
		return fmt.Errorf("blob %s is truncated: %d of %d bytes: %w", want, n, size, ErrSizeMismatch)
	case max >= 0 && n > max:
		return fmt.Errorf("blob %s is larger than %d bytes, the most the store accepts for it: %w", want, max, ErrSizeMismatch)
	}
	if got := digestOf(h); got != want {
		return mismatch(want, got, n)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	if err := os.Rename(tmp.Name(), s.blobPath(want)); err != nil {
		return fmt.Errorf("blob %s: %w", want, err)
	}
	return syncDir(s.blobDir())
}

func mismatch(want, got Digest, n int64) error {
	return fmt.Errorf("blob %s: its %d bytes hash to %s: %w; nothing stored", want, n, got, ErrDigestMismatch)
}

// putBytes stores b as the blob want (after checking it hashes to want).
func (s *Store) putBytes(ctx context.Context, b []byte, want Digest) error {
	return s.ensure(ctx, want, int64(len(b)), -1, func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// readBlob reads a whole stored blob of at most limit bytes.
func (s *Store) readBlob(d Digest, limit int64) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes: %w", d, limit, ErrSizeMismatch)
	}
	return b, nil
}

// Verify re-hashes the stored blob d and reports whether its bytes still hash to its
// name (a disk that rots, a hand that edits). It changes nothing.
func (s *Store) Verify(d Digest) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if got := digestOf(h); got != d {
		return fmt.Errorf("stored blob %s is corrupt: its %d bytes hash to %s: %w", d, n, got, ErrDigestMismatch)
	}
	return nil
}

// writeFileAtomic replaces path with data: readers see the old file or the new one,
// never a part.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(s.tmpDir(), "meta-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
