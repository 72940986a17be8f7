package proto

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"qnet.dev/qnet/driver"
)

// Preopen is one directory a module finds preopened for Spec.Mounts, besides
// GuestDataPath. WASI preview 1 preopens directories only, so a file mount is shown
// through a read-only directory of its own at the target's parent, holding exactly the
// file mounts there (under their target names, read from their sources at each open:
// no copy).
type Preopen struct {
	// GuestPath is where the module sees the directory.
	GuestPath string `json:"guestPath"`
	// Dir, for a directory mount, is the node's directory shown at GuestPath.
	Dir string `json:"dir,omitempty"`
	// ReadOnly keeps the module from changing Dir; Files are always read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// Files, for file mounts, maps names in GuestPath to the node's files.
	Files map[string]string `json:"files,omitempty"`
}

// Preopens plans the preopened directories of mounts, in the order of their guest
// paths; stat tells a directory from a file (os.Stat). It refuses what WASI cannot
// show: a writable file mount, a mount at or beside the depot's own GuestDataPath, and
// a directory mount at the parent of a file mount.
func Preopens(mounts []driver.Mount, stat func(string) (fs.FileInfo, error)) ([]Preopen, error) {
	dirs := map[string]*Preopen{}
	for i, m := range mounts {
		fi, err := stat(m.Source)
		if err != nil {
			return nil, fmt.Errorf("spec.mounts[%d].source: %w", i, err)
		}
		if m.Target == GuestDataPath || (!fi.IsDir() && path.Dir(m.Target) == GuestDataPath) {
			return nil, fmt.Errorf("spec.mounts[%d].target %s: %s is the depot's own data directory; choose a target elsewhere", i, m.Target, GuestDataPath)
		}
		if fi.IsDir() {
			if p, ok := dirs[m.Target]; ok {
				return nil, fmt.Errorf("spec.mounts[%d].target %s: a wasm module sees file mounts through their parent directory, and %s is already the directory of %s", i, m.Target, m.Target, strings.Join(p.names(), ", "))
			}
			dirs[m.Target] = &Preopen{GuestPath: m.Target, Dir: m.Source, ReadOnly: m.ReadOnly}
			continue
		}
		if !m.ReadOnly {
			return nil, fmt.Errorf("spec.mounts[%d] (%s at %s): wasm depots get file mounts read-only (WASI preopens directories only); mount it read-only, or mount a directory", i, m.Source, m.Target)
		}
		parent, name := path.Split(m.Target)
		parent = path.Clean(parent)
		p, ok := dirs[parent]
		switch {
		case !ok:
			p = &Preopen{GuestPath: parent, ReadOnly: true, Files: map[string]string{}}
			dirs[parent] = p
		case p.Dir != "":
			return nil, fmt.Errorf("spec.mounts[%d].target %s: a wasm module sees a file mount through its parent directory, and %s is a directory mount already", i, m.Target, parent)
		}
		p.Files[name] = m.Source
	}
	out := make([]Preopen, 0, len(dirs))
	for _, p := range dirs {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Preopen) int { return strings.Compare(a.GuestPath, b.GuestPath) })
	return out, nil
}

// names returns the guest paths of p's files, sorted.
func (p *Preopen) names() []string {
	var out []string
	for n := range p.Files {
		out = append(out, path.Join(p.GuestPath, n))
	}
	slices.Sort(out)
	return out
}

// FirstListenerFDAfter returns the file descriptor of a module's first listener when
// it has that many preopened directories for its mounts: WASI numbers the listeners
// after every preopened directory.
func FirstListenerFDAfter(preopens int) int { return FirstListenerFD + preopens }
