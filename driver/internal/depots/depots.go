// Package depots keeps the depots of one driver on this node: a runtime directory per
// depot, named by its ID, under the driver's own, and the handles of the depots the
// driver tracks. It holds the bookkeeping every driver needs to keep the promises of
// driver.Driver: one Start per ID at a time, on this driver or on another one (an agent
// that restarted) working in the same directory; a restart of an ended depot under its
// ID; Recover that re-adopts each depot once, whoever calls it when; and Remove that
// never deletes what still runs.
package depots

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/exit"
)

// Handle is what a Table needs of a driver's handle.
type Handle interface {
	driver.Handle
	// Exited reports whether the depot has ended (see exit.Latch).
	Exited() bool
}

// Depot is what the handles of every driver hold alike: the depot's spec and runtime
// directory, and the latch its exit is kept in. A handle embeds it, and so has ID, Spec,
// Wait and the methods of exit.Latch, and adds how it learns its depot's end and how it
// signals and stops the depot. It must not be copied.
type Depot struct {
	exit.Latch
	spec driver.Spec
	dir  string
}

// NewDepot returns the part of a handle for the depot of spec s, whose runtime directory
// is dir.
func NewDepot(s driver.Spec, dir string) *Depot { return &Depot{spec: s, dir: dir} }

// ID returns the depot's ID.
func (d *Depot) ID() string { return d.spec.ID }

// Spec returns the depot's spec.
func (d *Depot) Spec() driver.Spec { return d.spec }

// Dir returns the depot's runtime directory.
func (d *Depot) Dir() string { return d.dir }

// Wait blocks until the depot has ended or ctx ends.
func (d *Depot) Wait(ctx context.Context) (driver.ExitStatus, error) {
	return d.Latch.Wait(ctx, d.spec.ID)
}

// Table is the depots of one driver. It is safe for concurrent use.
type Table[H Handle] struct {
	root string
	drop func(H)

	mu       sync.Mutex
	handles  map[string]H
	starting map[string]bool // IDs in Start, which Recover and Remove leave alone
}

// New returns the table of the depots under root, which it creates if missing. drop,
// when not nil, is called for a handle the table lets go of (when its depot restarts,
// is removed, or was found by two Recovers at once), with the table locked: a handle
// that watches its depot stops doing so then, without concluding anything from it.
func New[H Handle](root string, drop func(H)) (*Table[H], error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Table[H]{root: root, drop: drop, handles: map[string]H{}, starting: map[string]bool{}}, nil
}

// Root returns the directory the depots' directories are in.
func (t *Table[H]) Root() string { return t.root }

// Dir returns the runtime directory of depot id.
func (t *Table[H]) Dir(id string) string { return filepath.Join(t.root, id) }

// ValidID reports whether id is a well-formed depot ID, and so names a directory inside
// the table's, never outside.
func ValidID(id string) bool {
	return (driver.Spec{ID: id, Command: "x"}).Validate() == nil
}

// Handles returns the handles the table tracks, in no order.
func (t *Table[H]) Handles() []H {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]H, 0, len(t.handles))
	for _, h := range t.handles {
		out = append(out, h)
	}
	return out
}

// Claim reserves id for a Start; every Claim that succeeds must be followed by Started.
// The depot's directory is the lock: Claim makes it, so one Start per ID wins, on this
// driver or on another one working in the same directory.
//
// A depot the table tracks is started again once it has ended: reset clears its
// directory first (keeping what outlives a restart, such as its logs) and the old handle
// is dropped. A directory the table does not track is an ended or running depot of an
// earlier agent: it is reset too when stale reports that nothing of the depot runs any
// more; with stale nil it is left alone. Either way reset runs with the table locked
// and gets the old handle, or the zero H for a directory the table does not track.
//
// Claim returns whether it made the directory, and wraps driver.ErrExists when the
// depot runs or has state the driver must Recover or Remove first.
func (t *Table[H]) Claim(id string, reset func(prev H) error, stale func() bool) (fresh bool, err error) {
	dir := t.Dir(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, tracked := t.handles[id]
	switch {
	case tracked && !prev.Exited():
		err = fs.ErrExist
	case tracked:
		// A restart of a depot that ended.
		if err = reset(prev); err == nil {
			t.forgetLocked(id)
		}
	default:
		err = os.Mkdir(dir, 0o700)
		fresh = err == nil
		if errors.Is(err, fs.ErrExist) && stale != nil && !t.starting[id] && stale() {
			var none H
			err = reset(none)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("%w: %q has runtime state in %s; Recover or Remove it first", driver.ErrExists, id, dir)
	}
	if err != nil {
		return false, fmt.Errorf("start depot %q: %w", id, err)
	}
	t.starting[id] = true
	return fresh, nil
}

// Started ends the Start of id that Claim began; the table tracks h from now on when
// err is nil. A failed Start must have cleaned up its depot's directory first: until
// Started, Recover and Remove leave it alone.
func (t *Table[H]) Started(id string, h H, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.starting, id)
	if err == nil {
		t.handles[id] = h
	}
}

// IDs returns the IDs of the depots whose directories are in the table's directory.
func (t *Table[H]) IDs() ([]string, error) {
	entries, err := os.ReadDir(t.root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Recover returns a handle for each depot directory: the one the table tracks, or the
// one find makes, which the table tracks from then on. Depots being started are left to
// their Start. A depot find fails for is logged and skipped, unless ctx has ended: then
// Recover returns what it found so far with the error of ctx. When two Recovers find a
// depot at once, both return the handle of the first, and the other one is dropped.
func (t *Table[H]) Recover(ctx context.Context, find func(id string) (H, error), log *slog.Logger) ([]driver.Handle, error) {
	ids, err := t.IDs()
	if err != nil {
		return nil, err
	}
	var out []driver.Handle
	for _, id := range ids {
		t.mu.Lock()
		h, tracked := t.handles[id]
		starting := t.starting[id]
		t.mu.Unlock()
		if tracked {
			out = append(out, h)
			continue
		}
		if starting {
			continue // its Start returns the handle
		}
		h, err := find(id)
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			log.Warn("depot not recovered", "depot", id, "err", err)
			continue
		}
		t.mu.Lock()
		if prev, ok := t.handles[id]; ok {
			if t.drop != nil {
				t.drop(h)
			}
			h = prev
		} else {
			t.handles[id] = h
		}
		t.mu.Unlock()
		out = append(out, h)
	}
	return out, nil
}

// Remove deletes depot id and forgets its handle, with the table locked so that no
// Start of it begins meanwhile. It refuses (wrapping driver.ErrRunning) a depot being
// started or whose handle has not ended, and (wrapping driver.ErrNotFound) an ID that
// names no depot. purge does the deleting: it gets the handle, or the zero H and false
// for a depot the table does not track, and must then itself refuse, wrapping
// driver.ErrRunning, a depot of which something still runs.
func (t *Table[H]) Remove(id string, purge func(h H, tracked bool) error) error {
	if !ValidID(id) {
		return fmt.Errorf("remove depot %q: %w", id, driver.ErrNotFound)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h, tracked := t.handles[id]
	switch {
	case t.starting[id]:
		return fmt.Errorf("remove depot %q: %w (it is starting)", id, driver.ErrRunning)
	case tracked && !h.Exited():
		return fmt.Errorf("remove depot %q: %w; Stop it first", id, driver.ErrRunning)
	case !tracked:
		if _, err := os.Stat(t.Dir(id)); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove depot %q: %w", id, driver.ErrNotFound)
		}
	}
	if err := purge(h, tracked); err != nil {
		return fmt.Errorf("remove depot %q: %w", id, err)
	}
	t.forgetLocked(id)
	return nil
}

// forgetLocked lets go of the handle of id, if the table tracks one. t.mu must be held.
func (t *Table[H]) forgetLocked(id string) {
	h, ok := t.handles[id]
	if !ok {
		return
	}
	if t.drop != nil {
		t.drop(h)
	}
	delete(t.handles, id)
}

// Clear removes the files of depot id's directory that do not outlive a restart of the
// depot: all but those keep accepts (its logs, say). It goes on past a file it cannot
// remove and returns the first such error; a missing directory is an error wrapping
// fs.ErrNotExist.
func (t *Table[H]) Clear(id string, keep func(name string) bool) error {
	dir := t.Dir(id)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range entries {
		if keep(e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}
