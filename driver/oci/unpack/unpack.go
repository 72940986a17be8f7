// Package unpack applies the layers of an OCI image, one uncompressed tar stream each,
// onto a root filesystem directory, with the OCI whiteouts: an entry ".wh.NAME" deletes
// NAME from the layers below, and ".wh..wh..opq" in a directory hides everything the
// layers below had in it.
//
// A layer is outside input, and an image may be hostile, so the unpacker never lets an
// entry reach outside the root:
//   - entry and hard-link names that are absolute or hold a ".." element are refused;
//   - every path is resolved beneath the root through os.Root, which refuses to follow
//     a symbolic link that is absolute or climbs above the root, so a layer that plants
//     "evil -> /etc" and then writes "evil/passwd" gets an error, not a write (this is
//     stricter than Docker, which resolves such links inside the root; an image that
//     writes through an absolute link to a directory is refused, by name);
//   - the last element of a name is never followed: an existing file, link or directory
//     there is replaced (a directory only by a non-directory), never written through;
//   - hard links are made with linkat on the link itself, inside the root.
//
// Each refusal is an *EntryError naming the entry and wrapping ErrUnsafePath.
//
// Device nodes (character and block) are skipped, and counted: creating them needs
// privilege, and a device file planted in an image could hand the container the
// node's disks; the runtime gives every container its own /dev with the standard
// devices instead. FIFOs are made (no privilege needed). Ownership is applied when the
// process may change it (root), otherwise files belong to the unpacking user; setuid
// and setgid bits are kept only together with the ownership they were meant for.
// Extended attributes are applied only in the "user." namespace and for
// security.capability (file capabilities, which images such as ping use), never
// "trusted." ones, which overlayfs reads as its own instructions.
package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// Whiteout names of the OCI image layer format.
const (
	WhiteoutPrefix = ".wh."
	WhiteoutOpaque = ".wh..wh..opq"
)

// ErrUnsafePath is wrapped by the errors for entries that would leave the root.
var ErrUnsafePath = errors.New("path leaves the root")

// EntryError is the error for one tar entry: its name and what went wrong.
type EntryError struct {
	Entry string
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("layer entry %q: %v", e.Entry, e.Err) }

// Unwrap returns the cause.
func (e *EntryError) Unwrap() error { return e.Err }

// Options tune Apply.
type Options struct {
	// Chown applies the owners recorded in the layer. Only root may; leave it false
	// otherwise and files belong to the unpacking user (setuid and setgid bits are then
	// dropped).
	Chown bool
}

// DefaultOptions returns the options for this process: Chown when it runs as root.
func DefaultOptions() Options {
	return Options{Chown: os.Geteuid() == 0}
}

// Stats counts what Apply did.
type Stats struct {
	Files, Dirs, Symlinks, Hardlinks, FIFOs int
	// Whiteouts counts deletions (".wh.NAME") and opaque markers.
	Whiteouts int
	// SkippedDevices counts character and block devices not created.
	SkippedDevices int
	// SkippedOther counts entries of kinds a root filesystem has no use for (global PAX
	// headers, unknown types).
	SkippedOther int
	// Bytes is the size of the regular files written.
	Bytes int64
}

// Apply applies one layer, read as an uncompressed tar stream from r, onto the
// directory root, which holds the layers below. It stops at the first error, leaving
// root partly changed: callers unpack into a directory of their own and discard it on
// error.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (Stats, error) {
	var st Stats
	rt, err := os.OpenRoot(root)
	if err != nil {
		return st, fmt.Errorf("unpack: open root: %w", err)
	}
	defer rt.Close()
	a := &applier{root: rt, opts: opts, st: &st, seen: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("unpack: %w", err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("unpack: read layer: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return st, err
		}
	}
	// Directories get their modes and times last: a read-only directory must still take
	// the entries that come after it, and every entry written into a directory would
	// change its times.
	for _, d := range slices.Backward(a.dirs) {
		if err := a.finishDir(d.name, d.hdr); err != nil {
			return st, &EntryError{d.hdr.Name, err}
		}
	}
	return st, nil
}

type dirMeta struct {
	name string
	hdr  *tar.Header
}

type applier struct {
	root *os.Root
	opts Options
	st   *Stats
	// seen holds the names this layer created, which its own whiteouts leave alone:
	// whiteouts hide what the layers below had.
	seen map[string]bool
	dirs []dirMeta
}

// CleanName checks a tar entry name and returns it relative to the root, without a
// leading "./" or trailing "/"; "." is the root itself. Absolute names and names with a
// ".." element are refused, whatever they would resolve to.
func CleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("name contains a NUL byte")
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafePath)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: name has a \"..\" element", ErrUnsafePath)
		}
	}
	return path.Clean(name), nil
}

func (a *applier) entry(hdr *tar.Header, content io.Reader) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return &EntryError{hdr.Name, err}
	}
	fail := func(err error) error {
		if isEscape(err) {
			err = fmt.Errorf("%w: it goes through a symbolic link that is absolute or climbs above the root: %v", ErrUnsafePath, err)
		}
		return &EntryError{hdr.Name, err}
	}
	if name == "." {
		// The root itself: its mode and owner are the runtime's business.
		if hdr.Typeflag != tar.TypeDir {
			return &EntryError{hdr.Name, errors.New("the root of a layer must be a directory")}
		}
		return nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if base == WhiteoutOpaque {
		a.st.Whiteouts++
		return a.opaque(dir, hdr.Name, fail)
	}
	if strings.HasPrefix(base, WhiteoutPrefix) {
		target := path.Join(dir, strings.TrimPrefix(base, WhiteoutPrefix))
		a.st.Whiteouts++
		if a.seen[target] {
			return nil
		}
		// The directory may be missing or not a directory: then there is nothing to hide.
		if err := a.root.RemoveAll(target); err != nil && !notThere(err) {
			return fail(err)
		}
		return nil
	}
	if err := a.root.MkdirAll(dir, 0o755); err != nil {
		return fail(fmt.Errorf("parent directory: %w", err))
	}
	// The entry and its parents are this layer's: an opaque marker for a directory
	// above must not take them away.
	for p := name; p != "." && !a.seen[p]; p = path.Dir(p) {
		a.seen[p] = true
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := a.root.Lstat(name)
		switch {
		case err == nil && fi.IsDir():
		case err == nil || !notThere(err):
			if err := a.replace(name); err != nil {
				return fail(err)
			}
			fallthrough
		default:
			if err := a.root.Mkdir(name, 0o755); err != nil {
				return fail(err)
			}
		}
		a.dirs = append(a.dirs, dirMeta{name, hdr})
		a.st.Dirs++
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := a.replace(name); err != nil {
			return fail(err)
		}
		if err := a.file(name, hdr, content); err != nil {
			return fail(err)
		}
		a.st.Files++
	case tar.TypeSymlink:
		if err := a.replace(name); err != nil {
			return fail(err)
		}
		// The target is stored as it is: the unpacker never follows it, and os.Root
		// refuses to, should a later entry try to write through it.
		if err := a.root.Symlink(hdr.Linkname, name); err != nil {
			return fail(err)
		}
		if a.opts.Chown {
			if err := a.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
				return fail(err)
			}
		}
		a.st.Symlinks++
	case tar.TypeLink:
		target, err := CleanName(hdr.Linkname)
		if err != nil {
			return &EntryError{hdr.Name, fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)}
		}
		if target == "." {
			return &EntryError{hdr.Name, errors.New("hard link to the root directory")}
		}
		if target == name {
			return nil // a link to itself: the file is already there
		}
		if err := a.replace(name); err != nil {
			return fail(err)
		}
		if err := a.root.Link(target, name); err != nil {
			return fail(fmt.Errorf("hard link to %q: %w", hdr.Linkname, err))
		}
		a.st.Hardlinks++
	case tar.TypeFifo:
		if err := a.replace(name); err != nil {
			return fail(err)
		}
		if err := a.fifo(name, hdr); err != nil {
			return fail(err)
		}
		a.st.FIFOs++
	case tar.TypeChar, tar.TypeBlock:
		delete(a.seen, name)
		a.st.SkippedDevices++
	default:
		delete(a.seen, name)
		a.st.SkippedOther++
	}
	return nil
}

// replace removes whatever is at name (a file, a link, or a directory with all it
// holds), so a new entry can take its place. The last element is never followed.
func (a *applier) replace(name string) error {
	fi, err := a.root.Lstat(name)
	if notThere(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return a.root.RemoveAll(name)
	}
	return a.root.Remove(name)
}

// opaque empties dir of what the layers below put there.
func (a *applier) opaque(dir, entry string, fail func(error) error) error {
	// O_DIRECTORY: opening a FIFO planted under that name would block.
	f, err := a.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if notThere(err) {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fail(err)
	}
	for _, n := range names {
		child := path.Join(dir, n)
		if a.seen[child] {
			continue
		}
		if err := a.root.RemoveAll(child); err != nil {
			return fail(err)
		}
	}
	return nil
}

func (a *applier) file(name string, hdr *tar.Header, content io.Reader) error {
	// O_EXCL: the name was just cleared, so anything there now would be a link planted
	// between the two calls; never write through it.
	f, err := a.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, content)
	a.st.Bytes += n
	if err == nil {
		err = a.meta(f, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return a.times(name, hdr)
}

// meta applies owner, mode and extended attributes through an open file, so they land
// on the file the entry made and nothing else. Owner first: chown clears setuid bits.
func (a *applier) meta(f *os.File, hdr *tar.Header) error {
	mode := fileMode(hdr.Mode)
	if a.opts.Chown {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	} else {
		mode &^= fs.ModeSetuid | fs.ModeSetgid
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return setXattrs(f, hdr, a.opts.Chown)
}

func (a *applier) times(name string, hdr *tar.Header) error {
	mt := hdr.ModTime
	if mt.IsZero() {
		return nil
	}
	at := hdr.AccessTime
	if at.IsZero() {
		at = mt
	}
	return a.root.Chtimes(name, at, mt)
}

func (a *applier) finishDir(name string, hdr *tar.Header) error {
	// A later entry may have replaced the directory (with a file or a link); its own
	// metadata then stands.
	fi, err := a.root.Lstat(name)
	if err != nil || !fi.IsDir() {
		return nil
	}
	f, err := a.root.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	err = a.meta(f, hdr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return a.times(name, hdr)
}

// fileMode turns a tar mode into an fs.FileMode with the permission, setuid, setgid
// and sticky bits.
func fileMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// notThere reports whether err says a path (or a directory on it) does not exist.
func notThere(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir)
}

// isEscape reports whether err is os.Root refusing a path that leaves it. The os
// package does not export that error, so its (stable, documented in tests) text is
// matched, behind this one function.
func isEscape(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}
