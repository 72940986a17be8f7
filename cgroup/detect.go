package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// detect chooses a hierarchy from the mounts: the interface (v2 or v1) that carries more
// of the cpu and memory controllers, v2 on a tie, and only where this process may create
// groups. It is pure apart from readFile and writable, which tests replace.
func detect(mounts []Mount, parent string, readFile func(string) ([]byte, error), writable func(string) error) Hierarchy {
	h := Hierarchy{Parent: parent}
	if err := ValidateParent(parent); err != nil {
		h.Reason = err.Error()
		return h
	}
	var unified, v1cpu, v1mem string
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if unified == "" {
				unified = m.Point
			}
		case "cgroup":
			if v1cpu == "" && hasOption(m.Options, "cpu") {
				v1cpu = m.Point
			}
			if v1mem == "" && hasOption(m.Options, "memory") {
				v1mem = m.Point
			}
		}
	}
	var notes []string
	v2cpu, v2mem := false, false
	if unified != "" {
		data, err := readFile(filepath.Join(unified, "cgroup.controllers"))
		if err != nil {
			notes = append(notes, fmt.Sprintf("cgroup v2 at %s: cannot read cgroup.controllers: %v", unified, err))
		} else {
			ctrls := strings.Fields(string(data))
			v2cpu, v2mem = hasOption(ctrls, "cpu"), hasOption(ctrls, "memory")
			if !v2cpu || !v2mem {
				notes = append(notes, fmt.Sprintf("cgroup v2 at %s does not delegate %s (cgroup.controllers: %q)",
					unified, missing(v2cpu, v2mem), strings.TrimSpace(string(data))))
			}
		}
	}
	count := func(a, b bool) int {
		n := 0
		if a {
			n++
		}
		if b {
			n++
		}
		return n
	}
	n2, n1 := count(v2cpu, v2mem), count(v1cpu != "", v1mem != "")
	switch {
	case n2 > 0 && n2 >= n1:
		h.Version = V2
		if err := writable(existingDir(unified, parent, readFile)); err != nil {
			return Hierarchy{Parent: parent, Reason: fmt.Sprintf("cgroup v2 at %s is not writable: %v (run the agent as root, or delegate a subtree to its user and set the cgroup parent to it)", unified, err)}
		}
		if v2cpu {
			h.CPU = unified
		}
		if v2mem {
			h.Memory = unified
		}
		h.Reason = strings.Join(notes, "; ")
		return h
	case n1 > 0:
		h.Version = V1
		for _, c := range []struct {
			name string
			dir  string
			set  *string
		}{{"cpu", v1cpu, &h.CPU}, {"memory", v1mem, &h.Memory}} {
			if c.dir == "" {
				notes = append(notes, fmt.Sprintf("no cgroup v1 hierarchy has the %s controller mounted", c.name))
				continue
			}
			if err := writable(existingDir(c.dir, parent, readFile)); err != nil {
				notes = append(notes, fmt.Sprintf("cgroup v1 %s hierarchy at %s is not writable: %v (run the agent as root)", c.name, c.dir, err))
				continue
			}
			*c.set = c.dir
		}
		if h.CPU == "" && h.Memory == "" {
			h.Version = None
		}
		// Using v1 is the plan, so a v2 mount without controllers is not worth a word.
		var keep []string
		for _, n := range notes {
			if !strings.HasPrefix(n, "cgroup v2") {
				keep = append(keep, n)
			}
		}
		h.Reason = strings.Join(keep, "; ")
		return h
	}
	if len(notes) == 0 {
		notes = append(notes, "no cgroup filesystem is mounted (neither cgroup2 nor v1 cpu/memory in /proc/self/mountinfo)")
	}
	h.Reason = strings.Join(notes, "; ")
	return h
}

// existingDir returns root/parent when it exists (a delegated parent may be writable when
// the root is not), else root.
func existingDir(root, parent string, readFile func(string) ([]byte, error)) string {
	p := filepath.Join(root, filepath.FromSlash(parent))
	if _, err := readFile(filepath.Join(p, "cgroup.procs")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return p
	}
	return root
}

func missing(cpu, mem bool) string {
	switch {
	case !cpu && !mem:
		return "the cpu or memory controller"
	case !cpu:
		return "the cpu controller"
	default:
		return "the memory controller"
	}
}
