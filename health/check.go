package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"qnet.dev/qnet/manifest"
)

// Check is one health check attempt against a depot. Run returns nil when the depot
// passed. Run must return promptly once ctx is done: the [Monitor] enforces the probe
// timeout through ctx and waits for Run to return.
type Check interface {
	Run(ctx context.Context) error
}

// CheckFunc adapts a function to a [Check].
type CheckFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f CheckFunc) Run(ctx context.Context) error { return f(ctx) }

// Target is where the checks of one running depot go.
type Target struct {
	// Host is the address HTTP and TCP checks connect to; empty means 127.0.0.1.
	Host string
	// Ports maps the name of each port in spec.ports to the host port the depot binds.
	Ports map[string]int
	// ServicePorts maps the service port number of each port in spec.ports to the host
	// port the depot binds, so a probe that names the port by number ("8080") reaches
	// the depot even when its host port was assigned. Numbers not found here are used
	// as they are.
	ServicePorts map[int]int
	// DefaultPort is the host port of the first port in spec.ports, used when a probe
	// names no port. When zero and Ports holds exactly one port, that one is used.
	DefaultPort int
	// Env is the environment of exec checks ("KEY=value"); typically the depot's own.
	Env []string
	// Dir is the working directory of exec checks; empty means the agent's.
	Dir string
}

// probeTimeout is the timeout of one attempt of p; zero means the manifest's default.
func probeTimeout(p *manifest.Probe) time.Duration {
	if p.Timeout > 0 {
		return time.Duration(p.Timeout)
	}
	return time.Duration(manifest.DefaultProbeTimeout)
}

// NewCheck builds the check that probe p describes against the depot at t. It fails
// when p sets not exactly one of http, tcp and exec, names a port the depot does not
// have, or is otherwise malformed; the error names the field at fault.
func NewCheck(p *manifest.Probe, t Target) (Check, error) {
	if p == nil {
		return nil, errors.New("health probe: no probe given")
	}
	set := 0
	for _, b := range []bool{p.HTTP != nil, p.TCP != nil, p.Exec != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("health probe: exactly one of http, tcp and exec must be set, got %d", set)
	}
	if p.Timeout < 0 {
		return nil, fmt.Errorf("health probe: timeout %v is negative", time.Duration(p.Timeout))
	}
	host := t.Host
	if host == "" {
		host = "127.0.0.1"
	}
	timeout := probeTimeout(p)
	switch {
	case p.HTTP != nil:
		port, err := resolvePort(p.HTTP.Port, t)
		if err != nil {
			return nil, fmt.Errorf("health probe: http.port: %w", err)
		}
		c, err := newHTTPCheck(host, port, p.HTTP.Path, timeout)
		if err != nil {
			return nil, fmt.Errorf("health probe: http.path: %w", err)
		}
		return c, nil
	case p.TCP != nil:
		port, err := resolvePort(p.TCP.Port, t)
		if err != nil {
			return nil, fmt.Errorf("health probe: tcp.port: %w", err)
		}
		return newTCPCheck(host, port, timeout), nil
	default:
		c, err := newExecCheck(p.Exec.Command, t.Env, t.Dir, timeout)
		if err != nil {
			return nil, fmt.Errorf("health probe: exec.command: %w", err)
		}
		return c, nil
	}
}

// resolvePort turns the port of a probe (a name, a number or empty) into a host port.
func resolvePort(spec string, t Target) (int, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		if t.DefaultPort != 0 {
			if err := checkPortRange(t.DefaultPort); err != nil {
				return 0, fmt.Errorf("default port: %w", err)
			}
			return t.DefaultPort, nil
		}
		if len(t.Ports) == 1 {
			for name, p := range t.Ports {
				if err := checkPortRange(p); err != nil {
					return 0, fmt.Errorf("port %q: %w", name, err)
				}
				return p, nil
			}
		}
		return 0, fmt.Errorf("no port given and the depot has %d ports, so none is the default; name one of: %s",
			len(t.Ports), knownPorts(t))
	}
	if isDigits(spec) {
		n, err := strconv.Atoi(spec)
		if err != nil || checkPortRange(n) != nil {
			return 0, fmt.Errorf("port %q is not a valid port number (want 1-65535)", spec)
		}
		if hp, ok := t.ServicePorts[n]; ok {
			if err := checkPortRange(hp); err != nil {
				return 0, fmt.Errorf("port %d: host port: %w", n, err)
			}
			return hp, nil
		}
		return n, nil
	}
	hp, ok := t.Ports[spec]
	if !ok {
		return 0, fmt.Errorf("port %q is not a port of this depot; valid names: %s", spec, knownPorts(t))
	}
	if err := checkPortRange(hp); err != nil {
		return 0, fmt.Errorf("port %q: host port: %w", spec, err)
	}
	return hp, nil
}

func knownPorts(t Target) string {
	if len(t.Ports) == 0 {
		return "(none; declare ports in spec.ports)"
	}
	names := make([]string, 0, len(t.Ports))
	for n := range t.Ports {
		names = append(names, strconv.Quote(n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func checkPortRange(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%d is out of range 1-65535", p)
	}
	return nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
