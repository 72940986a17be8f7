package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mount is one line of /proc/self/mountinfo, reduced to what detection needs.
type Mount struct {
	Root    string   // the path inside the filesystem that is mounted (field 4)
	Point   string   // where it is mounted (field 5)
	FSType  string   // "cgroup" or "cgroup2" for the mounts that matter here
	Options []string // the super options, e.g. ["rw", "cpu", "cpuacct"] for a v1 hierarchy
}

// ParseMountInfo reads the mountinfo format of proc(5): one mount per line,
// "ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". Paths have
// spaces and other bytes escaped as \ooo octal, which ParseMountInfo undoes. A malformed
// line is an error naming the line number.
func ParseMountInfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Fields(line)
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 6 || sep < 0 || sep+3 > len(fields) {
			return nil, fmt.Errorf("mountinfo line %d: want \"ID PARENT MAJ:MIN ROOT POINT OPTS ... - FSTYPE SOURCE SUPEROPTS\", got %q", n, line)
		}
		root, err := unescapeOctal(fields[3])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: root: %w", n, err)
		}
		point, err := unescapeOctal(fields[4])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: mount point: %w", n, err)
		}
		m := Mount{Root: root, Point: point, FSType: fields[sep+1]}
		if sep+3 < len(fields) {
			m.Options = strings.Split(fields[sep+3], ",")
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mounts, nil
}

// unescapeOctal undoes the kernel's \ooo escaping of space, tab, newline and backslash.
func unescapeOctal(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape %q in %q", s[i:i+4], s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// hasOption reports whether opts holds o.
func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

// parseKeyed reads a flat-keyed cgroup file ("key value" per line, as memory.events and
// memory.oom_control are) into a map. Lines that do not have that shape are skipped, so
// a kernel that adds fields does not break the reader.
func parseKeyed(data []byte) map[string]uint64 {
	out := make(map[string]uint64)
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}
