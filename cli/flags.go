package cli

import (
	"fmt"
	"net"
	"os/user"
	"strconv"
	"strings"

	"qnet.dev/qnet/manifest"
)

// defaultAPIAddr is where a node's API listens unless told otherwise.
const defaultAPIAddr = "127.0.0.1:7700"

// The flag values below check what they are given when the command line is parsed, so a
// bad value fails before anything starts, with the flag's name and what would be valid.

// addrValue is a host:port flag.
type addrValue struct{ p *string }

func (v addrValue) String() string { return *v.p }
func (v addrValue) Type() string   { return "host:port" }
func (v addrValue) Set(s string) error {
	if err := checkAddr(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

// checkAddr accepts host:port with a port from 0 (any free port) to 65535.
func checkAddr(s string) error {
	const want = "want host:port such as 127.0.0.1:7700 or :7700 (port 0 picks a free port)"
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %s", s, want)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535: %s", port, want)
	}
	return nil
}

// cpuValue is a CPU quantity flag in millicores; 0 means "not set".
type cpuValue struct{ p *int64 }

func (v cpuValue) String() string {
	if *v.p == 0 {
		return ""
	}
	return cpu(*v.p)
}
func (v cpuValue) Type() string { return "cpu" }
func (v cpuValue) Set(s string) error {
	c, err := manifest.ParseMilliCPU(s)
	if err != nil {
		return err
	}
	if c <= 0 {
		return fmt.Errorf("CPU quantity %q: want more than zero, like 500m or 2", s)
	}
	*v.p = int64(c)
	return nil
}

// memoryValue is a memory quantity flag in bytes; 0 means "not set".
type memoryValue struct{ p *int64 }

func (v memoryValue) String() string {
	if *v.p == 0 {
		return ""
	}
	return manifest.Bytes(*v.p).String()
}
func (v memoryValue) Type() string { return "bytes" }
func (v memoryValue) Set(s string) error {
	b, err := manifest.ParseBytes(s)
	if err != nil {
		return err
	}
	if b <= 0 {
		return fmt.Errorf("memory quantity %q: want more than zero, like 512Mi or 4Gi", s)
	}
	*v.p = int64(b)
	return nil
}

// defaultOperator names the first operator of a new network: the user running qnet.
func defaultOperator() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		name := u.Username
		if i := strings.LastIndexAny(name, `\/`); i >= 0 { // DOMAIN\user on Windows
			name = name[i+1:]
		}
		if name != "" {
			return name
		}
	}
	return "admin"
}
