package depot

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a zstd layer may ask of its reader (the zstd
// default for decoders is 64 MiB windows; layers are compressed with far less).
const maxZstdWindow = 128 << 20

// LayerReader returns the uncompressed tar stream of layer l, whatever its compression
// (gzip, zstd or none, told by the bytes themselves, since some tools label layers
// wrongly). The stream is hashed as it is read and, when l has a DiffID, the read that
// reaches the end returns an error wrapping ErrDigestMismatch instead of io.EOF if the
// tar does not hash to it: a caller that unpacks must treat any error as fatal. A tar
// reader stops at the archive's end marker, before the end of the stream; Close reads
// the rest (up to 1 MiB of padding) and returns the mismatch then, so check the error
// of Close too.
func (s *Store) LayerReader(l Layer) (io.ReadCloser, error) {
	if l.MediaType == MediaTypeWasmLayer {
		return nil, fmt.Errorf("layer %s is a WebAssembly module (%s), not a filesystem layer: read it with Open or Path", l.Digest, MediaTypeWasmLayer)
	}
	f, err := s.Open(l.Digest)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(4)
	lr := &layerReader{layer: l, closers: []func() error{f.Close}}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: gzip: %w", l.Digest, err)
		}
		lr.r = zr
		lr.closers = append(lr.closers, zr.Close)
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: zstd: %w", l.Digest, err)
		}
		lr.r = zr
		lr.closers = append(lr.closers, func() error { zr.Close(); return nil })
	default:
		lr.r = br
	}
	if l.DiffID != "" {
		lr.h = sha256.New()
	}
	return lr, nil
}

type layerReader struct {
	layer   Layer
	r       io.Reader
	h       hash.Hash
	n       int64
	closers []func() error
	err     error
}

func (lr *layerReader) Read(p []byte) (int, error) {
	if lr.err != nil {
		return 0, lr.err
	}
	n, err := lr.r.Read(p)
	lr.n += int64(n)
	if lr.h != nil {
		lr.h.Write(p[:n])
	}
	if errors.Is(err, io.EOF) {
		lr.err = io.EOF
		if lr.h != nil {
			if got := digestOf(lr.h); got != lr.layer.DiffID {
				lr.err = fmt.Errorf("layer %s: its uncompressed %d bytes hash to %s, but the image config says %s: %w", lr.layer.Digest, lr.n, got, lr.layer.DiffID, ErrDigestMismatch)
				return n, lr.err
			}
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("layer %s: %w", lr.layer.Digest, err)
		lr.err = err
	}
	return n, err
}

// maxTail is how much Close reads past where the caller stopped to reach the end of
// the stream: the end marker and padding of a tar are at most a few records.
const maxTail = 1 << 20

func (lr *layerReader) Close() error {
	var errs []error
	if lr.err == nil && lr.h != nil {
		// Reaching the end runs the check; a mismatch comes back as the copy's error.
		if _, err := io.Copy(io.Discard, io.LimitReader(readerFunc(lr.Read), maxTail)); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(lr.closers) - 1; i >= 0; i-- {
		errs = append(errs, lr.closers[i]())
	}
	return errors.Join(errs...)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
