//go:build linux

package secret

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MountTmpfs mounts a tmpfs of TmpfsSize at dir, mode 0700, without devices, set-uid or
// exec, for one depot's secret files. It creates dir (0700) if needed and does nothing if
// a tmpfs is mounted there already, so an agent can call it again after a restart.
// It needs CAP_SYS_ADMIN.
//
// The tmpfs is mounted noswap where the kernel supports it (Linux 6.4 and later), so the
// plaintext cannot be written to a swap device either; older kernels mount without it.
func MountTmpfs(dir string) error {
	if dir == "" {
		return errors.New("mount secret tmpfs: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount secret tmpfs: %w", err)
	}
	mounted, err := isTmpfsMount(dir)
	if err != nil {
		return fmt.Errorf("mount secret tmpfs at %s: %w", dir, err)
	}
	if mounted {
		return nil
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	opts := fmt.Sprintf("size=%d,nr_inodes=1024,mode=0700", TmpfsSize)
	err = unix.Mount("tmpfs", dir, "tmpfs", flags, opts+",noswap")
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("tmpfs", dir, "tmpfs", flags, opts)
	}
	if err != nil {
		return fmt.Errorf("mount secret tmpfs at %s (needs root or CAP_SYS_ADMIN): %w", dir, err)
	}
	return nil
}

// UnmountTmpfs unmounts the tmpfs at dir, which frees its files' memory. A busy mount is
// detached, so it goes away once the last process using it does.
func UnmountTmpfs(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmount secret tmpfs at %s: %w", dir, err)
	}
	return nil
}

// isTmpfsMount reports whether dir is the root of a tmpfs mount: a tmpfs whose device
// differs from its parent's (a directory inside a tmpfs such as /run is not one).
func isTmpfsMount(dir string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false, err
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return false, nil
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Join(dir, ".."), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// WriteFile writes the secret v as file name in dir with mode 0400, replacing any
// earlier version at once (a new file renamed over the old). It refuses unless the file
// lands on a tmpfs, so plaintext never reaches a disk; and it cannot be led out of dir
// by symbolic links.
func WriteFile(dir, name string, v Value) (err error) {
	if err := checkFileName(name); err != nil {
		return fmt.Errorf("write secret %s: %w", v, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("write secret %s: %w", v, err)
	}
	defer root.Close()
	tmp := ".tmp-" + rand.Text()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err != nil {
		return fmt.Errorf("write secret %s to %s: %w", v, dir, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()
	// Check the file's own filesystem, not dir's path, so nothing can be swapped in
	// between the check and the write.
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return fmt.Errorf("write secret %s to %s: %w", v, dir, err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("write secret %s: %s is not on a tmpfs (filesystem type %#x): refusing to put plaintext on a disk; mount one with MountTmpfs", v, dir, fs.Type)
	}
	if err := f.Chmod(FileMode); err != nil { // the umask may have narrowed the mode
		return fmt.Errorf("write secret %s to %s: %w", v, dir, err)
	}
	if _, err := f.Write(v.Reveal()); err != nil {
		return fmt.Errorf("write secret %s to %s: %w", v, dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write secret %s to %s: %w", v, dir, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return fmt.Errorf("write secret %s to %s: %w", v, filepath.Join(dir, name), err)
	}
	return nil
}
