package shim

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/tetratelabs/wazero"

	"qnet.dev/qnet/driver/wasm/internal/proto"
)

// fsConfig preopens the depot's data directory (file descriptor 3), then its mounts in
// order. A directory mount is the node's directory, read-only when asked (wazero then
// refuses every change); file mounts are a read-only directory of their own (fileDir).
func fsConfig(data string, preopens []proto.Preopen) wazero.FSConfig {
	c := wazero.NewFSConfig().WithDirMount(data, proto.GuestDataPath)
	for _, p := range preopens {
		switch {
		case p.Dir != "" && p.ReadOnly:
			c = c.WithReadOnlyDirMount(p.Dir, p.GuestPath)
		case p.Dir != "":
			c = c.WithDirMount(p.Dir, p.GuestPath)
		default:
			c = c.WithFSMount(fileDir(p.Files), p.GuestPath)
		}
	}
	return c
}

// fileDir is a read-only directory holding exactly the given files: names in the
// directory mapped to the node's files, opened at each open, so a file replaced on the
// node (a secret's new version renamed into place) is seen at once, and nothing is
// copied.
type fileDir map[string]string

// Open opens "." (the directory) or one of its files, read-only.
func (d fileDir) Open(name string) (fs.File, error) {
	if name == "." {
		return &dirHandle{d: d}, nil
	}
	src, ok := d[name]
	if !fs.ValidPath(name) || !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.Unwrap(err)}
	}
	return &roFile{f: f, name: name}, nil
}

// roFile is a node file as the module may use it: read, seek and stat, never write
// (the module only ever sees this type, without *os.File's Write).
type roFile struct {
	f    *os.File
	name string
}

func (r *roFile) Read(p []byte) (int, error)              { return r.f.Read(p) }
func (r *roFile) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *roFile) Seek(off int64, whence int) (int64, error) {
	return r.f.Seek(off, whence)
}
func (r *roFile) Close() error { return r.f.Close() }

// Stat reports the file under its name in the directory, and read-only.
func (r *roFile) Stat() (fs.FileInfo, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return nil, err
	}
	return renamed{fi, r.name}, nil
}

// renamed is a node file's FileInfo under its name in a fileDir, without write bits.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string      { return r.name }
func (r renamed) Mode() fs.FileMode { return r.FileInfo.Mode() &^ 0o222 }

// dirHandle is an open fileDir: a read-only directory that lists its files.
type dirHandle struct {
	d    fileDir
	read int // entries returned so far
}

// dirInfo describes a fileDir.
type dirInfo struct{}

func (dirInfo) Name() string       { return "." }
func (dirInfo) Size() int64        { return 0 }
func (dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (dirInfo) ModTime() time.Time { return time.Time{} }
func (dirInfo) IsDir() bool        { return true }
func (dirInfo) Sys() any           { return nil }

func (h *dirHandle) Stat() (fs.FileInfo, error) { return dirInfo{}, nil }
func (h *dirHandle) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: errors.New("is a directory")}
}
func (h *dirHandle) Close() error { return nil }

// ReadDir lists the files that exist on the node, by name, n at a time as fs.ReadDirFile
// says.
func (h *dirHandle) ReadDir(n int) ([]fs.DirEntry, error) {
	names := make([]string, 0, len(h.d))
	for name := range h.d {
		names = append(names, name)
	}
	slices.Sort(names)
	var all []fs.DirEntry
	for _, name := range names {
		if fi, err := os.Stat(h.d[name]); err == nil {
			all = append(all, fs.FileInfoToDirEntry(renamed{fi, name}))
		}
	}
	rest := all[min(h.read, len(all)):]
	if n <= 0 {
		h.read = len(all)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	h.read += len(rest)
	return rest, nil
}
