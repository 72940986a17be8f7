//go:build !linux

package network

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
)

// Network is not available off Linux.
type Network struct{ cfg Config }

var errNotLinux = errors.New("network: container networks need Linux")

// New fails off Linux.
func New(cfg Config) (*Network, error) { return nil, errNotLinux }

// Config returns the network's configuration.
func (n *Network) Config() Config { return n.cfg }

// Attach fails off Linux.
func (n *Network) Attach(context.Context, string) (*Endpoint, error) { return nil, errNotLinux }

// Detach fails off Linux.
func (n *Network) Detach(*Endpoint) error { return errNotLinux }

// VethName names the host end of a container's veth pair.
func VethName(netnsDir, id string) string { return "" }

// InNamespace fails off Linux.
func InNamespace(string, func() error) error { return errNotLinux }

// InstallRedirect fails off Linux.
func InstallRedirect(string, Redirect) error { return errNotLinux }

// OriginalDest fails off Linux.
func OriginalDest(syscall.Conn) (netip.AddrPort, error) { return netip.AddrPort{}, errNotLinux }
