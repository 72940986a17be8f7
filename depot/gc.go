package depot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Remove removes ref. A name is untagged, and the image goes only when that was its
// last name; a digest removes the image and every name it has. The image's blobs that
// no other image references are deleted. The store does not know which images run:
// the agent must not remove (or must keep, in GC) an image a depot still uses.
func (s *Store) Remove(ref string) error {
	s.gc.Lock()
	defer s.gc.Unlock()
	d, matched, err := s.resolve(ref)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	s.mu.Lock()
	if matched != "" {
		delete(s.names, matched)
		for _, other := range s.names {
			if other == d { // still named: only the name goes
				err := s.saveNamesLocked()
				s.mu.Unlock()
				return err
			}
		}
	}
	for n, nd := range s.names {
		if nd == d {
			delete(s.names, n)
		}
	}
	if err := s.saveNamesLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	img := s.parsed[d]
	if err := s.unrecordLocked(d); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()

	if img == nil {
		if img, err = s.loadImage(d); err != nil {
			// The record is gone; blobs it cannot name are left to GC.
			return nil
		}
	}
	live, err := s.reachable(context.Background())
	if err != nil {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	for _, b := range img.blobs() {
		if !live[b] {
			if err := os.Remove(s.blobPath(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", ref, err)
			}
		}
	}
	return nil
}

// reachable returns the blobs referenced by the recorded images. The caller holds s.gc
// exclusively. An image whose manifest cannot be read keeps what can be read of it.
func (s *Store) reachable(ctx context.Context) (map[Digest]bool, error) {
	s.mu.Lock()
	ds := make([]Digest, 0, len(s.images))
	for d := range s.images {
		ds = append(ds, d)
	}
	s.mu.Unlock()
	live := map[Digest]bool{}
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		live[d] = true
		img, err := s.Image(d)
		if err != nil {
			// Keep the config and layers the manifest names, if it can be parsed at all.
			if mb, rerr := s.readBlob(d, MaxManifestSize); rerr == nil {
				if m, perr := parseManifest(mb); perr == nil {
					live[Digest(m.Config.Digest.String())] = true
					for _, l := range m.Layers {
						live[Digest(l.Digest.String())] = true
					}
				}
			}
			continue
		}
		for _, b := range img.blobs() {
			live[b] = true
		}
	}
	return live, nil
}

// GC removes the images that are neither named nor in keep (the images of the depots
// this node runs), and then every blob no remaining image references, and the files
// that crashed writes left in tmp/. It returns how many blobs it removed and their
// bytes. It waits for imports, pulls, builds and fetches under way, and they for it.
func (s *Store) GC(ctx context.Context, keep []Digest) (removed int, freed int64, err error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	kept := map[Digest]bool{}
	for _, d := range keep {
		kept[d] = true
	}
	s.mu.Lock()
	for _, d := range s.names {
		kept[d] = true
	}
	for d := range s.images {
		if !kept[d] {
			if err := s.unrecordLocked(d); err != nil {
				s.mu.Unlock()
				return 0, 0, fmt.Errorf("gc: %w", err)
			}
		}
	}
	s.mu.Unlock()

	live, err := s.reachable(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("gc: %w", err)
	}
	entries, err := os.ReadDir(s.blobDir())
	if err != nil {
		return 0, 0, fmt.Errorf("gc: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, freed, fmt.Errorf("gc: %w", err)
		}
		d := Digest(digestPrefix + e.Name())
		if d.valid() && live[d] {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone already
		}
		if err := os.RemoveAll(filepath.Join(s.blobDir(), e.Name())); err != nil {
			return removed, freed, fmt.Errorf("gc: %w", err)
		}
		removed++
		freed += info.Size()
	}
	if err := s.cleanTmp(); err != nil {
		return removed, freed, fmt.Errorf("gc: %w", err)
	}
	return removed, freed, nil
}

// Check verifies the whole store, as fsck does: every blob is re-hashed against its
// name, and every image's manifest, config and layers must be present and parse. It
// changes nothing and returns every problem found, joined (nil if none).
func (s *Store) Check(ctx context.Context) error {
	s.gc.RLock() // GC must not delete what is being checked
	defer s.gc.RUnlock()
	entries, err := os.ReadDir(s.blobDir())
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	var problems []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := Digest(digestPrefix + e.Name())
		if !d.valid() || !e.Type().IsRegular() {
			problems = append(problems, fmt.Errorf("%s does not belong in %s", e.Name(), s.blobDir()))
			continue
		}
		if err := s.Verify(d); err != nil {
			problems = append(problems, err)
		}
	}
	s.mu.Lock()
	ds := make([]Digest, 0, len(s.images))
	for d := range s.images {
		ds = append(ds, d)
	}
	s.mu.Unlock()
	for _, d := range ds {
		img, err := s.loadImage(d)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, l := range img.Layers {
			if !s.Has(l.Digest) {
				problems = append(problems, fmt.Errorf("image %s: layer %s: %w", d, l.Digest, ErrNotFound))
			}
		}
	}
	return errors.Join(problems...)
}
