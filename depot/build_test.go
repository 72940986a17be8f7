package depot

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"syscall"
	"testing"
)

func TestBuildDir(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "bin", "web"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc", "web.conf"), []byte("port=8080"), 0o600))
	must(os.Symlink("bin/web", filepath.Join(dir, "start")))

	s := newStore(t)
	ctx := context.Background()
	opts := BuildOptions{Entrypoint: []string{"/bin/web"}, Env: []string{"A=1"}, WorkingDir: "/etc", User: "1000:1000", Labels: map[string]string{"k": "v"}}
	img, err := s.Build(ctx, dir, "site:1", opts)
	if err != nil {
		t.Fatal(err)
	}
	if img.OS != "linux" || img.Arch != runtime.GOARCH || len(img.Layers) != 1 {
		t.Errorf("image %s/%s with %d layers", img.OS, img.Arch, len(img.Layers))
	}
	want := ImageConfig{Entrypoint: []string{"/bin/web"}, Env: []string{"A=1"}, WorkingDir: "/etc", User: "1000:1000", Labels: map[string]string{"k": "v"}}
	if !reflect.DeepEqual(img.Config, want) {
		t.Errorf("config %+v, want %+v", img.Config, want)
	}
	type entry struct {
		typ  byte
		mode int64
		body string
		link string
		uid  int
	}
	got := map[string]entry{}
	rc, err := s.LayerReader(img.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = entry{h.Typeflag, h.Mode & 0o7777, string(b), h.Linkname, h.Uid}
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	wantEntries := map[string]entry{
		"bin/":         {tar.TypeDir, 0o755, "", "", 0},
		"bin/web":      {tar.TypeReg, 0o755, "#!/bin/sh\necho hi\n", "", 0},
		"etc/":         {tar.TypeDir, 0o700, "", "", 0},
		"etc/web.conf": {tar.TypeReg, 0o600, "port=8080", "", 0},
		"start":        {tar.TypeSymlink, 0o777, "", "bin/web", 0},
	}
	if !reflect.DeepEqual(got, wantEntries) {
		t.Errorf("layer holds\n%v\nwant\n%v", got, wantEntries)
	}
	// The same files and options give the same image.
	again, err := s.Build(ctx, dir, "", opts)
	if err != nil || again.Digest != img.Digest {
		t.Errorf("rebuild = %v, %v; want digest %s", again, err, img.Digest)
	}
	link := filepath.Join(t.TempDir(), "site")
	must(os.Symlink(dir, link))
	if viaLink, err := s.Build(ctx, link, "", opts); err != nil || viaLink.Digest != img.Digest {
		t.Errorf("build through a symlink to the tree = %v, %v; want digest %s", viaLink, err, img.Digest)
	}
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}

	// What cannot go into an image is refused.
	must(syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644))
	_, err = s.Build(ctx, dir, "", opts)
	wantErr(t, err, nil, "pipe", "only directories, regular files and symlinks")
	assertNoTmp(t, s)
}

func TestBuildBinary(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		t.Skipf("no go command at %s to build a static binary: %v", gobin, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	s := newStore(t)
	ctx := context.Background()
	img, err := s.Build(ctx, bin, "hello:1", BuildOptions{Cmd: []string{"--verbose"}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Arch != runtime.GOARCH || img.OS != "linux" {
		t.Errorf("platform %s/%s", img.OS, img.Arch)
	}
	if !reflect.DeepEqual(img.Config.Entrypoint, []string{"/app/hello"}) || img.Config.WorkingDir != "/app" || !reflect.DeepEqual(img.Config.Cmd, []string{"--verbose"}) {
		t.Errorf("config %+v", img.Config)
	}
	want, _ := os.ReadFile(bin)
	files := readLayer(t, s, img.Layers[0])
	if files["app/hello"] != string(want) {
		t.Errorf("layer holds %d files; app/hello is %d bytes, want %d", len(files), len(files["app/hello"]), len(want))
	}
	if d, _ := s.Resolve("hello"); d != "" {
		t.Error("hello resolved to hello:1")
	}
	if d, _ := s.Resolve("hello:1"); d != img.Digest {
		t.Error("name not given")
	}

	_, err = s.Build(ctx, bin, "", BuildOptions{Arch: otherArch()})
	wantErr(t, err, nil, "the binary is for "+runtime.GOARCH, "arch "+otherArch())

	script := filepath.Join(dir, "run.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	_, err = s.Build(ctx, script, "", BuildOptions{})
	wantErr(t, err, nil, "not an ELF executable", "build from a directory")

	if sh, err := exec.LookPath("sh"); err == nil {
		if real, err := filepath.EvalSymlinks(sh); err == nil {
			if _, aerr := staticBinaryArch(real); aerr == nil {
				t.Logf("%s is static here; skipping the dynamic-binary case", real)
			} else {
				_, err = s.Build(ctx, real, "", BuildOptions{})
				wantErr(t, err, nil, "dynamically linked", "CGO_ENABLED=0")
			}
		}
	}
	assertNoTmp(t, s)
}

func TestBuildOptionsValidate(t *testing.T) {
	tests := []struct {
		opts BuildOptions
		err  string
	}{
		{BuildOptions{}, ""},
		{BuildOptions{Env: []string{"NOVALUE"}}, "env[0]"},
		{BuildOptions{Env: []string{"=x"}}, "KEY=VALUE"},
		{BuildOptions{WorkingDir: "app"}, "absolute"},
		{BuildOptions{OS: "windows"}, "want linux"},
		{BuildOptions{Arch: "x86_64"}, "Go architecture"},
		{BuildOptions{User: "a b"}, "user"},
		{BuildOptions{Cmd: []string{"a\x00"}}, "cmd[0]"},
	}
	for _, tt := range tests {
		err := tt.opts.Validate()
		if tt.err == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.opts, err)
			}
			continue
		}
		wantErr(t, err, nil, tt.err)
	}
	_, err := newStore(t).Build(context.Background(), t.TempDir(), "Bad Name", BuildOptions{})
	wantErr(t, err, nil, "image name")
}
