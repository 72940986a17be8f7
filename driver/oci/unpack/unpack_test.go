//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ent is one tar entry of a test layer.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
	uid  int
	gid  int
	pax  map[string]string
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) ent { return ent{name: name, typ: tar.TypeLink, link: target} }

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// layer encodes entries as a tar stream.
func layer(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: mtime, PAXRecords: e.pax, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a root directory beside a directory "outside" holding a file "secret",
// which no layer may reach.
type sandbox struct {
	root, outside string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent := t.TempDir()
	s := sandbox{root: filepath.Join(parent, "root"), outside: filepath.Join(parent, "outside")}
	for _, d := range []string{s.root, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// untouched fails the test if anything outside the root changed: the parent holds only
// root and outside, and outside holds only the secret, unchanged and unlinked.
func (s sandbox) untouched(t testing.TB) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Dir(s.root))
	if len(entries) != 2 {
		t.Errorf("parent of the root holds %v, want only root and outside", names(entries))
	}
	entries, _ = os.ReadDir(s.outside)
	if len(entries) != 1 || entries[0].Name() != "secret" {
		t.Errorf("outside holds %v, want only secret", names(entries))
	}
	data, err := os.ReadFile(filepath.Join(s.outside, "secret"))
	if err != nil || string(data) != "secret" {
		t.Errorf("outside/secret = %q, %v; want it unchanged", data, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(s.outside, "secret"), &st); err == nil && st.Nlink != 1 {
		t.Errorf("outside/secret has %d links, want 1 (a hard link was made to it)", st.Nlink)
	}
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func apply(t testing.TB, root string, ents ...ent) (Stats, error) {
	t.Helper()
	return Apply(context.Background(), root, bytes.NewReader(layer(t, ents...)), DefaultOptions())
}

func mustApply(t testing.TB, root string, ents ...ent) Stats {
	t.Helper()
	st, err := apply(t, root, ents...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tree lists every path under root with a short description, for comparisons.
func tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, _ := d.Info()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		case d.IsDir():
			out[rel] = "dir"
		case fi.Mode()&fs.ModeNamedPipe != 0:
			out[rel] = "fifo"
		default:
			data, _ := os.ReadFile(p)
			out[rel] = string(data)
		}
		return nil
	})
	return out
}

func TestApplyKinds(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	setuid := file("bin/su", "su")
	setuid.mode, setuid.uid, setuid.gid = 0o4755, 0, 0
	owned := file("home/app/data", "data")
	owned.uid, owned.gid, owned.mode = 1000, 1001, 0o640
	ro := dir("ro")
	ro.mode = 0o555
	xattr := file("xattr", "x")
	xattr.pax = map[string]string{"SCHILY.xattr.user.qnet": "yes", "SCHILY.xattr.trusted.overlay.opaque": "y"}
	st := mustApply(t, s.root,
		dir("./"), dir("bin/"), setuid, owned, ro, file("ro/inside", "in"),
		symlink("bin/sh", "su"), symlink("abs", "/bin/su"), hardlink("bin/su2", "bin/su"),
		ent{name: "pipe", typ: tar.TypeFifo, mode: 0o600},
		ent{name: "dev/sda", typ: tar.TypeBlock, mode: 0o600},
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		xattr,
	)
	want := Stats{Files: 4, Dirs: 2, Symlinks: 2, Hardlinks: 1, FIFOs: 1, SkippedDevices: 2, Bytes: 9}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	got := tree(t, s.root)
	for k, v := range map[string]string{
		"bin/su": "su", "bin/su2": "su", "bin/sh": "-> su", "abs": "-> /bin/su", "pipe": "fifo",
		"home/app/data": "data", "ro/inside": "in", "xattr": "x",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["dev/sda"]; ok {
		t.Error("a block device was created")
	}
	fi, _ := os.Stat(filepath.Join(s.root, "bin/su"))
	if os.Geteuid() == 0 && fi.Mode() != 0o755|fs.ModeSetuid {
		t.Errorf("bin/su mode = %v, want setuid 0755", fi.Mode())
	}
	if !fi.ModTime().Equal(mtime) {
		t.Errorf("bin/su mtime = %v, want %v", fi.ModTime(), mtime)
	}
	var a, b syscall.Stat_t
	syscall.Stat(filepath.Join(s.root, "bin/su"), &a)
	syscall.Stat(filepath.Join(s.root, "bin/su2"), &b)
	if a.Ino != b.Ino {
		t.Error("bin/su2 is not a hard link of bin/su")
	}
	if fi, _ := os.Stat(filepath.Join(s.root, "ro")); fi.Mode().Perm() != 0o555 || !fi.ModTime().Equal(mtime) {
		t.Errorf("ro = %v %v, want 0555 and the layer's mtime (set after its contents)", fi.Mode(), fi.ModTime())
	}
	if os.Geteuid() == 0 {
		var o syscall.Stat_t
		syscall.Stat(filepath.Join(s.root, "home/app/data"), &o)
		if o.Uid != 1000 || o.Gid != 1001 || o.Mode&0o777 != 0o640 {
			t.Errorf("home/app/data owner %d:%d mode %o, want 1000:1001 0640", o.Uid, o.Gid, o.Mode&0o777)
		}
		buf := make([]byte, 16)
		if n, err := syscall.Getxattr(filepath.Join(s.root, "xattr"), "user.qnet", buf); err == nil && string(buf[:n]) != "yes" {
			t.Errorf("user.qnet = %q", buf[:n])
		}
		if _, err := syscall.Getxattr(filepath.Join(s.root, "xattr"), "trusted.overlay.opaque", buf); err == nil {
			t.Error("a trusted.overlay xattr from the layer was applied")
		}
	}
	s.untouched(t)
}

func TestWhiteouts(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	mustApply(t, s.root,
		file("a/x", "x"), file("a/y", "y"), file("b/z", "z"), file("b/sub/deep", "d"), file("c", "c"),
		dir("d"), file("d/keep", "k"), symlink("link", "a"),
	)
	st := mustApply(t, s.root,
		file(".wh.c", ""), file("a/.wh.x", ""),
		// New content of b comes before and after its opaque marker: both stay.
		file("b/before", "1"), file("b/.wh..wh..opq", ""), file("b/after", "2"),
		file("d/.wh.missing", ""), file("gone/.wh.nothing", ""),
		file(".wh.link", ""),
		// A whiteout of what this layer itself made does not remove it.
		file("mine", "m"), file(".wh.mine", ""),
	)
	if st.Whiteouts != 7 {
		t.Errorf("whiteouts = %d, want 7", st.Whiteouts)
	}
	want := map[string]string{
		"a": "dir", "a/y": "y", "b": "dir", "b/before": "1", "b/after": "2", "d": "dir", "d/keep": "k", "mine": "m",
	}
	got := tree(t, s.root)
	if !equal(got, want) {
		t.Errorf("tree = %v\nwant %v", got, want)
	}
	s.untouched(t)
}

func TestReplace(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	mustApply(t, s.root,
		file("dir-to-file/x", "x"), file("file-to-dir", "f"),
		symlink("link-to-file", "../outside/secret"), symlink("link-to-dir", "../outside"),
	)
	mustApply(t, s.root,
		file("dir-to-file", "now a file"), dir("file-to-dir"), file("file-to-dir/y", "y"),
		// The last element is replaced, never written through: the secret stays.
		file("link-to-file", "replaced"), dir("link-to-dir"), file("link-to-dir/z", "z"),
	)
	want := map[string]string{
		"dir-to-file": "now a file", "file-to-dir": "dir", "file-to-dir/y": "y",
		"link-to-file": "replaced", "link-to-dir": "dir", "link-to-dir/z": "z",
	}
	if got := tree(t, s.root); !equal(got, want) {
		t.Errorf("tree = %v\nwant %v", got, want)
	}
	s.untouched(t)
}

// TestAttacks applies layers that try to write, link or delete outside the root: each
// must fail with ErrUnsafePath and an error naming the entry, and leave everything
// outside the root as it was.
func TestAttacks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		entry string // the entry the error must name
		ents  func(s sandbox) []ent
	}{
		{"dotdot", "../outside/pwned", func(sandbox) []ent { return []ent{file("../outside/pwned", "x")} }},
		{"dotdot inside", "a/../../outside/pwned", func(sandbox) []ent { return []ent{file("a/../../outside/pwned", "x")} }},
		{"absolute", "/tmp/qnet-unpack-pwned", func(sandbox) []ent { return []ent{file("/tmp/qnet-unpack-pwned", "x")} }},
		{"dotdot dir", "../outside/newdir/", func(sandbox) []ent { return []ent{dir("../outside/newdir/")} }},
		{"relative symlink out", "evil/pwned", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), file("evil/pwned", "x")}
		}},
		{"deep relative symlink out", "a/b/evil/pwned", func(sandbox) []ent {
			return []ent{symlink("a/b/evil", "../../../outside"), file("a/b/evil/pwned", "x")}
		}},
		{"absolute symlink out", "evil/pwned", func(s sandbox) []ent {
			return []ent{symlink("evil", s.outside), file("evil/pwned", "x")}
		}},
		{"symlink chain out", "first/pwned", func(sandbox) []ent {
			return []ent{symlink("first", "second"), symlink("second", "../outside"), file("first/pwned", "x")}
		}},
		{"symlink dir out", "evil/newdir/", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), dir("evil/newdir/")}
		}},
		{"symlink to overwrite", "evil/secret", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), file("evil/secret", "overwritten")}
		}},
		{"hardlink dotdot", "h", func(sandbox) []ent { return []ent{hardlink("h", "../outside/secret")} }},
		{"hardlink absolute", "h", func(s sandbox) []ent { return []ent{hardlink("h", filepath.Join(s.outside, "secret"))} }},
		{"hardlink through symlink", "h", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), hardlink("h", "evil/secret")}
		}},
		{"hardlink through absolute symlink", "h", func(s sandbox) []ent {
			return []ent{symlink("evil", s.outside), hardlink("h", "evil/secret")}
		}},
		{"whiteout through symlink", "evil/.wh.secret", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), file("evil/.wh.secret", "")}
		}},
		{"opaque through symlink", "evil/.wh..wh..opq", func(s sandbox) []ent {
			return []ent{symlink("evil", s.outside), file("evil/.wh..wh..opq", "")}
		}},
		{"fifo through symlink", "evil/fifo", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), {name: "evil/fifo", typ: tar.TypeFifo, mode: 0o600}}
		}},
		{"symlink in symlinked dir", "evil/link", func(sandbox) []ent {
			return []ent{symlink("evil", "../outside"), symlink("evil/link", "/etc")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			_, err := apply(t, s.root, tc.ents(s)...)
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("Apply = %v, want an error wrapping ErrUnsafePath", err)
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry != tc.entry || !strings.Contains(err.Error(), tc.entry) {
				t.Errorf("error %q does not name entry %q", err, tc.entry)
			}
			s.untouched(t)
			if _, err := os.Lstat("/tmp/qnet-unpack-pwned"); err == nil {
				t.Error("an absolute entry was written on the host")
			}
		})
	}
}

// TestInRootSymlinks: links that stay inside the root are followed, as images with a
// merged /usr need ("lib -> usr/lib", then entries under lib/).
func TestInRootSymlinks(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	mustApply(t, s.root, dir("usr/lib"), symlink("lib", "usr/lib"), symlink("usr/lib/up", "../.."))
	mustApply(t, s.root, file("lib/libc.so", "c"), file("usr/lib/up/top", "t"), hardlink("lib/libc2.so", "lib/libc.so"))
	got := tree(t, s.root)
	if got["usr/lib/libc.so"] != "c" || got["top"] != "t" || got["usr/lib/libc2.so"] != "c" {
		t.Errorf("tree = %v", got)
	}
	s.untouched(t)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	if _, err := Apply(context.Background(), s.root, strings.NewReader("this is not a tar stream, not at all, no"), DefaultOptions()); err == nil {
		t.Error("Apply took garbage")
	}
	data := layer(t, file("a", strings.Repeat("x", 1000)))
	if _, err := Apply(context.Background(), s.root, bytes.NewReader(data[:700]), DefaultOptions()); err == nil {
		t.Error("Apply took a truncated layer")
	}
	if _, err := apply(t, s.root, hardlink("h", "does-not-exist")); err == nil || !strings.Contains(err.Error(), `"h"`) {
		t.Errorf("hard link to a missing file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, s.root, bytes.NewReader(layer(t, file("a", "a"))), DefaultOptions()); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context = %v", err)
	}
	s.untouched(t)
}

func TestCleanName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"./etc/passwd": "etc/passwd", "etc/": "etc", "./": ".", "a//b/./c": "a/b/c", "..a/b..": "..a/b..",
	} {
		if got, err := CleanName(in); err != nil || got != want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/etc", "..", "a/../b", "a/..", "x\x00y"} {
		if got, err := CleanName(in); err == nil {
			t.Errorf("CleanName(%q) = %q, want an error", in, got)
		}
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if b[k] != a[k] {
			return false
		}
	}
	return true
}
