package depot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BuildOptions say how Build packs an image and what the image runs.
type BuildOptions struct {
	// Entrypoint is the program and its first arguments. For a binary it defaults to
	// ["/app/<file name>"]; for a directory there is no default.
	Entrypoint []string
	// Cmd are the default arguments (or the command, without an Entrypoint).
	Cmd []string
	// Env are KEY=VALUE pairs.
	Env []string
	// WorkingDir is an absolute path in the image; for a binary it defaults to /app.
	WorkingDir string
	// User is the user (and group) the workload runs as: "1000", "1000:1000", "nobody".
	User string
	// OS is "linux" (the default): images run in Linux containers.
	OS string
	// Arch is the CPU architecture in Go's names. For a binary it defaults to the
	// binary's own (and must agree with it); for a directory to this node's.
	Arch string
	// Labels are the image's labels.
	Labels map[string]string
}

// knownArch are Go's architectures that OCI images use.
var knownArch = map[string]bool{
	"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true, "mips": true,
	"mipsle": true, "mips64": true, "mips64le": true, "ppc64": true, "ppc64le": true,
	"riscv64": true, "s390x": true,
}

// Validate checks the options and names the first bad field and what would be valid.
func (o BuildOptions) Validate() error {
	for i, e := range o.Env {
		k, _, ok := strings.Cut(e, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("build option env[%d] %q: want KEY=VALUE", i, e)
		case strings.ContainsRune(e, 0):
			return fmt.Errorf("build option env[%d] contains a NUL byte", i)
		}
	}
	for _, l := range []struct {
		name string
		args []string
	}{{"entrypoint", o.Entrypoint}, {"cmd", o.Cmd}} {
		for i, a := range l.args {
			if strings.ContainsRune(a, 0) {
				return fmt.Errorf("build option %s[%d] contains a NUL byte", l.name, i)
			}
		}
	}
	switch {
	case o.WorkingDir != "" && !strings.HasPrefix(o.WorkingDir, "/"):
		return fmt.Errorf("build option workingDir %q: want an absolute path in the image, such as /app", o.WorkingDir)
	case strings.ContainsAny(o.WorkingDir+o.User, "\x00"):
		return errors.New("build option workingDir or user contains a NUL byte")
	case strings.ContainsAny(o.User, " \t\n"):
		return fmt.Errorf("build option user %q: want a user name or ID, optionally :group", o.User)
	case o.OS != "" && o.OS != "linux":
		return fmt.Errorf("build option os %q: images run in Linux containers, want linux", o.OS)
	case o.Arch != "" && !knownArch[o.Arch]:
		return fmt.Errorf("build option arch %q: want a Go architecture name such as amd64, arm64, arm, riscv64", o.Arch)
	}
	return nil
}

// Build packs src as a one-layer image and stores it, named name if name is not "". A
// directory becomes the image's root filesystem as it is (modes and symlinks kept,
// owners set to root). A single file must be a static Linux executable (ELF with no
// interpreter): it is packed as /app/<its file name> (mode 0755) and is the entrypoint,
// with /app the working directory. The image is
// the same for the same files and options, so building twice gives one digest.
func (s *Store) Build(ctx context.Context, src, name string, opts BuildOptions) (*Image, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var names []string
	if name != "" {
		n, err := normalizeName(name)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", src, err)
		}
		names = []string{n}
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	cfg := v1.ConfigFile{
		OS:           "linux",
		Architecture: opts.Arch,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: opts.Entrypoint,
			Cmd:        opts.Cmd,
			Env:        opts.Env,
			WorkingDir: opts.WorkingDir,
			User:       opts.User,
			Labels:     opts.Labels,
		},
	}

	s.gc.RLock()
	defer s.gc.RUnlock()

	lw, err := s.newLayerWriter()
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", src, err)
	}
	defer lw.discard()
	var created time.Time
	switch {
	case fi.IsDir():
		if cfg.Architecture == "" {
			cfg.Architecture = runtime.GOARCH
		}
		root, rerr := filepath.EvalSymlinks(src) // a symlink to the tree packs the tree
		if rerr != nil {
			return nil, fmt.Errorf("build: %w", rerr)
		}
		created, err = lw.addDir(ctx, root)
	case fi.Mode().IsRegular():
		arch, aerr := staticBinaryArch(src)
		if aerr != nil {
			return nil, fmt.Errorf("build %s: %w", src, aerr)
		}
		if cfg.Architecture != "" && cfg.Architecture != arch {
			return nil, fmt.Errorf("build %s: the binary is for %s, but arch %s was asked", src, arch, cfg.Architecture)
		}
		cfg.Architecture = arch
		base := filepath.Base(src)
		if len(cfg.Config.Entrypoint) == 0 {
			cfg.Config.Entrypoint = []string{"/app/" + base}
		}
		if cfg.Config.WorkingDir == "" {
			cfg.Config.WorkingDir = "/app"
		}
		created, err = lw.addBinary(ctx, src, base, fi)
	default:
		return nil, fmt.Errorf("build %s: not a directory or a regular file", src)
	}
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", src, err)
	}
	layer, err := lw.finish()
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", src, err)
	}
	cfg.Created = v1.Time{Time: created}
	cfg.RootFS.DiffIDs = []v1.Hash{hashOf(layer.DiffID)}
	cfg.History = []v1.History{{Created: cfg.Created, CreatedBy: "qnet depot build"}}
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(config)), Digest: hashOf(FromBytes(config))},
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Size: layer.Size, Digest: hashOf(layer.Digest)}},
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	img, err := s.ingest(ctx, ingestJob{
		digest:   FromBytes(mb),
		manifest: mb,
		fetch: func(_ context.Context, d Digest, _ int64) (io.ReadCloser, error) {
			switch d {
			case layer.Digest:
				return os.Open(lw.f.Name())
			case FromBytes(config):
				return io.NopCloser(bytes.NewReader(config)), nil
			}
			return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
		},
		source: "build " + src,
		names:  names,
	})
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", src, err)
	}
	return img, nil
}

func hashOf(d Digest) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: d.Hex()} }

// layerWriter writes a gzip-compressed layer tar to a temporary file in the store,
// hashing the tar (its diff_id) and the compressed bytes (its digest) as it goes.
type layerWriter struct {
	f        *os.File
	compHash hashWriter
	diffHash hashWriter
	gz       *gzip.Writer
	tw       *tar.Writer
}

type hashWriter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func (s *Store) newLayerWriter() (*layerWriter, error) {
	f, err := os.CreateTemp(s.tmpDir(), "layer-")
	if err != nil {
		return nil, err
	}
	lw := &layerWriter{f: f, compHash: hashWriter{h: sha256.New()}, diffHash: hashWriter{h: sha256.New()}}
	// No name and no time in the gzip header: the same files give the same digest.
	lw.gz = gzip.NewWriter(io.MultiWriter(f, &lw.compHash))
	lw.tw = tar.NewWriter(io.MultiWriter(lw.gz, &lw.diffHash))
	return lw, nil
}

func (lw *layerWriter) discard() {
	lw.f.Close()
	os.Remove(lw.f.Name())
}

func (lw *layerWriter) finish() (Layer, error) {
	if err := lw.tw.Close(); err != nil {
		return Layer{}, err
	}
	if err := lw.gz.Close(); err != nil {
		return Layer{}, err
	}
	if err := lw.f.Sync(); err != nil {
		return Layer{}, err
	}
	return Layer{
		Digest:    Digest(digestPrefix + fmt.Sprintf("%x", lw.compHash.h.Sum(nil))),
		Size:      lw.compHash.n,
		MediaType: string(types.OCILayer),
		DiffID:    Digest(digestPrefix + fmt.Sprintf("%x", lw.diffHash.h.Sum(nil))),
	}, nil
}

// header makes a reproducible tar header: owned by root, times to the second.
func header(fi fs.FileInfo, name, link string) (*tar.Header, error) {
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, err
	}
	h.Name = name
	h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
	h.ModTime = fi.ModTime().UTC().Truncate(time.Second)
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.Format = tar.FormatPAX
	h.PAXRecords = nil
	return h, nil
}

// addDir writes the tree under root (not root itself) and returns its newest mtime.
func (lw *layerWriter) addDir(ctx context.Context, root string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name := filepath.ToSlash(rel)
		fi, err := de.Info()
		if err != nil {
			return err
		}
		if t := fi.ModTime().UTC().Truncate(time.Second); t.After(newest) {
			newest = t
		}
		var link string
		switch {
		case fi.Mode().IsDir():
			name += "/"
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
		default:
			return fmt.Errorf("%s is a %s: only directories, regular files and symlinks go into an image", p, fi.Mode().Type())
		}
		h, err := header(fi, name, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := lw.tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if fi.Mode().IsRegular() {
			return copyFile(ctx, lw.tw, p, fi.Size())
		}
		return nil
	})
	return newest, err
}

// addBinary writes /app/<base> (mode 0755) and returns the file's mtime.
func (lw *layerWriter) addBinary(ctx context.Context, src, base string, fi fs.FileInfo) (time.Time, error) {
	mtime := fi.ModTime().UTC().Truncate(time.Second)
	dir := &tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}
	if err := lw.tw.WriteHeader(dir); err != nil {
		return time.Time{}, err
	}
	h, err := header(fi, "app/"+base, "")
	if err != nil {
		return time.Time{}, err
	}
	h.Mode = 0o755
	if err := lw.tw.WriteHeader(h); err != nil {
		return time.Time{}, err
	}
	return mtime, copyFile(ctx, lw.tw, src, fi.Size())
}

func copyFile(ctx context.Context, w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, f}, size))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("%s changed while it was packed (%d of %d bytes)", p, n, size)
	}
	return nil
}

// staticBinaryArch checks that p is a static Linux ELF executable and returns its
// architecture in Go's names.
func staticBinaryArch(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("not an ELF executable (a static Linux binary): %v; to pack a script or several files, build from a directory", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("ELF file of type %s is not an executable", f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(prog.Open(), 256))
			return "", fmt.Errorf("dynamically linked (interpreter %s): build it static (for Go, CGO_ENABLED=0) or build from a directory that holds its libraries", strings.TrimRight(string(interp), "\x00"))
		}
	}
	le := f.ByteOrder.String() == "LittleEndian"
	is64 := f.Class == elf.ELFCLASS64
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_386:
		return "386", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_RISCV:
		if is64 {
			return "riscv64", nil
		}
	case elf.EM_PPC64:
		if le {
			return "ppc64le", nil
		}
		return "ppc64", nil
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_LOONGARCH:
		return "loong64", nil
	case elf.EM_MIPS:
		switch {
		case is64 && le:
			return "mips64le", nil
		case is64:
			return "mips64", nil
		case le:
			return "mipsle", nil
		default:
			return "mips", nil
		}
	}
	return "", fmt.Errorf("ELF machine %s (class %s) is not an architecture images are built for", f.Machine, f.Class)
}
