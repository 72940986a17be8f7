//go:build linux

package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/oci/network"
)

// Files of a depot's bundle directory, <Dir>/depots/<id>.
const (
	recordFile   = "record.json"    // the depot as the driver started it (no environment)
	configFile   = "config.json"    // the runtime spec; removed once the container runs
	pidFile      = "init.pid"       // the container's first process, written by runc
	exitFile     = "exit.json"      // how the depot ended, once the driver cleaned up after it
	stopFile     = "stop-requested" // present once Stop was called
	runcLog      = "runc.log"       // runc's own log (JSON lines)
	helperErr    = "helper.err"     // why the port helper could not start runc
	hostsFile    = "hosts"          // bind-mounted at /etc/hosts
	hostnameFile = "hostname"       // bind-mounted at /etc/hostname
	rootfsDir    = "rootfs"         // the container's root: the overlay's mount point, or the copy
	upperDir     = "upper"          // the overlay's writable layer
	workDir      = "work"           // the overlay's work directory
)

// record is what the driver keeps about one depot, enough for a restarted agent to
// re-adopt it or clean up after it. It never holds the environment, which may hold
// secrets.
type record struct {
	Spec driver.Spec `json:"spec"` // Env removed
	// Lower is the image's unpacked root filesystem; Rootfs how the depot's root was
	// made (RootfsOverlay or RootfsCopy).
	Lower  string `json:"lower,omitempty"`
	Rootfs string `json:"rootfs,omitempty"`
	// Endpoint is the depot's network, once attached.
	Endpoint   *network.Endpoint `json:"endpoint,omitempty"`
	StopSignal string            `json:"stopSignal,omitempty"`
	// PID and PIDStart identify the container's first process (start time in clock
	// ticks since boot, so a reused PID is never signalled).
	PID       int                `json:"pid,omitempty"`
	PIDStart  uint64             `json:"pidStart,omitempty"`
	StartedAt time.Time          `json:"startedAt"`
	Limits    driver.LimitReport `json:"limits"`
}

// writeJSON replaces path with v as JSON, atomically.
func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, data, 0o600)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// readPID reads the container's first process from runc's pid file.
func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds %q", path, data)
	}
	return pid, nil
}

// procStart returns pid's start time (clock ticks since boot) and whether it is alive
// and not a zombie.
func procStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: fields are counted
	// from after its last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return start, true
}

// alive reports whether pid still is the process that started at start.
func alive(pid int, start uint64) bool {
	st, ok := procStart(pid)
	return ok && (start == 0 || st == start)
}

// runcError returns the last error runc logged in its JSON log, or "".
func runcError(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(lines[i]), &l) == nil && (l.Level == "error" || l.Level == "fatal") && l.Msg != "" {
			return l.Msg
		}
	}
	return ""
}
