//go:build linux

package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/oci/network"
)

// Files of a depot's bundle directory, <Dir>/depots/<id>.
const (
	recordFile   = "record.json"    // the depot as the driver started it (no environment)
	bundleDir    = "bundle"         // runc's bundle: a tmpfs of its own, holding config.json only
	configFile   = "config.json"    // the runtime spec, in bundleDir; removed once the container runs
	pidFile      = "init.pid"       // the container's first process, written by runc
	exitFile     = "exit.json"      // how the depot ended, once the driver cleaned up after it
	stopFile     = "stop-requested" // present once Stop was called
	runcLog      = "runc.log"       // runc's own log (JSON lines)
	helperErr    = "helper.err"     // why the port helper could not start runc
	hostsFile    = "hosts"          // bind-mounted at /etc/hosts
	hostnameFile = "hostname"       // bind-mounted at /etc/hostname
	resolvFile   = "resolv.conf"    // bind-mounted at /etc/resolv.conf when the node offers DNS
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
