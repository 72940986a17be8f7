//go:build !linux

package oci

import (
	"context"
	"errors"
	"fmt"
	"os"

	"qnet.dev/qnet/driver"
)

// errNotLinux: runc runs only on Linux.
var errNotLinux = errors.New("oci driver: containers need Linux (runc, namespaces, cgroups)")

// Driver is not available off Linux: New fails.
type Driver struct{}

var _ driver.Driver = (*Driver)(nil)

// New fails off Linux.
func New(cfg Config) (*Driver, error) { return nil, errNotLinux }

// Name returns "oci".
func (d *Driver) Name() string { return Name }

// Start fails off Linux.
func (d *Driver) Start(context.Context, driver.Spec) (driver.Handle, error) { return nil, errNotLinux }

// Recover finds nothing off Linux.
func (d *Driver) Recover(context.Context) ([]driver.Handle, error) { return nil, nil }

// Logs has no logs off Linux.
func (d *Driver) Logs(string) (string, string) { return "", "" }

// Remove finds nothing off Linux.
func (d *Driver) Remove(id string) error {
	return fmt.Errorf("remove depot %q: %w", id, driver.ErrNotFound)
}

// Close does nothing off Linux.
func (d *Driver) Close() error { return nil }

// HelperCommand is the subcommand of the agent's binary that runs HelperMain.
const HelperCommand = "oci-run"

// HelperMain fails off Linux.
func HelperMain(args []string) int {
	fmt.Fprintln(os.Stderr, errNotLinux)
	return 125
}

// SetServices does nothing off Linux.
func (d *Driver) SetServices(Services) {}
