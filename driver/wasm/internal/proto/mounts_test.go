package proto

import (
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/driver"
)

// fakeInfo is a file or a directory for Preopens' stat.
type fakeInfo struct{ dir bool }

func (f fakeInfo) Name() string       { return "x" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return map[bool]fs.FileMode{true: fs.ModeDir}[f.dir] }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.dir }
func (f fakeInfo) Sys() any           { return nil }

func fakeStat(p string) (fs.FileInfo, error) {
	switch {
	case strings.HasPrefix(p, "/node/dir"):
		return fakeInfo{dir: true}, nil
	case strings.HasPrefix(p, "/node/file"):
		return fakeInfo{}, nil
	}
	return nil, os.ErrNotExist
}

func TestPreopens(t *testing.T) {
	t.Parallel()
	got, err := Preopens([]driver.Mount{
		{Source: "/node/file-a", Target: "/etc/app/a.conf", ReadOnly: true},
		{Source: "/node/dir-srv", Target: "/srv"},
		{Source: "/node/file-b", Target: "/etc/app/b.conf", ReadOnly: true},
		{Source: "/node/file-k", Target: "/run/secrets/key", ReadOnly: true},
		{Source: "/node/dir-ro", Target: "/data/shared", ReadOnly: true},
	}, fakeStat)
	if err != nil {
		t.Fatal(err)
	}
	want := []Preopen{
		{GuestPath: "/data/shared", Dir: "/node/dir-ro", ReadOnly: true},
		{GuestPath: "/etc/app", ReadOnly: true, Files: map[string]string{"a.conf": "/node/file-a", "b.conf": "/node/file-b"}},
		{GuestPath: "/run/secrets", ReadOnly: true, Files: map[string]string{"key": "/node/file-k"}},
		{GuestPath: "/srv", Dir: "/node/dir-srv"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Preopens =\n%+v\nwant\n%+v", got, want)
	}
	if FirstListenerFDAfter(len(got)) != 8 {
		t.Errorf("first listener after 4 preopens = %d, want 8", FirstListenerFDAfter(len(got)))
	}

	for _, tc := range []struct {
		name   string
		mounts []driver.Mount
		want   string
	}{
		{"missing source", []driver.Mount{{Source: "/gone", Target: "/x", ReadOnly: true}}, "spec.mounts[0].source"},
		{"writable file", []driver.Mount{{Source: "/node/file", Target: "/etc/x"}}, "read-only"},
		{"data itself", []driver.Mount{{Source: "/node/dir", Target: "/data"}}, "data directory"},
		{"file in data", []driver.Mount{{Source: "/node/file", Target: "/data/x", ReadOnly: true}}, "data directory"},
		{"dir at a file's parent", []driver.Mount{{Source: "/node/file", Target: "/etc/x", ReadOnly: true}, {Source: "/node/dir", Target: "/etc"}}, "spec.mounts[1].target"},
		{"file under a dir mount", []driver.Mount{{Source: "/node/dir", Target: "/etc"}, {Source: "/node/file", Target: "/etc/x", ReadOnly: true}}, "spec.mounts[1].target"},
	} {
		if _, err := Preopens(tc.mounts, fakeStat); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Preopens = %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}
