//go:build linux

package secret

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mountForTest mounts a secret tmpfs in a temporary directory, or skips when the test
// does not run as root (mounting needs CAP_SYS_ADMIN).
func mountForTest(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a tmpfs needs root (CAP_SYS_ADMIN); run the tests as root to cover MountTmpfs and WriteFile")
	}
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := MountTmpfs(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := UnmountTmpfs(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

func TestMountTmpfs(t *testing.T) {
	t.Parallel()
	dir := mountForTest(t)

	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.TMPFS_MAGIC {
		t.Fatalf("%s is filesystem %#x, not tmpfs", dir, fs.Type)
	}
	if size := int64(fs.Blocks) * fs.Bsize; size != TmpfsSize {
		t.Errorf("tmpfs is %d bytes, want the limit %d", size, TmpfsSize)
	}
	for _, flag := range []struct {
		bit  int64
		name string
	}{{unix.ST_NOSUID, "nosuid"}, {unix.ST_NODEV, "nodev"}, {unix.ST_NOEXEC, "noexec"}} {
		if fs.Flags&flag.bit == 0 {
			t.Errorf("tmpfs is mounted without %s", flag.name)
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("tmpfs root has mode %#o, want 0700", st.Mode().Perm())
	}
	// A second call finds the mount and leaves it (and its files) alone.
	if err := WriteFile(dir, "db-password", NewValue("db-password", 1, []byte("one"))); err != nil {
		t.Fatal(err)
	}
	if err := MountTmpfs(dir); err != nil {
		t.Fatalf("mount again: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "db-password")); err != nil || string(b) != "one" {
		t.Fatalf("after mounting again the file reads %q, %v: the first mount was hidden", b, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(mounts, []byte(" "+dir+" ")); n != 1 {
		t.Errorf("%s is mounted %d times, want once", dir, n)
	}
	// Since Linux 6.4 the tmpfs must also keep the plaintext out of swap.
	if kernelAtLeast(t, 6, 4) {
		for line := range strings.Lines(string(mounts)) {
			if strings.Contains(line, " "+dir+" ") && !strings.Contains(line, "noswap") {
				t.Errorf("the kernel supports noswap but the tmpfs is mounted without it: %s", line)
			}
		}
	}
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", unix.ByteSliceToString(u.Release[:]), err)
	}
	return maj > major || maj == major && min >= minor
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := mountForTest(t)
	path := filepath.Join(dir, "db-password")

	v1 := NewValue("db-password", 1, []byte(canary))
	if err := WriteFile(dir, "db-password", v1); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != FileMode {
		t.Errorf("file mode %v, want %#o", st.Mode(), FileMode)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != canary {
		t.Fatalf("file reads %q, %v", b, err)
	}
	// A new version replaces the file, even though it is read-only.
	if err := WriteFile(dir, "db-password", NewValue("db-password", 2, []byte("two"))); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "two" {
		t.Fatalf("after the new version the file reads %q, %v", b, err)
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want 1: %v", len(entries), entries)
	}
	// A symbolic link cannot lead the write out of the tmpfs.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(dir, "escape", v1); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "escape")); err == nil {
			t.Fatal("WriteFile followed a symbolic link out of the tmpfs")
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("WriteFile wrote outside the tmpfs: %v", entries)
	}
}

func TestWriteFileTmpfsFull(t *testing.T) {
	t.Parallel()
	dir := mountForTest(t)
	big := bytes.Repeat([]byte{1}, MaxSize)
	var err error
	for i := 0; i <= TmpfsSize/MaxSize && err == nil; i++ {
		err = WriteFile(dir, "s"+string(rune('a'+i%26))+string(rune('a'+i/26)), NewValue("s", 1, big))
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("writing past the tmpfs limit: %v; want ENOSPC", err)
	}
}

func TestWriteFileRefuses(t *testing.T) {
	t.Parallel()
	v := NewValue("db-password", 1, []byte(canary))
	for _, name := range []string{"", ".", "..", "../x", "a/b", ".hidden", "a\x00b", strings.Repeat("x", 256)} {
		err := WriteFile(t.TempDir(), name, v)
		if err == nil || !strings.Contains(err.Error(), "secret file name") {
			t.Errorf("WriteFile(%q) = %v; want an error about the file name", name, err)
		}
	}

	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skipf("skipping the disk check: the temporary directory %s is itself on a tmpfs; set TMPDIR to a directory on a disk", dir)
	}
	err := WriteFile(dir, "db-password", v)
	if err == nil || !strings.Contains(err.Error(), "is not on a tmpfs") || !strings.Contains(err.Error(), "[redacted db-password v1]") {
		t.Fatalf("WriteFile to a disk: %v; want a refusal", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused write left files on the disk: %v", entries)
	}
}
