//go:build linux

package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"testing"
)

// FuzzApply feeds arbitrary bytes to Apply as a layer, on top of a small lower layer:
// it must never panic and never change anything outside the root, whatever it returns.
// The seeds are well-formed layers (kinds, whiteouts) and the attacks of TestAttacks.
// Each run makes a few directories, so new inputs are minimized slowly: run it with
// -fuzzminimizetime=2s or so to see the exec count move.
func FuzzApply(f *testing.F) {
	seeds := [][]ent{
		{dir("etc/"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), symlink("bin", "usr/bin"), file("usr/bin/sh", "#!")},
		{file(".wh.lower", ""), file("d/.wh..wh..opq", ""), file("d/new", "n"), hardlink("d/h", "d/new")},
		{{name: "p", typ: tar.TypeFifo, mode: 0o600}, {name: "dev/null", typ: tar.TypeChar, mode: 0o666}},
		{file("../outside/pwned", "x")},
		{file("/tmp/qnet-unpack-pwned", "x")},
		{symlink("evil", "../outside"), file("evil/pwned", "x")},
		{symlink("evil", "/tmp"), file("evil/qnet-unpack-pwned", "x")},
		{symlink("a", "b"), symlink("b", "../outside"), file("a/pwned", "x"), file("a/.wh.secret", "")},
		{hardlink("h", "../outside/secret")},
		{symlink("evil", "../outside"), hardlink("h", "evil/secret"), file("evil/.wh..wh..opq", "")},
		{dir("x/"), symlink("x", "../outside"), file("x/secret", "overwritten")},
	}
	for _, s := range seeds {
		f.Add(layer(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		mustApply(t, s.root, file("lower", "l"), file("d/old", "o"), symlink("up", "../outside"))
		Apply(context.Background(), s.root, bytes.NewReader(data), DefaultOptions())
		s.untouched(t)
		if _, err := os.Lstat("/tmp/qnet-unpack-pwned"); err == nil {
			t.Fatal("an entry was written at an absolute host path")
		}
	})
}
