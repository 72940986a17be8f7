//go:build linux

package unpack

import (
	"archive/tar"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

var errNotDir = syscall.ENOTDIR

// fifo makes a named pipe: mknodat in the entry's directory, opened through the root,
// with a single-element name, which mknod never follows.
func (a *applier) fifo(name string, hdr *tar.Header) error {
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	d, err := a.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Mknodat(int(d.Fd()), base, unix.S_IFIFO|0o600, 0); err != nil {
		return &os.PathError{Op: "mknodat", Path: name, Err: err}
	}
	f, err := a.root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
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

// setXattrs applies the entry's extended attributes that a root filesystem may carry:
// "user." ones always, security.capability only as root (the kernel wants
// CAP_SETFCAP). Others, "trusted." above all, are dropped: overlayfs reads
// trusted.overlay.* on its layers as instructions. A filesystem without xattr support
// loses them quietly, as tar does.
func setXattrs(f *os.File, hdr *tar.Header, root bool) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if !strings.HasPrefix(name, "user.") && !(root && name == "security.capability") {
			continue
		}
		err := unix.Fsetxattr(int(f.Fd()), name, []byte(v), 0)
		if err == unix.ENOTSUP || err == unix.EPERM {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "setxattr " + name, Path: f.Name(), Err: err}
		}
	}
	return nil
}
